// Package conformance holds the S3 conformance harness: versitygw's own
// integration suite run directly and through the AWS gateway. Its test is
// behind the conformance build tag (`make conformance`); see
// conformance_test.go and docs/conformance.md.
package conformance
