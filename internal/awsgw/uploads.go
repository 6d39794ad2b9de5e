package awsgw

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/s3iam"
)

// Multipart uploads are bound to the key they were created for.
//
// An upload id is checked against the key in the request only by the
// upstream, and not every upstream does it: one that finds the upload by
// its id alone lets a grant on app/* complete, list or abort an upload of
// any key. So the gateway keeps the (target, identity, bucket, key,
// upload id) of each CreateMultipartUpload it forwarded, read from the
// upstream's answer before the client sees it, and refuses UploadPart,
// UploadPartCopy, ListParts, CompleteMultipartUpload and
// AbortMultipartUpload for any other upload with NoSuchUpload, as S3
// answers an upload id used with another key.
//
// An entry lives as long as a grant that created or used it: a second
// grant of the same identity on the same target may continue an upload
// while the first is still live (an agent renewing its access mid-upload),
// and keeps it alive from then on; another identity never can. Once every
// such grant has ended the entry is gone, and so is the upload as far as
// the gateway is concerned (the upstream's lifecycle rules clean it up).
//
// A completed upload stays in the table, marked completed, while a grant
// holding it is live: S3 answers a repeated CompleteMultipartUpload of an
// upload it just completed with the same result (SDKs retry it, and
// concurrent completions race), so the gateway forwards that call and no
// other for it. It no longer counts toward the identity's bound.
//
// The table is in memory only: an upload begun before the gateway
// restarted cannot be continued or aborted through it (the client starts
// a new one). The upload id is recorded in the CreateMultipartUpload
// result's record, so the log still says which grant began it.
const (
	// maxUploadsPerIdentity bounds the open uploads of one identity on
	// one target; beyond it CreateMultipartUpload is refused until some
	// complete, are aborted or their grants end.
	maxUploadsPerIdentity = 1000
	// maxUploads bounds the whole table (keys are up to 1 KiB each).
	maxUploads = 20000
	// maxHolders bounds the grants kept per upload; the newest replaces
	// an ended one, or the one that expires first.
	maxHolders = 4
	// maxCreateResponse bounds the CreateMultipartUpload answer the
	// gateway reads before passing it on (it is a few hundred bytes).
	maxCreateResponse = 64 << 10
)

// uploadOps are the operations that name an existing upload.
var uploadOps = map[string]bool{
	"UploadPart": true, "UploadPartCopy": true, "ListParts": true,
	"CompleteMultipartUpload": true, "AbortMultipartUpload": true,
}

type uploadKey struct{ target, identity, bucket, key, id string }

type ownerKey struct{ target, identity string }

type uploadEntry struct {
	holders   []*gateway.Grant
	completed bool // only CompleteMultipartUpload may name it again
}

// live reports whether a grant that created or used the upload is live.
func (u *uploadEntry) live(now time.Time) bool {
	for _, g := range u.holders {
		if g.Live(now) {
			return true
		}
	}
	return false
}

// hold adds gr to the upload's grants.
func (u *uploadEntry) hold(gr *gateway.Grant, now time.Time) {
	for _, g := range u.holders {
		if g == gr {
			return
		}
	}
	if len(u.holders) < maxHolders {
		u.holders = append(u.holders, gr)
		return
	}
	victim := 0
	for i, g := range u.holders {
		if !g.Live(now) {
			victim = i
			break
		}
		if g.ExpiresAt.Before(u.holders[victim].ExpiresAt) {
			victim = i
		}
	}
	u.holders[victim] = gr
}

// uploadTable is the gateway's record of the uploads it created.
type uploadTable struct {
	now func() time.Time

	mu     sync.Mutex
	m      map[uploadKey]*uploadEntry
	owners map[ownerKey]int
	adds   int
}

func newUploadTable(now func() time.Time) *uploadTable {
	return &uploadTable{now: now, m: map[uploadKey]*uploadEntry{}, owners: map[ownerKey]int{}}
}

