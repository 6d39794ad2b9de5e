package s3iam_test

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/s3iam"
)

// refLocate is an independent reference for where S3 finds the bucket and
// the key: the virtual-hosted test base is "s3.test"; otherwise the first
// path segment is the bucket. The key is Go's one-time path decoding.
func refLocate(host, escapedPath string) (bucket, key string, ok bool) {
	h := strings.ToLower(host)
	if !strings.HasPrefix(h, "[") {
		if i := strings.LastIndex(h, ":"); i >= 0 {
			h = h[:i]
		}
	}
	h = strings.TrimSuffix(h, ".")
	rawKey := ""
	if b, found := strings.CutSuffix(h, ".s3.test"); found && b != "" && !strings.HasPrefix(h, "[") {
		bucket, rawKey = b, strings.TrimPrefix(escapedPath, "/")
	} else {
		bucket, rawKey, _ = strings.Cut(strings.TrimPrefix(escapedPath, "/"), "/")
	}
	k, err := url.PathUnescape(rawKey)
	return bucket, k, err == nil
}

// required lists, per operation, the actions one of whose alternatives
// must be checked on the operation's own resource.
var required = map[string][][]string{
	"GetObject":               {{"s3:GetObject", "s3:GetObjectVersion"}},
	"HeadObject":              {{"s3:GetObject", "s3:GetObjectVersion"}},
	"PutObject":               {{"s3:PutObject"}},
	"CopyObject":              {{"s3:PutObject"}},
	"UploadPart":              {{"s3:PutObject"}},
	"UploadPartCopy":          {{"s3:PutObject"}},
	"CreateMultipartUpload":   {{"s3:PutObject"}},
	"CompleteMultipartUpload": {{"s3:PutObject"}},
	"AbortMultipartUpload":    {{"s3:AbortMultipartUpload"}},
	"ListParts":               {{"s3:ListMultipartUploadParts"}},
	"DeleteObject":            {{"s3:DeleteObject", "s3:DeleteObjectVersion"}},
	"GetObjectTagging":        {{"s3:GetObjectTagging", "s3:GetObjectVersionTagging"}},
	"PutObjectTagging":        {{"s3:PutObjectTagging", "s3:PutObjectVersionTagging"}},
	"DeleteObjectTagging":     {{"s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"}},
	"GetObjectAcl":            {{"s3:GetObjectAcl", "s3:GetObjectVersionAcl"}},
	"PutObjectAcl":            {{"s3:PutObjectAcl", "s3:PutObjectVersionAcl"}},
	"GetObjectAttributes":     {{"s3:GetObject", "s3:GetObjectVersion"}, {"s3:GetObjectAttributes", "s3:GetObjectVersionAttributes"}},
	"GetObjectRetention":      {{"s3:GetObjectRetention"}},
	"GetObjectLegalHold":      {{"s3:GetObjectLegalHold"}},
	"ListObjects":             {{"s3:ListBucket"}},
	"ListObjectsV2":           {{"s3:ListBucket"}},
	"ListObjectVersions":      {{"s3:ListBucketVersions"}},
	"ListMultipartUploads":    {{"s3:ListBucketMultipartUploads"}},
	"HeadBucket":              {{"s3:ListBucket"}},
	"CreateBucket":            {{"s3:CreateBucket"}},
	"DeleteBucket":            {{"s3:DeleteBucket"}},
	"PutObjectRetention":      {{"s3:PutObjectRetention"}},
	"PutObjectLegalHold":      {{"s3:PutObjectLegalHold"}},
	"RestoreObject":           {{"s3:RestoreObject"}},
	"SelectObjectContent":     {{"s3:GetObject"}},
	"GetObjectTorrent":        {{"s3:GetObjectTorrent"}},
	"PutBucketPolicy":         {{"s3:PutBucketPolicy"}},
	"DeleteBucketPolicy":      {{"s3:DeleteBucketPolicy"}},
	"PutBucketVersioning":     {{"s3:PutBucketVersioning"}},
	"DeleteBucketCors":        {{"s3:PutBucketCORS"}},
	"ListBuckets":             {{"s3:ListAllMyBuckets"}},
}

