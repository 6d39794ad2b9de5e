package main

import (
	"encoding/json"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// grantCreds is the part of `airlock credentials --format json` the
// benchmark needs.
type grantCreds struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token"`
	Endpoint        *struct {
		URL    string `json:"url"`
		Region string `json:"region"`
	} `json:"endpoint"`
}

// startServer starts `airlock serve` with one agent, one aws target whose
// endpoint is s3, and a policy auto-approving the benchmark's scope;
// keepLog, if set, is where its log is copied once it has stopped.
func startServer(r *benchkit.Runner, bin string, s3 *testenv.S3, keepLog string) *benchkit.Server {
	s := benchkit.NewServer(r, bin)
	s.KeepLog = keepLog
	s.WritePolicy(r, "bench.cedar", benchkit.S3Policy)
	s.Start(r, benchkit.S3Config(s, benchkit.FreeAddr(r), s3.URL), []string{"AWS_BENCH_ACCESS_KEY_ID=" + s3.AccessKeyID, "AWS_BENCH_SECRET_ACCESS_KEY=" + s3.SecretAccessKey})
	return s
}

// grant requests the benchmark's scope (auto-approved by policy) and
// returns the grant's ID and credentials.
func grant(r *benchkit.Runner, s *benchkit.Server) (string, grantCreds) {
	id := s.Request(r, "aws-bench", "s3:GetObject,s3:PutObject,s3:ListBucket arn:aws:s3:::bench/*",
		"1h", "s3bench: gateway throughput against the same upstream")
	var cr grantCreds
	if err := json.Unmarshal([]byte(s.CLI(r, "credentials", id, "--format", "json")), &cr); err != nil {
		r.Fatalf("credentials output: %v", err)
	}
	if cr.Endpoint == nil || cr.Endpoint.URL == "" {
		r.Fatalf("credentials name no gateway endpoint; is the AWS gateway on?\n%s", s.LogTail())
	}
	return id, cr
}
