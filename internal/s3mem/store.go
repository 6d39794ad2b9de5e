package s3mem

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// DefaultMaxBytes is the default cap on the bytes the server holds.
const DefaultMaxBytes = 256 << 20

// meta is what S3 stores beside an object's bytes and returns on GET/HEAD.
type meta struct {
	contentType        string
	contentEncoding    string
	contentDisposition string
	contentLanguage    string
	cacheControl       string
	expires            string
	user               map[string]string // x-amz-meta-* without the prefix, lower case
	tags               []tag
}

type tag struct{ Key, Value string }

// object is immutable once stored: tagging builds a new one, so a reader
// holding a pointer sees a consistent object without holding the lock.
type object struct {
	data     []byte
	etag     string // quoted, as S3 sends it
	modified time.Time
	meta     meta
}

type part struct {
	data     []byte
	etag     string
	modified time.Time
}

type upload struct {
	id        string
	key       string
	initiated time.Time
	meta      meta
	parts     map[int]*part
}

type bucket struct {
	created time.Time
	objects map[string]*object
	uploads map[string]*upload
}

// store is the server's state. used counts object and part bytes.
type store struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	used    int64
	max     int64
	now     func() time.Time
}

func newStore() *store {
	return &store{buckets: map[string]*bucket{}, max: DefaultMaxBytes, now: time.Now}
}

func (st *store) timestamp() time.Time { return st.now().UTC().Truncate(time.Millisecond) }