func FuzzMap(f *testing.F) {
	seeds := []struct{ method, path, query, host, copySource, acl string }{
		{"GET", "/logs/app/a.log", "", "s3.test", "", ""},
		{"GET", "/app/a.log", "versionId=v1", "logs.s3.test", "", ""},
		{"PUT", "/logs/app/a%20b%2Bc", "", "s3.test", "/logs/app/src%2B1?versionId=2", "private"},
		{"PUT", "/logs/app/a", "partNumber=1&uploadId=u", "s3.test", "logs/secret/b", ""},
		{"GET", "/logs", "list-type=2&prefix=app%2F&delimiter=%2F", "s3.test", "", ""},
		{"GET", "/", "versions&prefix=app/", "logs.s3.test:8701", "", ""},
		{"POST", "/logs", "delete", "s3.test", "", ""},
		{"GET", "/logs/app/%2e%2e/secret", "", "s3.test", "", ""},
		{"GET", "/logs/app%252Fx", "", "evil.com", "", ""},
		{"HEAD", "/logs", "", "LOGS.S3.TEST.", "", ""},
		{"GET", "/logs/app/x", "attributes&versionId=1", "s3.test", "", ""},
		{"DELETE", "/logs/app/x", "uploadId=u", "s3.test", "", ""},
		{"GET", "/", "", "s3.test", "", ""},
		{"GET", "/logs/app/x", "X-Amz-Signature=ab&x-id=GetObject", "s3.test", "", ""},
		{"PUT", "/logs", "", "s3.test", "", "public-read"},
		{"DELETE", "/", "cors", "logs.s3.test", "", ""},
		{"GET", "/logs", "inventory&id=i", "s3.test", "", ""},
		{"PUT", "/logs/app/x", "retention&versionId=1", "s3.test", "", ""},
		{"PATCH", "/create-user", "", "s3.test", "", ""},
		{"POST", "/logs", "", "s3.test", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.host, s.copySource, s.acl)
	}
	m := &s3iam.Mapper{Hosts: []string{"s3.test"}}
	f.Fuzz(func(t *testing.T, method, path, query, host, copySource, acl string) {
		u, err := url.ParseRequestURI(path)
		if err != nil || u.Host != "" || u.RawQuery != "" {
			return
		}
		u.RawQuery = query
		r := &http.Request{Method: method, URL: u, Host: host, Header: http.Header{}}
		if copySource != "" {
			r.Header.Set("X-Amz-Copy-Source", copySource)
		}
		if acl != "" {
			r.Header.Set("X-Amz-Acl", acl)
		}
		op, err := m.Map(r)
		// MapInto builds the same Op in memory the caller holds, whatever
		// that held before, or fails the same way.
		into := s3iam.Op{Name: "stale", Bucket: "stale", Key: "stale", Params: map[string]string{"stale": "1"}, NeedsBody: true,
			Checks: []s3iam.Check{{Action: "s3:*", Resource: "*"}}, CopySourceBucket: "stale"}
		op2, err2 := m.MapInto(r, &into)
		if fmt.Sprint(err) != fmt.Sprint(err2) || err == nil && (op2 != &into || !reflect.DeepEqual(*op2, *op)) {
			t.Fatalf("MapInto: %+v, %v; Map: %+v, %v", op2, err2, op, err)
		}
		if err != nil {
			if _, ok := err.(*s3err.Error); !ok {
				t.Fatalf("error %v is %T, not *s3err.Error", err, err)
			}
			return
		}
		if len(op.Checks) == 0 {
			t.Fatalf("%s has no checks", op.Name)
		}
		if op.NeedsBody {
			if op.Name != "DeleteObjects" && op.Name != "PutBucketReplication" {
				t.Fatalf("%s needs a body", op.Name)
			}
			return
		}
		bucket, key, ok := refLocate(host, u.EscapedPath())
		if !ok {
			t.Fatalf("Map accepted a path Go cannot decode: %q", u.EscapedPath())
		}
		if op.Name != "ListBuckets" && (op.Bucket != bucket || op.Key != key) {
			t.Fatalf("Map says %q/%q, the reference %q/%q (host %q path %q)", op.Bucket, op.Key, bucket, key, host, u.EscapedPath())
		}
		var res string
		switch {
		case op.Name == "ListBuckets":
			res = "arn:aws:s3:::*"
		case op.Key != "":
			res = "arn:aws:s3:::" + op.Bucket + "/" + op.Key
			if strings.Contains("/"+op.Key+"/", "/../") || strings.Contains("/"+op.Key+"/", "/./") {
				t.Fatalf("dot segment in accepted key %q", op.Key)
			}
			if got, want := op.UpstreamPath(), "/"+op.Bucket+"/"+s3iam.EscapeKey(op.Key); got != want {
				t.Fatalf("UpstreamPath %q, want %q", got, want)
			}
			back, err := url.PathUnescape(op.UpstreamPath())
			if err != nil || back != "/"+op.Bucket+"/"+op.Key {
				t.Fatalf("UpstreamPath %q does not decode to the key %q", op.UpstreamPath(), op.Key)
			}
		case slices.Contains([]string{"ListObjects", "ListObjectsV2", "ListObjectVersions", "ListMultipartUploads"}, op.Name):
			q, err := url.ParseQuery(query)
			if err != nil {
				t.Fatalf("Map accepted a query Go cannot parse: %q", query)
			}
			res = "arn:aws:s3:::" + op.Bucket + "/" + q.Get("prefix") + "*"
		default:
			res = "arn:aws:s3:::" + op.Bucket
		}
		for _, c := range op.Checks {
			if c.Resource == res {
				continue
			}
			if (op.Name == "CopyObject" || op.Name == "UploadPartCopy") && c.Resource == "arn:aws:s3:::"+op.CopySourceBucket+"/"+op.CopySourceKey &&
				(c.Action == "s3:GetObject" || c.Action == "s3:GetObjectVersion") {
				continue
			}
			t.Fatalf("%s check %v is not on %q", op.Name, c, res)
		}
		for _, alts := range required[op.Name] {
			if !slices.ContainsFunc(op.Checks, func(c s3iam.Check) bool { return c.Resource == res && slices.Contains(alts, c.Action) }) {
				t.Fatalf("%s lacks one of %v on %q: %v", op.Name, alts, res, op.Checks)
			}
		}
		if op.Name == "CopyObject" || op.Name == "UploadPartCopy" {
			src := "arn:aws:s3:::" + op.CopySourceBucket + "/" + op.CopySourceKey
			if !slices.ContainsFunc(op.Checks, func(c s3iam.Check) bool {
				return c.Resource == src && (c.Action == "s3:GetObject" || c.Action == "s3:GetObjectVersion")
			}) {
				t.Fatalf("%s lacks the read of its source: %v", op.Name, op.Checks)
			}
			ref, _, _ := strings.Cut(strings.TrimPrefix(copySource, "/"), "?")
			if want, err := url.PathUnescape(ref); err != nil || want != op.CopySourceBucket+"/"+op.CopySourceKey {
				t.Fatalf("copy source %q mapped to %q/%q", copySource, op.CopySourceBucket, op.CopySourceKey)
			}
		}
		if acl != "" && (op.Name == "PutObject" || op.Name == "CopyObject" || op.Name == "CreateMultipartUpload") &&
			!slices.Contains(op.Checks, s3iam.Check{Action: "s3:PutObjectAcl", Resource: res}) {
			t.Fatalf("%s with x-amz-acl lacks s3:PutObjectAcl", op.Name)
		}
		if acl != "" && op.Name == "CreateBucket" && !slices.Contains(op.Checks, s3iam.Check{Action: "s3:PutBucketAcl", Resource: res}) {
			t.Fatalf("CreateBucket with x-amz-acl lacks s3:PutBucketAcl")
		}
		for _, c := range op.Checks {
			if c.InBucket && op.Name != "HeadBucket" {
				t.Fatalf("%s has a bucket-wide check %v", op.Name, c)
			}
		}
	})
}