func keyOf(gr *gateway.Grant, bucket, key, id string) uploadKey {
	return uploadKey{target: gr.Target, identity: gr.Identity, bucket: bucket, key: key, id: id}
}

// add records an upload gr created.
func (t *uploadTable) add(gr *gateway.Grant, bucket, key, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	k := keyOf(gr, bucket, key, id)
	if u := t.m[k]; u != nil {
		u.hold(gr, now)
		return
	}
	t.adds++
	if t.adds%256 == 0 || len(t.m) >= maxUploads {
		t.pruneLocked(now)
	}
	for len(t.m) >= maxUploads {
		// Only when more creations raced past room than the cap allows:
		// the upload that expires first goes.
		t.evictLocked(now)
	}
	t.m[k] = &uploadEntry{holders: []*gateway.Grant{gr}}
	t.owners[ownerKey{gr.Target, gr.Identity}]++
}

// use reports whether gr may call op on the upload, and makes gr one of
// its grants if so.
func (t *uploadTable) use(gr *gateway.Grant, bucket, key, id, op string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	k := keyOf(gr, bucket, key, id)
	u := t.m[k]
	if u == nil {
		return false
	}
	if !u.live(now) {
		t.deleteLocked(k)
		return false
	}
	if u.completed && op != "CompleteMultipartUpload" {
		return false
	}
	u.hold(gr, now)
	return true
}

// complete marks an upload completed: from now on only a repeated
// CompleteMultipartUpload may name it.
func (t *uploadTable) complete(gr *gateway.Grant, bucket, key, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := keyOf(gr, bucket, key, id)
	if u := t.m[k]; u != nil && !u.completed {
		u.completed = true
		t.disownLocked(k)
	}
}

// remove forgets an upload that was completed or aborted.
func (t *uploadTable) remove(gr *gateway.Grant, bucket, key, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k := keyOf(gr, bucket, key, id); t.m[k] != nil {
		t.deleteLocked(k)
	}
}

// room reports whether gr's identity may start another upload.
func (t *uploadTable) room(gr *gateway.Grant) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := ownerKey{gr.Target, gr.Identity}
	if t.owners[o] < maxUploadsPerIdentity && len(t.m) < maxUploads {
		return true
	}
	t.pruneLocked(t.now())
	return t.owners[o] < maxUploadsPerIdentity && len(t.m) < maxUploads
}