// etagOf is S3's ETag for a single-part object: the quoted hex MD5.
func etagOf(data []byte) string {
	sum := md5.Sum(data)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func tooLarge(max int64) *s3err.Error {
	return s3err.New(s3err.EntityTooLarge, "the in-memory upstream holds at most %d bytes in all", max)
}

// room reports whether n more bytes fit once freed bytes are released.
// Callers hold mu.
func (st *store) room(n, freed int64) error {
	if n < 0 || st.used-freed+n > st.max {
		return tooLarge(st.max)
	}
	return nil
}

// fits is an early check, so an upload that cannot fit is refused before
// its body is read; n bytes would replace the object at key, if any.
// (put and putPart check again, under the same lock as the change.)
func (st *store) fits(n int64, bkt, key string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	var freed int64
	if b, ok := st.buckets[bkt]; ok && key != "" {
		if o, ok := b.objects[key]; ok {
			freed = int64(len(o.data))
		}
	}
	return st.room(n, freed)
}

func (st *store) bucket(name string) (*bucket, error) {
	b, ok := st.buckets[name]
	if !ok {
		return nil, noSuchBucket(name)
	}
	return b, nil
}

func (st *store) createBucket(name string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.buckets[name]; ok {
		return errorf(codeBucketAlreadyOwnedByYou, "Your previous request to create the named bucket succeeded and you already own it.")
	}
	st.buckets[name] = &bucket{created: st.timestamp(), objects: map[string]*object{}, uploads: map[string]*upload{}}
	return nil
}

func (st *store) deleteBucket(name string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, err := st.bucket(name)
	if err != nil {
		return err
	}
	if len(b.objects) > 0 || len(b.uploads) > 0 {
		return errorf(codeBucketNotEmpty, "The bucket you tried to delete is not empty")
	}
	delete(st.buckets, name)
	return nil
}

type bucketInfo struct {
	name    string
	created time.Time
}

func (st *store) listBuckets() []bucketInfo {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]bucketInfo, 0, len(st.buckets))
	for name, b := range st.buckets {
		out = append(out, bucketInfo{name, b.created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (st *store) hasBucket(name string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, err := st.bucket(name)
	return err
}

func (st *store) get(bkt, key string) (*object, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, err := st.bucket(bkt)
	if err != nil {
		return nil, err
	}
	o, ok := b.objects[key]
	if !ok {
		return nil, noSuchKey(bkt, key)
	}
	return o, nil
}

// put stores o under key, replacing (and freeing) any object there.
func (st *store) put(bkt, key string, o *object) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, err := st.bucket(bkt)
	if err != nil {
		return err
	}
	var freed int64
	if old, ok := b.objects[key]; ok {
		freed = int64(len(old.data))
	}
	if err := st.room(int64(len(o.data)), freed); err != nil {
		return err
	}
	st.used += int64(len(o.data)) - freed
	b.objects[key] = o
	return nil
}

// replaceMeta swaps an object's tags without touching its bytes.
func (st *store) setTags(bkt, key string, tags []tag) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, err := st.bucket(bkt)
	if err != nil {
		return err
	}
	o, ok := b.objects[key]
	if !ok {
		return noSuchKey(bkt, key)
	}
	n := *o
	n.meta.tags = tags
	b.objects[key] = &n
	return nil
}

// remove deletes key; deleting a missing key succeeds, as in S3.
func (st *store) remove(bkt, key string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, err := st.bucket(bkt)
	if err != nil {
		return err
	}
	if o, ok := b.objects[key]; ok {
		st.used -= int64(len(o.data))
		delete(b.objects, key)
	}
	return nil
}

// keys returns the bucket's keys in order with their objects.
func (st *store) snapshot(bkt string) ([]string, map[string]*object, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, err := st.bucket(bkt)
	if err != nil {
		return nil, nil, err
	}
	keys := make([]string, 0, len(b.objects))
	objs := make(map[string]*object, len(b.objects))
	for k, o := range b.objects {
		keys = append(keys, k)
		objs[k] = o
	}
	sort.Strings(keys)
	return keys, objs, nil
}

func newUploadID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

func (st *store) createUpload(bkt, key string, m meta) (string, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, err := st.bucket(bkt)
	if err != nil {
		return "", err
	}
	u := &upload{id: newUploadID(), key: key, initiated: st.timestamp(), meta: m, parts: map[int]*part{}}
	b.uploads[u.id] = u
	return u.id, nil
}

func (st *store) upload(bkt, key, id string) (*bucket, *upload, error) {
	b, err := st.bucket(bkt)
	if err != nil {
		return nil, nil, err
	}
	u, ok := b.uploads[id]
	if !ok || u.key != key {
		return nil, nil, errorf(codeNoSuchUpload, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
	}
	return b, u, nil
}

func (st *store) checkUpload(bkt, key, id string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, _, err := st.upload(bkt, key, id)
	return err
}

func (st *store) putPart(bkt, key, id string, n int, p *part) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, u, err := st.upload(bkt, key, id)
	if err != nil {
		return err
	}
	var freed int64
	if old, ok := u.parts[n]; ok {
		freed = int64(len(old.data))
	}
	if err := st.room(int64(len(p.data)), freed); err != nil {
		return err
	}
	st.used += int64(len(p.data)) - freed
	u.parts[n] = p
	return nil
}

func (st *store) abortUpload(bkt, key, id string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, u, err := st.upload(bkt, key, id)
	if err != nil {
		return err
	}
	for _, p := range u.parts {
		st.used -= int64(len(p.data))
	}
	delete(b.uploads, id)
	return nil
}

type partInfo struct {
	number   int
	etag     string
	size     int
	modified time.Time
}

func (st *store) listParts(bkt, key, id string) (*upload, []partInfo, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, u, err := st.upload(bkt, key, id)
	if err != nil {
		return nil, nil, err
	}
	out := make([]partInfo, 0, len(u.parts))
	for n, p := range u.parts {
		out = append(out, partInfo{n, p.etag, len(p.data), p.modified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].number < out[j].number })
	return u, out, nil
}

// minPartSize is S3's floor for every part but the last.
const minPartSize = 5 << 20

type completedPart struct {
	number int
	etag   string
}

// complete joins the listed parts into the object, frees every part of the
// upload and returns the object's multipart ETag.
func (st *store) complete(bkt, key, id string, want []completedPart) (string, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, u, err := st.upload(bkt, key, id)
	if err != nil {
		return "", err
	}
	if len(want) == 0 {
		return "", s3err.New(s3err.MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema")
	}
	var size int
	for i, w := range want {
		if i > 0 && w.number <= want[i-1].number {
			return "", errorf(codeInvalidPartOrder, "The list of parts was not in ascending order. The parts list must be specified in order by part number.")
		}
		p, ok := u.parts[w.number]
		if !ok || strings.Trim(w.etag, `"`) != strings.Trim(p.etag, `"`) {
			return "", errorf(codeInvalidPart, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")
		}
		size += len(p.data)
	}
	// Sizes are checked once every part is known to exist, so a wrong
	// list is reported as such rather than as a small part.
	for _, w := range want[:len(want)-1] {
		if len(u.parts[w.number].data) < minPartSize {
			return "", errorf(codeEntityTooSmall, "Your proposed upload is smaller than the minimum allowed size")
		}
	}
	data := make([]byte, 0, size)
	sums := make([]byte, 0, md5.Size*len(want))
	for _, w := range want {
		p := u.parts[w.number]
		data = append(data, p.data...)
		raw, _ := hex.DecodeString(strings.Trim(p.etag, `"`))
		sums = append(sums, raw...)
	}
	sum := md5.Sum(sums)
	etag := fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(sum[:]), len(want))
	for _, p := range u.parts {
		st.used -= int64(len(p.data))
	}
	delete(b.uploads, id)
	if old, ok := b.objects[key]; ok {
		st.used -= int64(len(old.data))
	}
	st.used += int64(len(data)) // never more than the parts just freed
	b.objects[key] = &object{data: data, etag: etag, modified: st.timestamp(), meta: u.meta}
	return etag, nil
}
