#!/usr/bin/env bash
# Runs the core benchmarks and prints the figures the issues set as targets.
# Each benchmark compares against a baseline in the same run where one
# exists (sliced vs unsliced policy evaluation, group commit vs one commit
# per event), because these machines are noisy. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
out=bench/out
mkdir -p "$out"
: "${BENCHTIME:=2s}"
: "${AIRLOCK_BENCH_GRANTS:=1000000}"
export AIRLOCK_BENCH_GRANTS

run() { # name package pattern [benchtime]
	echo "== $1"
	go test -run=NONE -bench="$3" -benchtime="${4:-$BENCHTIME}" -benchmem "$2" | tee "$out/$1.txt" | grep -E '^(Benchmark|ok|FAIL)' || true
}

run policy     ./internal/policy/              'BenchmarkDecide'
run authorize  ./internal/grants/              'BenchmarkAuthenticate'
run log-append ./internal/auditlog/            'BenchmarkAppend'
run log-verify ./internal/auditlog/            'BenchmarkVerify'   1x
# The log shared by 1, 2 and 3 replicas on PostgreSQL (AIRLOCK_TEST_PG_DSN).
run log-shared ./internal/auditlog/            'BenchmarkSharedAppend' 20000x
run review     ./internal/store/sqlitestore/   'BenchmarkReviewQuery'

# The AWS gateway against the same versitygw directly (bench/s3bench): the
# real `airlock serve`, 8 SDK clients, recording on, beside two plain peer
# hops, nginx (apt-get install nginx-light; skipped without it) and Go's
# httputil.ReverseProxy. S3BENCH_FLAGS adds
# flags, e.g. "-phase 2s -big 256MiB" for a quick run.
echo "== s3bench"
# shellcheck disable=SC2086
go run ./bench/s3bench -out "$out/s3bench.json" ${S3BENCH_FLAGS:-} | tee "$out/s3bench.txt"

# The PostgreSQL gateway against PgBouncer (bench/pgbench): pgbench -S, 8
# clients, simple and prepared, directly, through PgBouncer in session
# mode and through the real `airlock serve` with every statement recorded,
# and the ceiling one durable write per statement leaves; then memory per
# idle connection. Needs PostgreSQL (AIRLOCK_TEST_PG_DSN or
# postgres://postgres@127.0.0.1:5432/postgres), pgbench and pgbouncer.
# PGBENCH_FLAGS adds flags, e.g. "-phase 2s -rounds 1" for a quick run.
echo "== pgbench"
# shellcheck disable=SC2086
go run ./bench/pgbench -out "$out/pgbench.json" ${PGBENCH_FLAGS:-} | tee "$out/pgbench.txt"
echo "raw output in $out/"
