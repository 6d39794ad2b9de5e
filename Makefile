# Airlock — build, test, benchmark.
GO      ?= go
BIN     ?= bin/airlock
# Fuzz time per target for `make fuzz`.
FUZZTIME ?= 30s
# Bound on minimizing each new interesting input: Go's default (60s) is
# longer than FUZZTIME, and a target whose inputs are large or slow (a
# configuration, a bundle, a transcript) spent its whole run minimizing
# one input and executed it a dozen times. evidence's FuzzVerify is
# bounded by count instead: its inputs are whole bundles (8-22 KB), which
# Go's minimizer (every byte, then every span) never finishes shrinking,
# and each new input early in a run held a worker for the full 5 s
# (bench/HISTORY.md, "bench/pgbench's direct phase, FuzzVerify and the
# grants' reads").
FUZZMINTIME ?= 5s

.PHONY: build test lint bench fuzz clean conformance

build:
	$(GO) build -o $(BIN) ./cmd/airlock

# Every test: unit, integration (SQLite, real processes) and end to end
# (the real airlock binary), under the race detector. Fuzz seeds run as
# regression tests here too.
test: lint
	$(GO) test -race -count=1 -timeout 30m ./...
	# The allocation bounds skip under the race detector, which allocates
	# on its own, and so do the memory bounds, which it makes take minutes:
	# run them once without it, so that they guard CI too. So do the
	# growth checks, which it slows (the redaction's tenfold, to two
	# minutes) and which time the thread's CPU. Every test that skips
	# under -race must run here (internal/testenv TestRaceSkipsRunWithoutRace).
	$(GO) test -count=1 -run 'Allocs$$|MemoryBound$$|Linear$$' ./internal/awsgw/ ./internal/auditlog/ ./internal/sigv4/ ./internal/pggw/ ./internal/store/sqlitestore/ ./internal/grants/ ./internal/sessions/ ./internal/clock/ ./internal/s3iam/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# versitygw's S3 suite directly and through the AWS gateway; prints the
# counts and fails on any difference not listed in docs/conformance.md.
conformance:
	$(GO) test -tags conformance -count=1 -timeout 30m -run 'TestConformance|TestParse' -v ./e2e/conformance/

# Benchmarks with the figures the issues set as targets; see bench/README.md.
bench:
	bash bench/run.sh

