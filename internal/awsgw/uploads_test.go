package awsgw

import (
	"fmt"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3iam"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func testGrant(id, identity, target string, expires time.Time) *gateway.Grant {
	return gateway.NewGrant(gateway.Info{ID: id, Identity: identity, Target: target, TargetKind: "aws", ExpiresAt: expires})
}

func TestUploadTableBinding(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	tb := newUploadTable(clk.now)
	g1 := testGrant("g1", "bot", "t", clk.t.Add(time.Hour))
	tb.add(g1, "logs", "app/a", "u1")

	for _, tc := range []struct {
		what            string
		g               *gateway.Grant
		bucket, key, id string
		want            bool
	}{
		{"its own key", g1, "logs", "app/a", "u1", true},
		{"another key", g1, "logs", "app/b", "u1", false},
		{"another bucket", g1, "other", "app/a", "u1", false},
		{"another id", g1, "logs", "app/a", "u2", false},
		{"another identity", testGrant("g2", "other-bot", "t", clk.t.Add(time.Hour)), "logs", "app/a", "u1", false},
		{"another target", testGrant("g3", "bot", "t2", clk.t.Add(time.Hour)), "logs", "app/a", "u1", false},
	} {
		if got := tb.use(tc.g, tc.bucket, tc.key, tc.id, "UploadPart"); got != tc.want {
			t.Errorf("%s: use = %v, want %v", tc.what, got, tc.want)
		}
	}

	// A second grant of the same identity adopts the upload; it outlives
	// the first grant's expiry, and ends with the second.
	g2 := testGrant("g4", "bot", "t", clk.t.Add(3*time.Hour))
	if !tb.use(g2, "logs", "app/a", "u1", "UploadPart") {
		t.Fatal("a second grant of the same identity could not continue")
	}
	clk.t = clk.t.Add(2 * time.Hour) // g1 expired, g2 live
	if !tb.use(g2, "logs", "app/a", "u1", "UploadPart") {
		t.Fatal("the upload ended with its first grant although the second used it")
	}
	g3 := testGrant("g5", "bot", "t", clk.t.Add(5*time.Hour))
	clk.t = clk.t.Add(2 * time.Hour) // g2 expired too
	if tb.use(g3, "logs", "app/a", "u1", "UploadPart") {
		t.Fatal("an upload outlived every grant that used it")
	}
	if tb.len() != 0 {
		t.Fatalf("%d entries left after expiry", tb.len())
	}

	// Revocation ends it as expiry does.
	tb.add(g3, "logs", "app/c", "u3")
	g3.End("revoked")
	if tb.use(testGrant("g6", "bot", "t", clk.t.Add(time.Hour)), "logs", "app/c", "u3", "UploadPart") {
		t.Fatal("an upload outlived its revoked grant")
	}

	// remove forgets it at once.
	g7 := testGrant("g7", "bot", "t", clk.t.Add(time.Hour))
	tb.add(g7, "logs", "app/d", "u4")
	tb.remove(g7, "logs", "app/d", "u4")
	if tb.use(g7, "logs", "app/d", "u4", "UploadPart") {
		t.Fatal("a removed upload is still usable")
	}

	// A completed upload may be completed again (S3 answers a repeated
	// CompleteMultipartUpload with the same result; concurrent ones race),
	// and named by nothing else; it no longer counts as open.
	g8 := testGrant("g8", "bot2", "t", clk.t.Add(time.Hour))
	tb.add(g8, "logs", "app/e", "u5")
	tb.complete(g8, "logs", "app/e", "u5")
	if !tb.use(g8, "logs", "app/e", "u5", "CompleteMultipartUpload") {
		t.Fatal("a repeated CompleteMultipartUpload was refused")
	}
	for _, op := range []string{"UploadPart", "UploadPartCopy", "ListParts", "AbortMultipartUpload"} {
		if tb.use(g8, "logs", "app/e", "u5", op) {
			t.Fatalf("%s on a completed upload was admitted", op)
		}
	}
	if tb.owners[ownerKey{"t", "bot2"}] != 0 {
		t.Fatalf("a completed upload still counts as open: %d", tb.owners[ownerKey{"t", "bot2"}])
	}
	tb.remove(g8, "logs", "app/e", "u5")
	if tb.owners[ownerKey{"t", "bot2"}] != 0 || tb.use(g8, "logs", "app/e", "u5", "CompleteMultipartUpload") {
		t.Fatal("removing a completed upload")
	}
}