// refDelete is the reference reading of a DeleteObjects body: the
// standard library's lenient unmarshalling. Whatever the strict parser
// accepts, the lenient one must read as the same keys.
type refDelete struct {
	Objects []struct {
		Key       string  `xml:"Key"`
		VersionID *string `xml:"VersionId"`
	} `xml:"Object"`
}

func FuzzAddBodyChecks(f *testing.F) {
	f.Add(objects("app/a", "app/b"))
	f.Add(`<Delete><Quiet>true</Quiet><Object><Key>app/&amp;x</Key><VersionId>1</VersionId></Object></Delete>`)
	f.Add(`<Delete><Object><Key>app/a</Key><Key>b</Key></Object></Delete>`)
	f.Add(`<Delete xmlns:x="urn:x"><Object><x:Key>s</x:Key></Object></Delete>`)
	f.Add(`<Delete><Object><Key><![CDATA[app/<a>]]></Key></Object></Delete>`)
	m := &s3iam.Mapper{}
	r, err := http.NewRequest("POST", "http://s3.test/logs?delete", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		op, err := m.Map(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := op.AddBodyChecks([]byte(body)); err != nil {
			if _, ok := err.(*s3err.Error); !ok {
				t.Fatalf("error %v is %T", err, err)
			}
			return
		}
		var ref refDelete
		if err := xml.Unmarshal([]byte(body), &ref); err != nil {
			t.Fatalf("accepted a body encoding/xml rejects: %v", err)
		}
		if len(ref.Objects) != len(op.Checks) || len(op.Checks) == 0 || len(op.Checks) > s3iam.MaxDeleteKeys {
			t.Fatalf("%d checks for %d objects", len(op.Checks), len(ref.Objects))
		}
		for i, o := range ref.Objects {
			want := s3iam.Check{Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/" + o.Key}
			if o.VersionID != nil {
				want.Action = "s3:DeleteObjectVersion"
			}
			if op.Checks[i] != want {
				t.Fatalf("check %d is %v, the reference reads %v", i, op.Checks[i], want)
			}
		}
	})
}

// FuzzConfigBody checks the scan of CreateBucket and PutBucketReplication
// bodies: errors are S3 errors, the body-free checks stay, a PassRole is
// only ever asked on one clean ARN per <Role>, and tags never go unseen;
// and the record of a PutBucketVersioning body, which reads as the body
// does.
func FuzzConfigBody(f *testing.F) {
	f.Add("PUT", "replication", `<ReplicationConfiguration><Role>arn:aws:iam::1:role/r</Role><Rule><Status>Enabled</Status></Rule></ReplicationConfiguration>`)
	f.Add("PUT", "replication", `<ReplicationConfiguration><Role>arn:aws:iam::1:role/*</Role></ReplicationConfiguration>`)
	f.Add("PUT", "replication", `<!DOCTYPE x [<!ENTITY e "arn:aws:iam::1:role/a">]><ReplicationConfiguration><Role>&e;</Role></ReplicationConfiguration>`)
	f.Add("PUT", "", `<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint><Tags><Tag><Key>a</Key><Value>b</Value></Tag></Tags></CreateBucketConfiguration>`)
	f.Add("PUT", "", `<CreateBucketConfiguration xmlns:x="urn:x"><x:Tags/></CreateBucketConfiguration>`)
	f.Add("PUT", "versioning", "<VersioningConfiguration><Status><x/> </Status></VersioningConfiguration>")
	f.Add("PUT", "versioning", "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n <Status>Suspended</Status><MfaDelete> Enabled<!-- c --></MfaDelete></VersioningConfiguration>")
	m := &s3iam.Mapper{}
	f.Fuzz(func(t *testing.T, method, sub, body string) {
		if sub != "" && sub != "replication" && sub != "versioning" {
			return
		}
		target := "http://s3.test/logs"
		if sub != "" {
			target += "?" + sub
		}
		r, err := http.NewRequest("PUT", target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		op, err := m.Map(r)
		if err != nil {
			if body == "" {
				return
			}
			t.Fatalf("Map: %v", err)
		}
		if !op.NeedsBody {
			if body != "" {
				t.Fatalf("%s with a body does not ask for it", op.Name)
			}
			return
		}
		if err := op.AddBodyChecks([]byte(body)); err != nil {
			if _, ok := err.(*s3err.Error); !ok {
				t.Fatalf("error %v is %T", err, err)
			}
			return
		}
		if op.NeedsBody || len(op.Checks) == 0 {
			t.Fatalf("checks not settled: %v", op.Checks)
		}
		if op.Name == "PutBucketVersioning" {
			// The record says what a Go upstream (versitygw) reads in the
			// body, and is its own record.
			type versioning struct{ Status, MfaDelete string }
			var sent, recorded versioning
			rec := op.Params["configuration"]
			if xml.Unmarshal([]byte(body), &sent) == nil && (xml.Unmarshal([]byte(rec), &recorded) != nil || recorded != sent) {
				t.Fatalf("body reads %+v, its record %q reads %+v", sent, rec, recorded)
			}
			r, err := http.NewRequest("PUT", "http://s3.test/logs?versioning", strings.NewReader(rec))
			if err != nil {
				t.Fatal(err)
			}
			again, err := m.Map(r)
			if err != nil || again.AddBodyChecks([]byte(rec)) != nil || again.Params["configuration"] != rec {
				t.Fatalf("record %q recorded again: %v, %q", rec, err, again.Params["configuration"])
			}
			return
		}
		first := map[string]string{"CreateBucket": "s3:CreateBucket", "PutBucketReplication": "s3:PutReplicationConfiguration"}[op.Name]
		if op.Checks[0] != (s3iam.Check{Action: first, Resource: "arn:aws:s3:::logs"}) {
			t.Fatalf("%s lost its own check: %v", op.Name, op.Checks)
		}
		roles := 0
		for _, c := range op.Checks {
			if c.Action == "iam:PassRole" {
				roles++
				if !strings.HasPrefix(c.Resource, "arn:") || strings.ContainsAny(c.Resource, "*? \t\r\n") {
					t.Fatalf("PassRole on %q", c.Resource)
				}
			}
		}
		if op.Name == "PutBucketReplication" && roles == 0 {
			t.Fatalf("a replication configuration without a PassRole check: %v", op.Checks)
		}
		if op.Name == "CreateBucket" && strings.Contains(body, "Tag") &&
			!slices.Contains(op.Checks, s3iam.Check{Action: "s3:TagResource", Resource: "arn:aws:s3:::logs"}) {
			var ref struct {
				Tags *struct{} `xml:"Tags"`
			}
			if xml.Unmarshal([]byte(body), &ref) == nil && ref.Tags != nil {
				t.Fatalf("tags the standard library sees went unchecked: %v", op.Checks)
			}
		}
	})
}

// refTagging is the PutObjectTagging body as encoding/xml reads it, the
// reference for tagBody's strict scan.
type refTagging struct {
	XMLName xml.Name `xml:"Tagging"`
	Tags    []struct {
		Key   string `xml:"Key"`
		Value string `xml:"Value"`
	} `xml:"TagSet>Tag"`
}

// FuzzTagBody checks the record of a PutObjectTagging body, which tells a
// reviewer the tags that tag-based policies then see: whatever the scan
// accepts, encoding/xml reads too, as the same tags in the same order, and
// the record ("k=v&…", query-encoded) decodes back to them.
func FuzzTagBody(f *testing.F) {
	f.Add(`<Tagging><TagSet><Tag><Key>team</Key><Value>sre</Value></Tag><Tag><Key>a&amp;b=c</Key><Value> x+y% </Value></Tag></TagSet></Tagging>`)
	f.Add(`<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Value>v</Value><Key><![CDATA[k<1>]]></Key></Tag></TagSet></Tagging>`)
	f.Add(`<Tagging><TagSet><Tag><Key>a<!-- c -->b</Key><Value/></Tag></TagSet></Tagging>`)
	f.Add(`<?xml version="1.0"?><Tagging><TagSet/></Tagging>`)
	m := &s3iam.Mapper{}
	f.Fuzz(func(t *testing.T, body string) {
		if body == "" {
			return // a request without a body asks for none
		}
		r, err := http.NewRequest("PUT", "http://s3.test/logs/app/x?tagging", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		op, err := m.Map(r)
		if err != nil || !op.NeedsBody {
			t.Fatalf("Map: %v, needs body %v", err, op != nil && op.NeedsBody)
		}
		if err := op.AddBodyChecks([]byte(body)); err != nil {
			if _, ok := err.(*s3err.Error); !ok {
				t.Fatalf("error %v is %T", err, err)
			}
			return
		}
		var ref refTagging
		if err := xml.Unmarshal([]byte(body), &ref); err != nil {
			t.Fatalf("accepted a body encoding/xml rejects: %v", err)
		}
		var got [][2]string
		if rec := op.Params["tagging"]; rec != "" {
			for _, kv := range strings.Split(rec, "&") {
				k, v, ok := strings.Cut(kv, "=")
				dk, err1 := url.QueryUnescape(k)
				dv, err2 := url.QueryUnescape(v)
				if !ok || err1 != nil || err2 != nil {
					t.Fatalf("record %q does not decode", rec)
				}
				got = append(got, [2]string{dk, dv})
			}
		}
		var want [][2]string
		for _, tg := range ref.Tags {
			want = append(want, [2]string{tg.Key, tg.Value})
		}
		if !slices.Equal(got, want) {
			t.Fatalf("recorded %q, encoding/xml reads %q", got, want)
		}
	})
}

// refACL is a PutBucketAcl body as encoding/xml reads it, the reference
// for aclBody's scan.
type refACL struct {
	XMLName xml.Name `xml:"AccessControlPolicy"`
	Grants  []struct {
		Grantee struct {
			ID           string `xml:"ID"`
			URI          string `xml:"URI"`
			EmailAddress string `xml:"EmailAddress"`
		} `xml:"Grantee"`
		// Permission is nil when the grant has none: S3 refuses it, and
		// it grants nothing to record.
		Permission *string `xml:"Permission"`
	} `xml:"AccessControlList>Grant"`
}

// FuzzACLBody checks the record of a PutBucketAcl body, which tells the
// reviewer whom the call gave access to: it may say more than the upstream
// applies, never less. Whatever the scan accepts, encoding/xml reads too;
// each record reads back, as a list of grantees each with its value in
// Go quotes, to nothing but grantees of the body; and each of
// encoding/xml's grants (a grantee and a permission) is one of those
// under that permission's x-amz-grant-* name. A value is compared whole:
// one that held a " once read as two grantees.
func FuzzACLBody(f *testing.F) {
	f.Add(`<AccessControlPolicy><Owner><ID>o</ID></Owner><AccessControlList><Grant><Grantee><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>`)
	f.Add(`<AccessControlPolicy><AccessControlList><Grant><Permission>WRITE_ACP</Permission><Grantee><ID>a</ID><ID>b</ID></Grantee></Grant><Grant><Grantee><EmailAddress> e </EmailAddress></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>`)
	f.Add(`<x:AccessControlPolicy xmlns:x="urn:x"><x:AccessControlList><x:Grant><x:Grantee><x:ID>a<!-- c -->b</x:ID></x:Grantee><x:Permission>READ_ACP</x:Permission></x:Grant></x:AccessControlList></x:AccessControlPolicy>`)
	f.Add(`<AccessControlPolicy><AccessControlList><Grant><Grantee><ID>x", uri="http://acs.amazonaws.com/groups/global/AllUsers</ID></Grantee><Permission>READ</Permission></Grant><Grant><Grantee><URI>a\"b</URI></Grantee><Permission>READ"</Permission></Grant></AccessControlList></AccessControlPolicy>`)
	m := &s3iam.Mapper{}
	perms := map[string]string{"READ": "grant_read", "WRITE": "grant_write", "READ_ACP": "grant_read_acp", "WRITE_ACP": "grant_write_acp", "FULL_CONTROL": "grant_full_control"}
	f.Fuzz(func(t *testing.T, body string) {
		if body == "" {
			return // a request without a body asks for none
		}
		r, err := http.NewRequest("PUT", "http://s3.test/logs?acl", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		op, err := m.Map(r)
		if err != nil || !op.NeedsBody {
			t.Fatalf("Map: %v, needs body %v", err, op != nil && op.NeedsBody)
		}
		if err := op.AddBodyChecks([]byte(body)); err != nil {
			if _, ok := err.(*s3err.Error); !ok {
				t.Fatalf("error %v is %T", err, err)
			}
			return
		}
		var ref refACL
		if err := xml.Unmarshal([]byte(body), &ref); err != nil {
			t.Fatalf("accepted a body encoding/xml rejects: %v", err)
		}
		recorded := map[string][]aclEntry{}
		for k, rec := range op.Params {
			if !strings.HasPrefix(k, "grant_") {
				continue
			}
			entries, err := parseACLRecord(rec)
			if err != nil {
				t.Fatalf("record %s = %q does not read back: %v", k, rec, err)
			}
			for _, e := range entries {
				if e.kind != "id" && e.kind != "uri" && e.kind != "emailAddress" || e.named != (k == "grant_other") {
					t.Fatalf("record %s = %q has %+v", k, rec, e)
				}
			}
			recorded[k] = entries
		}
		for _, g := range ref.Grants {
			if g.Permission == nil {
				continue
			}
			p := strings.TrimSpace(*g.Permission)
			k, ok := perms[p]
			if !ok {
				k = "grant_other"
			}
			for kind, v := range map[string]string{"id": g.Grantee.ID, "uri": g.Grantee.URI, "emailAddress": g.Grantee.EmailAddress} {
				if v = strings.TrimSpace(v); v == "" {
					continue
				}
				want := aclEntry{kind: kind, value: v}
				if !ok {
					want.named, want.perm = true, p
					if len(p) > 80 {
						want.perm = p[:80] + "..."
					}
				}
				if !slices.Contains(recorded[k], want) {
					t.Fatalf("grant of %s to %s %q is not in the record %s: %q", p, kind, v, k, op.Params[k])
				}
			}
		}
	})
}

// aclEntry is one grantee of an x-amz-grant-* record: perm is the
// permission named in a grant_other record, "" in the others.
// named is whether the entry names its permission (permission="…"),
// which an empty <Permission> is named as too (permission="").
type aclEntry struct {
	named             bool
	perm, kind, value string
}

// parseACLRecord reads a record aclBody wrote back: entries
// [permission="…" ]kind="…" joined by ", ", each value in Go quotes.
func parseACLRecord(rec string) ([]aclEntry, error) {
	var out []aclEntry
	quoted := func(s string) (string, string, error) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", "", fmt.Errorf("no quoted value at %q", s)
		}
		v, err := strconv.Unquote(q)
		return v, s[len(q):], err
	}
	for rest := rec; ; {
		var e aclEntry
		if r, ok := strings.CutPrefix(rest, "permission="); ok {
			p, r, err := quoted(r)
			if err != nil {
				return nil, err
			}
			if r, ok = strings.CutPrefix(r, " "); !ok {
				return nil, fmt.Errorf("no grantee after permission %q", p)
			}
			e.named, e.perm, rest = true, p, r
		}
		kind, r, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, fmt.Errorf("no grantee at %q", rest)
		}
		v, r, err := quoted(r)
		if err != nil {
			return nil, err
		}
		e.kind, e.value = kind, v
		out = append(out, e)
		if r == "" {
			return out, nil
		}
		if rest, ok = strings.CutPrefix(r, ", "); !ok {
			return nil, fmt.Errorf("%q after a grantee", r)
		}
	}
}
