package s3mem

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// maxKeyLen is S3's limit on a key's UTF-8 length.
const maxKeyLen = 1024

func checkKey(key string) error {
	if len(key) > maxKeyLen {
		return s3err.New("KeyTooLongError", "Your key is too long")
	}
	return nil
}

// readUpload reads an upload's payload after checking it can fit in place
// of the object at replaces ("" for a part).
func (c *call) readUpload(replaces string) ([]byte, error) {
	size, err := c.payloadSize()
	if err != nil {
		return nil, err
	}
	if err := c.s.st.fits(size, c.bucket, replaces); err != nil {
		return nil, err
	}
	data, err := c.readBody(size)
	if err != nil {
		return nil, err
	}
	if err := checkContentMD5(c.r.Header, data); err != nil {
		return nil, err
	}
	c.echoChecksum()
	return data, nil
}

func (c *call) putOrCopyObject() error {
	if c.r.Header.Get("x-amz-copy-source") != "" {
		return c.copyObject()
	}
	if err := checkKey(c.key); err != nil {
		return err
	}
	if err := c.s.st.hasBucket(c.bucket); err != nil {
		return err
	}
	m, err := metaFrom(c.r.Header)
	if err != nil {
		return err
	}
	data, err := c.readUpload(c.key)
	if err != nil {
		return err
	}
	o := &object{data: data, etag: etagOf(data), modified: c.s.st.timestamp(), meta: m}
	if err := c.s.st.put(c.bucket, c.key, o); err != nil {
		return err
	}
	c.w.Header().Set("ETag", o.etag)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (c *call) headObject() error { return c.serveObject(false) }
func (c *call) getObject() error  { return c.serveObject(true) }

// responseOverrides are GetObject's query parameters that replace a
// response header.
var responseOverrides = map[string]string{
	"response-content-type":        "Content-Type",
	"response-content-language":    "Content-Language",
	"response-expires":             "Expires",
	"response-cache-control":       "Cache-Control",
	"response-content-disposition": "Content-Disposition",
	"response-content-encoding":    "Content-Encoding",
}

func (c *call) serveObject(withBody bool) error {
	o, err := c.s.st.get(c.bucket, c.key)
	if err != nil {
		return err
	}
	h := c.w.Header()
	failed, notModified := getConditions.evaluate(c.r.Header, o)
	if failed {
		return errorf(codePreconditionFailed, "At least one of the pre-conditions you specified did not hold")
	}
	h.Set("ETag", o.etag)
	h.Set("Last-Modified", o.modified.UTC().Format(http.TimeFormat))
	if notModified {
		c.w.WriteHeader(http.StatusNotModified)
		return nil
	}
	size := int64(len(o.data))
	rng, ranged, unsatisfiable := parseRange(c.r.Header.Get("Range"), size)
	if unsatisfiable {
		h.Del("ETag")
		h.Del("Last-Modified")
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		return errorf(codeInvalidRange, "The requested range is not satisfiable")
	}
	writeMeta(h, o.meta)
	q := c.r.URL.Query()
	for p, hdr := range responseOverrides {
		if v := q.Get(p); v != "" {
			h.Set(hdr, v)
		}
	}
	h.Set("Accept-Ranges", "bytes")
	status, body := http.StatusOK, o.data
	if ranged {
		status, body = http.StatusPartialContent, o.data[rng.start:rng.end+1]
		h.Set("Content-Range", "bytes "+strconv.FormatInt(rng.start, 10)+"-"+strconv.FormatInt(rng.end, 10)+"/"+strconv.FormatInt(size, 10))
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(status)
	if withBody {
		// The slice is never modified once stored, so it is written
		// without the lock; a client that stops reading only stalls here.
		_, _ = c.w.Write(body)
	}
	return nil
}

func (c *call) deleteObject() error {
	if err := c.s.st.remove(c.bucket, c.key); err != nil {
		return err
	}
	return c.noContent()
}

// parseCopySource reads x-amz-copy-source: "[/]bucket/key[?versionId=…]",
// URL-encoded.
func parseCopySource(v string) (bucket, key string, err error) {
	bad := s3err.New(s3err.InvalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
	src, version, _ := strings.Cut(v, "?")
	if version != "" && version != "versionId=null" {
		return "", "", s3err.New(s3err.NotImplemented, "s3mem does not keep object versions")
	}
	src, uerr := url.PathUnescape(src)
	if uerr != nil {
		return "", "", bad
	}
	bucket, key, _ = strings.Cut(strings.TrimPrefix(src, "/"), "/")
	if bucket == "" || key == "" {
		return "", "", bad
	}
	return bucket, key, nil
}

// copySource resolves the copy source and checks its conditions.
func (c *call) copySource() (*object, string, string, error) {
	sb, sk, err := parseCopySource(c.r.Header.Get("x-amz-copy-source"))
	if err != nil {
		return nil, "", "", err
	}
	o, err := c.s.st.get(sb, sk)
	if err != nil {
		return nil, "", "", err
	}
	if failed, notModified := copyConditions.evaluate(c.r.Header, o); failed || notModified {
		return nil, "", "", errorf(codePreconditionFailed, "At least one of the pre-conditions you specified did not hold")
	}
	return o, sb, sk, nil
}

type xmlCopyResult struct {
	XMLName      xml.Name `xml:"CopyObjectResult"`
	Xmlns        string   `xml:"xmlns,attr"`
	ETag         string   `xml:"ETag"`
	LastModified string   `xml:"LastModified"`
}

func directive(h http.Header, name string) (string, error) {
	switch d := strings.ToUpper(h.Get(name)); d {
	case "", "COPY":
		return "COPY", nil
	case "REPLACE":
		return d, nil
	default:
		return "", s3err.New(s3err.InvalidArgument, "Unknown %s", name)
	}
}

func (c *call) copyObject() error {
	if err := checkKey(c.key); err != nil {
		return err
	}
	if err := c.s.st.hasBucket(c.bucket); err != nil {
		return err
	}
	src, sb, sk, err := c.copySource()
	if err != nil {
		return err
	}
	metaDir, err := directive(c.r.Header, "x-amz-metadata-directive")
	if err != nil {
		return err
	}
	tagDir, err := directive(c.r.Header, "x-amz-tagging-directive")
	if err != nil {
		return err
	}
	if sb == c.bucket && sk == c.key && metaDir != "REPLACE" {
		return s3err.New(s3err.InvalidRequest, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
	}
	m := src.meta
	if metaDir == "REPLACE" {
		if m, err = metaFrom(c.r.Header); err != nil {
			return err
		}
	}
	m.tags = src.meta.tags
	if tagDir == "REPLACE" {
		if m.tags, err = parseTagHeader(c.r.Header.Get("x-amz-tagging")); err != nil {
			return err
		}
	}
	// The source's bytes are shared: stored slices are never modified.
	o := &object{data: src.data, etag: src.etag, modified: c.s.st.timestamp(), meta: m}
	if strings.Contains(o.etag, "-") { // a copy is stored in one part
		o.etag = etagOf(o.data)
	}
	if err := c.s.st.put(c.bucket, c.key, o); err != nil {
		return err
	}
	return c.writeXML(http.StatusOK, xmlCopyResult{Xmlns: xmlns, ETag: o.etag, LastModified: timeISO(o.modified)})
}