func TestUploadTableBounds(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	tb := newUploadTable(clk.now)
	g := testGrant("g1", "bot", "t", clk.t.Add(time.Hour))
	for i := range maxUploadsPerIdentity {
		if !tb.room(g) {
			t.Fatalf("no room after %d uploads", i)
		}
		tb.add(g, "logs", "app/k", fmt.Sprint("u", i))
	}
	if tb.room(g) {
		t.Fatalf("room for upload %d of one identity", maxUploadsPerIdentity+1)
	}
	// Another identity is not held up by this one.
	other := testGrant("g2", "other-bot", "t", clk.t.Add(2*time.Hour))
	if !tb.room(other) {
		t.Fatal("one identity's uploads filled another's room")
	}
	// Uploads of ended grants make room again.
	g.End("expired")
	if !tb.room(g) || tb.len() != 0 {
		t.Fatalf("ended grants' uploads not pruned: %d left", tb.len())
	}

	// The whole table is bounded too: beyond maxUploads the upload whose
	// grants expire first goes.
	short := testGrant("g3", "short", "t", clk.t.Add(time.Minute))
	tb.add(short, "logs", "app/short", "s")
	for i := range maxUploads {
		gi := testGrant(fmt.Sprint("gi", i), fmt.Sprint("bot", i), "t", clk.t.Add(time.Hour))
		tb.add(gi, "logs", "app/k", "u")
	}
	if n := tb.len(); n != maxUploads {
		t.Fatalf("%d entries, want the cap %d", n, maxUploads)
	}
	if tb.use(short, "logs", "app/short", "s", "UploadPart") {
		t.Fatal("the upload expiring first was not the one evicted")
	}

	// An upload keeps at most maxHolders grants, replacing ended ones.
	e := &uploadEntry{}
	var gs []*gateway.Grant
	for i := range maxHolders + 2 {
		gi := testGrant(fmt.Sprint("h", i), "bot", "t", clk.t.Add(time.Duration(i+1)*time.Hour))
		gs = append(gs, gi)
		e.hold(gi, clk.t)
	}
	if len(e.holders) != maxHolders || !e.live(clk.t) {
		t.Fatalf("%d holders", len(e.holders))
	}
	if e.holders[0] == gs[0] {
		t.Fatal("the holder expiring first was kept over a newer one")
	}
}

// The admission check answers NoSuchUpload for every operation that names
// an upload, and refuses creation beyond the identity's bound.
func TestAdmitUpload(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	g := &Gateway{uploads: newUploadTable(clk.now)}
	gr := testGrant("g1", "bot", "t", clk.t.Add(time.Hour))
	for name := range uploadOps {
		op := &s3iam.Op{Name: name, Bucket: "logs", Key: "app/a", Params: map[string]string{"upload_id": "u1"}}
		if e := g.admitUpload(gr, op); e == nil || e.Code != "NoSuchUpload" || e.Status != 404 {
			t.Errorf("%s on an unknown upload: %+v", name, e)
		}
	}
	g.uploads.add(gr, "logs", "app/a", "u1")
	for name := range uploadOps {
		op := &s3iam.Op{Name: name, Bucket: "logs", Key: "app/a", Params: map[string]string{"upload_id": "u1"}}
		if e := g.admitUpload(gr, op); e != nil {
			t.Errorf("%s on its own upload: %+v", name, e)
		}
	}
	for i := range maxUploadsPerIdentity {
		g.uploads.add(gr, "logs", "app/a", fmt.Sprint("x", i))
	}
	if e := g.admitUpload(gr, &s3iam.Op{Name: "CreateMultipartUpload", Bucket: "logs", Key: "app/a"}); e == nil || e.Status != 503 {
		t.Fatalf("CreateMultipartUpload beyond the bound: %+v", e)
	}
	if e := g.admitUpload(gr, &s3iam.Op{Name: "PutObject", Bucket: "logs", Key: "app/a"}); e != nil {
		t.Fatalf("PutObject: %+v", e)
	}
}

func TestXMLSniff(t *testing.T) {
	s := &xmlSniff{}
	for _, p := range []string{"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "      ", "\n\n   ", "<CompleteMultipartUploadResult xmlns=\"x\"><Location>"} {
		_, _ = s.Write([]byte(p))
	}
	if got := string(s.b); got != `<?xmlversion="1.0"encoding="UTF-8"?><CompleteMultipartUploadResultxmlns="x"><Location>` {
		t.Fatalf("sniffed %q", got)
	}
	big := &xmlSniff{}
	_, _ = big.Write(make([]byte, 10000))
	if len(big.b) != xmlSniffBytes {
		t.Fatalf("kept %d bytes", len(big.b))
	}
}