# Run each fuzz target for FUZZTIME; new crashers land in testdata/fuzz.
# The PostgreSQL fuzzers need no database (they use an in-memory authority).
fuzz:
	$(GO) test -run=NONE -fuzz='^FuzzParseStatement$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/scope/
	$(GO) test -run=NONE -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/workload/
	$(GO) test -run=NONE -fuzz='^FuzzVerifyClaims$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/workload/
	$(GO) test -run=NONE -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/config/
	$(GO) test -run=NONE -fuzz='^FuzzParseGrantsQuery$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/httpapi/
	$(GO) test -run=NONE -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/httpapi/
	$(GO) test -run=NONE -fuzz='^FuzzParseAuthorization$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzParseAmzDate$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzVerifyRequest$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzVerifySDKSigned$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzChunkedBody$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=200x ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzDecodeSig$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzCheckSignedHeaders$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzUnsignedAmzFast$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzAmzHeaderPass$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzLowerPrefixFold$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzLowerHex64$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzAppendOneValue$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzCanonicalKey$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzSignName$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/sigv4/
	$(GO) test -run=NONE -fuzz='^FuzzMap$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/s3iam/
	$(GO) test -run=NONE -fuzz='^FuzzScanHeaderNames$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/s3iam/
	$(GO) test -run=NONE -fuzz='^FuzzParsePayload$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/notify/
	$(GO) test -run=NONE -fuzz='^FuzzParseDecision$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/notify/
	$(GO) test -run=NONE -fuzz='^FuzzAddBodyChecks$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/s3iam/
	$(GO) test -run=NONE -fuzz='^FuzzCheckQueryID$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/s3iam/
	$(GO) test -run=NONE -fuzz='^FuzzConfigBody$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/s3iam/
	$(GO) test -run=NONE -fuzz='^FuzzMap$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsops/
	$(GO) test -run=NONE -fuzz='^FuzzCBORAgreesWithSmithy$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsops/
	$(GO) test -run=NONE -fuzz='^FuzzFilterQuery$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzHoldLast$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzClientOnly$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzFailedBodyNeverEnds$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzErrorCode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzStripSigning$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzRewriteLocation$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzServiceErrorCode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzServiceErrorShape$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzGatewayScope$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzPlainValue$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzUpstreamHeaderMerge$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzCopyResponseHeaderHop$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzH1Transport$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzWriteRequest$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzParseRange$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/s3mem/
	$(GO) test -run=NONE -fuzz='^FuzzListPage$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/s3mem/
	$(GO) test -run=NONE -fuzz='^FuzzServeHTTP$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/s3mem/
	$(GO) test -run=NONE -fuzz='^FuzzParseAddCheckpoint$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/witness/
	$(GO) test -run=NONE -fuzz='^FuzzTranscript$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/console/
	$(GO) test -run=NONE -fuzz='^FuzzSSOFlow$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/console/
	$(GO) test -run=NONE -fuzz='^FuzzParseSize$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/witness/
	$(GO) test -run=NONE -fuzz='^FuzzWitnessAnswer$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/witness/
	$(GO) test -run=NONE -fuzz='^FuzzStartup$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/pggw/
	$(GO) test -run=NONE -fuzz='^FuzzFrontendMessages$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/pggw/
	$(GO) test -run=NONE -fuzz='^FuzzBackendMessages$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/pggw/
	$(GO) test -run=NONE -fuzz='^FuzzUpstreamLogin$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/pggw/
	$(GO) test -run=NONE -fuzz='^FuzzBindDecode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/pggw/
	$(GO) test -run=NONE -fuzz='^FuzzSplitStatements$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/pggw/
	$(GO) test -run=NONE -fuzz='^FuzzMsgReaderFrames$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/pggw/
	$(GO) test -run=NONE -fuzz='^FuzzCallsOnlyPure$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/pggw/
	$(GO) test -run=NONE -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=200x ./internal/evidence/
	$(GO) test -run=NONE -fuzz='^FuzzReadFrame$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/auditlog/
	$(GO) test -run=NONE -fuzz='^FuzzParseFast$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/review/
	$(GO) test -run=NONE -fuzz='^FuzzString$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/jsonw/
	$(GO) test -run=NONE -fuzz='^FuzzCallAppendJSON$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/gateway/
	$(GO) test -run=NONE -fuzz='^FuzzString$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/textesc/
	$(GO) test -run=NONE -fuzz='^FuzzCaptureText$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/mcpserver/
	$(GO) test -run=NONE -fuzz='^FuzzRequestIDAgreesWithSDK$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/mcpserver/
	$(GO) test -run=NONE -fuzz='^FuzzSCRAM$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/pggw/
	$(GO) test -run=NONE -fuzz='^FuzzScopeService$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/awsgw/
	$(GO) test -run=NONE -fuzz='^FuzzTagBody$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/s3iam/
	$(GO) test -run=NONE -fuzz='^FuzzACLBody$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/s3iam/
	$(GO) test -run=NONE -fuzz='^FuzzOpenCheckpoint$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/auditlog/
	$(GO) test -run=NONE -fuzz='^FuzzAppendTime$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/auditlog/
	$(GO) test -run=NONE -fuzz='^FuzzVerifyCosigned$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/witness/cosig/
	$(GO) test -run=NONE -fuzz='^FuzzParseCheckpoint$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/witness/cosig/
	$(GO) test -run=NONE -fuzz='^FuzzRedactAssignedSecret$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/grants/
	$(GO) test -run=NONE -fuzz='^FuzzRedactJSONSecret$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/grants/
	$(GO) test -run=NONE -fuzz='^FuzzRedactHeaderSecret$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/grants/
	$(GO) test -run=NONE -fuzz='^FuzzRedactSetSecret$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/grants/
	$(GO) test -run=NONE -fuzz='^FuzzRedactShellGrammar$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/grants/
	$(GO) test -run=NONE -fuzz='^FuzzStdioLines$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/mcpserver/
	$(GO) test -run=NONE -fuzz='^FuzzDecodeCursor$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/grants/
	$(GO) test -run=NONE -fuzz='^FuzzLoad$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./internal/policy/

clean:
	rm -rf bin
