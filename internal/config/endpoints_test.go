package config

import (
	"errors"
	"os"
	"testing"
)

func TestEndpoints(t *testing.T) {
	inConfigDir(t)
	ok := `data_dir: d
policies: policies
targets:
  - name: a
    kind: aws
    account: "111122223333"
    endpoints: { dynamodb: "http://127.0.0.1:8000", logs: "https://vpce-1.logs.us-east-1.vpce.amazonaws.com/" }
    credentials: {role_arn: "arn:aws:iam::111122223333:role/r"}
`
	if err := os.WriteFile("airlock.yaml", []byte(ok), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load("airlock.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Targets[0].Endpoints; len(got) != 2 || got["dynamodb"] != "http://127.0.0.1:8000" {
		t.Fatalf("endpoints %v", got)
	}

	bad := `data_dir: d
policies: policies
targets:
  - name: a
    kind: aws
    account: "1"
    endpoints:
      dynamodb: http://db.internal:8000
      Logs: https://x
      s3: https://s3.example
      sqs: ftp://127.0.0.1
      ssm: https://u:p@127.0.0.1
      sts: https://127.0.0.1/path
    credentials: {role_arn: "arn:aws:iam::111122223333:role/r"}
  - name: p
    kind: postgres
    account: dev
    upstream: postgres://u@h/db
    endpoints: { logs: https://x }
`
	if err := os.WriteFile("airlock.yaml", []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load("airlock.yaml")
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load: %v", err)
	}
	checkErrors(t, errs, []loc{
		{"airlock.yaml:8:17: targets[0].endpoints.dynamodb", "plain http:// is allowed only to a loopback address"},
		{"airlock.yaml:9:13: targets[0].endpoints.Logs", "not an AWS service signing name"},
		{"airlock.yaml:10:11: targets[0].endpoints.s3", "target's endpoint key"},
		{"airlock.yaml:11:12: targets[0].endpoints.sqs", "must be an https:// URL"},
		{"airlock.yaml:12:12: targets[0].endpoints.ssm", "must not contain credentials"},
		{"airlock.yaml:13:12: targets[0].endpoints.sts", "must be a base URL"},
		{"airlock.yaml:19:16: targets[1].endpoints", "only aws targets have endpoints"},
	})
}