func (t *uploadTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func (t *uploadTable) deleteLocked(k uploadKey) {
	u := t.m[k]
	delete(t.m, k)
	if u != nil && !u.completed {
		t.disownLocked(k)
	}
}

// disownLocked takes k off its identity's count of open uploads.
func (t *uploadTable) disownLocked(k uploadKey) {
	o := ownerKey{k.target, k.identity}
	if t.owners[o]--; t.owners[o] <= 0 {
		delete(t.owners, o)
	}
}

// pruneLocked drops the uploads whose grants have all ended.
func (t *uploadTable) pruneLocked(now time.Time) {
	for k, u := range t.m {
		if !u.live(now) {
			t.deleteLocked(k)
		}
	}
}

// evictLocked drops the upload whose last grant expires first.
func (t *uploadTable) evictLocked(now time.Time) {
	var victim uploadKey
	var until time.Time
	first := true
	for k, u := range t.m {
		var last time.Time
		for _, g := range u.holders {
			if g.Live(now) && g.ExpiresAt.After(last) {
				last = g.ExpiresAt
			}
		}
		if first || last.Before(until) {
			victim, until, first = k, last, false
		}
	}
	if !first {
		t.deleteLocked(victim)
	}
}

// admitUpload refuses a call on an upload this gateway did not create for
// that key under a live grant of the same identity and target, and a
// CreateMultipartUpload beyond the identity's bound.
func (g *Gateway) admitUpload(gr *gateway.Grant, op *s3iam.Op) *s3err.Error {
	switch {
	case uploadOps[op.Name]:
		id := op.Params["upload_id"]
		if !g.uploads.use(gr, op.Bucket, op.Key, id, op.Name) {
			return s3err.Detailed(s3err.NoSuchUpload, s3iam.MsgNoSuchUpload,
				"Airlock forwards only uploads it created for this key (%s/%s) under a live grant of %s on target %s; start a new multipart upload",
				op.Bucket, op.Key, gr.Identity, gr.Target)
		}
	case op.Name == "CreateMultipartUpload":
		if !g.uploads.room(gr) {
			return s3err.New(s3err.ServiceUnavailable, "%s has %d multipart uploads in progress through Airlock on target %s; complete or abort some first",
				gr.Identity, maxUploadsPerIdentity, gr.Target)
		}
	}
	return nil
}

// watchUploads follows the answer to a call that creates or ends an
// upload. It returns the reader to send the client, and a function to call
// once the answer has been copied (ok: completely).
//
// A created upload is entered before the client sees its id: the answer
// is read whole (it is small, and bounded) and parsed first, so no
// UploadPart can race ahead of the entry.
func (x *exchange) watchUploads(op *s3iam.Op, status int, src io.Reader) (io.Reader, func(ok bool, errCode string)) {
	nop := func(bool, string) {}
	gr, table := x.c.gr, x.c.gw.uploads
	switch {
	case op.Name == "CreateMultipartUpload" && status == http.StatusOK:
		buf, err := io.ReadAll(io.LimitReader(src, maxCreateResponse+1))
		switch {
		case err != nil:
			return io.MultiReader(bytes.NewReader(buf), errReader{err}), nop
		case len(buf) > maxCreateResponse:
			x.c.gw.log.Warn("awsgw: CreateMultipartUpload answer too large to read its upload id; the upload cannot be used through the gateway",
				"grant", gr.ID, "request_id", x.c.reqID)
			return io.MultiReader(bytes.NewReader(buf), src), nop
		}
		var res struct {
			UploadID string `xml:"UploadId"`
		}
		if xml.Unmarshal(buf, &res) != nil || s3iam.CheckOpaqueID("uploadId", res.UploadID) != nil {
			x.c.gw.log.Warn("awsgw: CreateMultipartUpload answer has no usable upload id; the upload cannot be used through the gateway",
				"grant", gr.ID, "request_id", x.c.reqID)
			return bytes.NewReader(buf), nop
		}
		table.add(gr, op.Bucket, op.Key, res.UploadID)
		x.res.Pairs = append(x.res.Pairs, gateway.Param{Key: "upload_id", Value: res.UploadID}) // in x.pairs
		return bytes.NewReader(buf), nop
	case !uploadOps[op.Name]:
		return src, nop
	}
	id := op.Params["upload_id"]
	forget := func() { table.remove(gr, op.Bucket, op.Key, id) }
	switch {
	case status == http.StatusNotFound:
		return src, func(_ bool, code string) {
			if code == "NoSuchUpload" {
				forget()
			}
		}
	case op.Name == "AbortMultipartUpload" && status/100 == 2:
		forget()
	case op.Name == "CompleteMultipartUpload" && status == http.StatusOK:
		// S3 may answer 200 and then an <Error> (after whitespace sent to
		// keep the connection open): only a result ends the upload.
		sn := &xmlSniff{}
		return io.TeeReader(src, sn), func(ok bool, _ string) {
			if ok && bytes.Contains(sn.b, []byte("<CompleteMultipartUploadResult")) {
				table.complete(gr, op.Bucket, op.Key, id)
			}
		}
	}
	return src, nop
}

// xmlSniff keeps the first bytes of a document that are not white space,
// enough to see its root element after the XML declaration.
type xmlSniff struct{ b []byte }

const xmlSniffBytes = 256

func (s *xmlSniff) Write(p []byte) (int, error) {
	for _, c := range p {
		if len(s.b) == xmlSniffBytes {
			break
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			s.b = append(s.b, c)
		}
	}
	return len(p), nil
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
