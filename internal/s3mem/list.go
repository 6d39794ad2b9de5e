package s3mem

import (
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// listing is one page of a bucket listing.
type listing struct {
	keys      []string
	prefixes  []string
	truncated bool
	last      string // the last key or common prefix on the page
}

// listPage walks sorted keys after `after` under prefix, rolling keys that
// contain delim past the prefix into common prefixes; keys and prefixes
// together count against max. A page is truncated only if another entry
// exists, so the client's next request never comes back empty.
func listPage(keys []string, prefix, delim, after string, max int) listing {
	var l listing
	lastCP := ""
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) || k <= after {
			continue
		}
		entry, isCP := k, false
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				entry, isCP = k[:len(prefix)+i+len(delim)], true
				// A prefix already sent, on this page or as the last
				// entry of the previous one, is not sent again.
				if entry == lastCP || entry <= after {
					continue
				}
			}
		}
		if len(l.keys)+len(l.prefixes) >= max {
			l.truncated = true
			break
		}
		if isCP {
			l.prefixes = append(l.prefixes, entry)
			lastCP = entry
		} else {
			l.keys = append(l.keys, k)
		}
		l.last = entry
	}
	return l
}

type xmlContent struct {
	Key          string    `xml:"Key"`
	LastModified string    `xml:"LastModified"`
	ETag         string    `xml:"ETag"`
	Size         int       `xml:"Size"`
	StorageClass string    `xml:"StorageClass"`
	Owner        *xmlOwner `xml:"Owner,omitempty"`
}

type xmlPrefix struct {
	Prefix string `xml:"Prefix"`
}

type xmlListV1 struct {
	XMLName        xml.Name     `xml:"ListBucketResult"`
	Xmlns          string       `xml:"xmlns,attr"`
	Name           string       `xml:"Name"`
	Prefix         string       `xml:"Prefix"`
	Marker         string       `xml:"Marker"`
	NextMarker     string       `xml:"NextMarker,omitempty"`
	MaxKeys        int          `xml:"MaxKeys"`
	Delimiter      string       `xml:"Delimiter,omitempty"`
	EncodingType   string       `xml:"EncodingType,omitempty"`
	IsTruncated    bool         `xml:"IsTruncated"`
	Contents       []xmlContent `xml:"Contents"`
	CommonPrefixes []xmlPrefix  `xml:"CommonPrefixes"`
}

type xmlListV2 struct {
	XMLName               xml.Name     `xml:"ListBucketResult"`
	Xmlns                 string       `xml:"xmlns,attr"`
	Name                  string       `xml:"Name"`
	Prefix                string       `xml:"Prefix"`
	ContinuationToken     string       `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string       `xml:"NextContinuationToken,omitempty"`
	StartAfter            string       `xml:"StartAfter,omitempty"`
	KeyCount              int          `xml:"KeyCount"`
	MaxKeys               int          `xml:"MaxKeys"`
	Delimiter             string       `xml:"Delimiter,omitempty"`
	EncodingType          string       `xml:"EncodingType,omitempty"`
	IsTruncated           bool         `xml:"IsTruncated"`
	Contents              []xmlContent `xml:"Contents"`
	CommonPrefixes        []xmlPrefix  `xml:"CommonPrefixes"`
}

// listParams are the parameters both list versions share.
type listParams struct {
	prefix, delim string
	max           int
	encode        func(string) string
	encodingType  string
}

func parseListParams(q url.Values) (listParams, error) {
	p := listParams{prefix: q.Get("prefix"), delim: q.Get("delimiter"), max: 1000, encode: func(s string) string { return s }}
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, s3err.New(s3err.InvalidArgument, "Provided max-keys not an integer or within integer range")
		}
		p.max = min(n, 1000)
	}
	switch et := q.Get("encoding-type"); et {
	case "":
	case "url":
		p.encodingType, p.encode = et, urlEncode
	default:
		return p, s3err.New(s3err.InvalidArgument, "Invalid Encoding Method specified in Request")
	}
	return p, nil
}

// urlEncode is the encoding S3 applies to names for encoding-type=url:
// form encoding, keeping "/" readable. Clients decode it with unquote_plus
// (botocore) or url.QueryUnescape.
func urlEncode(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "%2F", "/")
}

func (p listParams) entries(l listing, objs map[string]*object, withOwner bool) ([]xmlContent, []xmlPrefix) {
	contents := make([]xmlContent, 0, len(l.keys))
	for _, k := range l.keys {
		o := objs[k]
		ct := xmlContent{Key: p.encode(k), LastModified: timeISO(o.modified), ETag: o.etag, Size: len(o.data), StorageClass: "STANDARD"}
		if withOwner {
			ow := owner
			ct.Owner = &ow
		}
		contents = append(contents, ct)
	}
	prefixes := make([]xmlPrefix, 0, len(l.prefixes))
	for _, cp := range l.prefixes {
		prefixes = append(prefixes, xmlPrefix{p.encode(cp)})
	}
	return contents, prefixes
}

func (c *call) listObjectsV1() error {
	q := c.r.URL.Query()
	p, err := parseListParams(q)
	if err != nil {
		return err
	}
	keys, objs, err := c.s.st.snapshot(c.bucket)
	if err != nil {
		return err
	}
	marker := q.Get("marker")
	l := listPage(keys, p.prefix, p.delim, marker, p.max)
	res := xmlListV1{
		Xmlns: xmlns, Name: c.bucket, Prefix: p.encode(p.prefix), Marker: p.encode(marker),
		MaxKeys: p.max, Delimiter: p.encode(p.delim), EncodingType: p.encodingType, IsTruncated: l.truncated,
	}
	if l.truncated {
		res.NextMarker = p.encode(l.last)
	}
	res.Contents, res.CommonPrefixes = p.entries(l, objs, true)
	return c.writeXML(http.StatusOK, res)
}

func (c *call) listObjectsV2() error {
	q := c.r.URL.Query()
	if q.Get("list-type") != "2" {
		return s3err.New(s3err.InvalidArgument, "Invalid List Type specified in Request")
	}
	p, err := parseListParams(q)
	if err != nil {
		return err
	}
	keys, objs, err := c.s.st.snapshot(c.bucket)
	if err != nil {
		return err
	}
	startAfter, token := q.Get("start-after"), q.Get("continuation-token")
	after := startAfter
	if _, ok := q["continuation-token"]; ok {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(raw) == 0 {
			return s3err.New(s3err.InvalidArgument, "The continuation token provided is incorrect")
		}
		after = string(raw)
	}
	l := listPage(keys, p.prefix, p.delim, after, p.max)
	res := xmlListV2{
		Xmlns: xmlns, Name: c.bucket, Prefix: p.encode(p.prefix), ContinuationToken: token,
		StartAfter: p.encode(startAfter), KeyCount: len(l.keys) + len(l.prefixes), MaxKeys: p.max,
		Delimiter: p.encode(p.delim), EncodingType: p.encodingType, IsTruncated: l.truncated,
	}
	if l.truncated {
		res.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(l.last))
	}
	res.Contents, res.CommonPrefixes = p.entries(l, objs, q.Get("fetch-owner") == "true")
	return c.writeXML(http.StatusOK, res)
}
