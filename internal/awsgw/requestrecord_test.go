package awsgw

import (
	"encoding/json"
	"maps"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// callParamsMap is callParams as it was: every parameter in one map,
// op.Params taken over and completed.
func callParamsMap(op *s3iam.Op, auth *sigv4.Auth, reqID string) map[string]string {
	p := maps.Clone(op.Params)
	if p == nil {
		p = make(map[string]string, 5)
	}
	p["operation"] = op.Name
	if op.Bucket != "" {
		p["bucket"] = op.Bucket
	}
	if op.Key != "" {
		p["key"] = op.Key
	}
	p["request_id"] = reqID
	if auth.Presigned {
		p["presigned"] = "true"
	}
	return p
}

// TestRequestRecordBytes: a request record's fixed parameters (operation,
// bucket, key, request id, presigned) are Call.Pairs in the call's memory,
// and s3iam makes Op.Params only for a parameter besides them, where one
// map held them all (two allocations a call). The log must not tell:
// each request record, allowed or denied, is encoded to the bytes of the
// same record with every parameter in one map, as before, by AppendJSON
// (the log's encoder) and by encoding/json, for operations with no
// parameter of their own, with query, header and body parameters, and
// with an Op whose Params names one of the pairs.
func TestRequestRecordBytes(t *testing.T) {
	for _, c := range []struct {
		name, method, target, body string
		header                     map[string]string
		presigned, noParams        bool
	}{
		{name: "GetObject", method: "GET", target: "/logs/app/a.txt", noParams: true},
		{name: "presigned GetObject", method: "GET", target: "/logs/app/a.txt", presigned: true, noParams: true},
		{name: "HeadObject", method: "HEAD", target: "/logs/app/a%20b.txt", noParams: true},
		{name: "PutObject", method: "PUT", target: "/logs/app/b.txt", noParams: true},
		{name: "GetObject range", method: "GET", target: "/logs/app/a.txt", header: map[string]string{"Range": "bytes=0-9"}},
		{name: "GetObject version", method: "GET", target: "/logs/app/a.txt?versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"},
		{name: "ListObjectsV2", method: "GET", target: "/logs?list-type=2&prefix=app/&delimiter=/&max-keys=10"},
		{name: "ListBuckets", method: "GET", target: "/", noParams: true},
		{name: "CopyObject", method: "PUT", target: "/logs/app/c", header: map[string]string{"X-Amz-Copy-Source": "logs/app/a?versionId=v1"}},
		{name: "PutObject tagging and ACL", method: "PUT", target: "/logs/app/d", header: map[string]string{"X-Amz-Tagging": "a=1&b=2", "X-Amz-Acl": "private", "X-Amz-Grant-Read": `id="r"`}},
		{name: "UploadPart", method: "PUT", target: "/logs/app/e?partNumber=2&uploadId=abc"},
		{name: "DeleteObjects", method: "POST", target: "/logs?delete", body: `<Delete><Object><Key>app/a</Key></Object><Object><Key>app/b</Key><VersionId>v2</VersionId></Object></Delete>`},
		{name: "PutObjectTagging", method: "PUT", target: "/logs/app/a?tagging", body: `<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>`},
	} {
		for _, collide := range []bool{false, true} {
			newOp := func() *s3iam.Op {
				r := httptest.NewRequest(c.method, "http://s3.test"+c.target, strings.NewReader(c.body))
				for k, v := range c.header {
					r.Header.Set(k, v)
				}
				op, err := (&s3iam.Mapper{}).Map(r)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if op.NeedsBody {
					if err := op.AddBodyChecks([]byte(c.body)); err != nil {
						t.Fatalf("%s: %v", c.name, err)
					}
				}
				if collide { // a parameter under a pair's name is replaced, as the map's entry was
					if op.Params == nil {
						op.Params = map[string]string{}
					}
					op.Params["operation"], op.Params["request_id"], op.Params["bucket"] = "x", "y", "z"
				}
				return op
			}
			auth := &sigv4.Auth{Presigned: c.presigned}
			op, oldOp := newOp(), newOp()
			if c.noParams && !collide && op.Params != nil {
				t.Errorf("%s: Params %v, want none (no map)", c.name, op.Params)
			}
			var room [5]gateway.Param
			for _, kind := range []string{"allowed", "denied"} {
				var got, old gateway.Call
				if kind == "allowed" {
					got = allowedCall(op, auth, "REQ1", room[:0])
					old = got
				} else {
					got = deniedCall(op, op.Checks[0], auth, "REQ1", "outside the grant")
					old = got
				}
				old.Params, old.Pairs = callParamsMap(oldOp, auth, "REQ1"), nil
				gb, err := got.AppendJSON(nil)
				if err != nil {
					t.Fatalf("%s %s: %v", c.name, kind, err)
				}
				ob, err := old.AppendJSON(nil)
				if err != nil {
					t.Fatal(err)
				}
				std, err := json.Marshal(old)
				if err != nil {
					t.Fatal(err)
				}
				if string(gb) != string(ob) || string(gb) != string(std) {
					t.Errorf("%s %s (collide %v):\n got %s\nwant %s\nencoding/json %s", c.name, kind, collide, gb, ob, std)
				}
				if back := got.WithPairsInParams(); !maps.Equal(back.Params, old.Params) {
					t.Errorf("%s %s: as a reader decodes it: %v, want %v", c.name, kind, back.Params, old.Params)
				}
			}
		}
	}
}
