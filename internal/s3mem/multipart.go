package s3mem

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

type xmlInitiate struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	Xmlns    string   `xml:"xmlns,attr"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	UploadID string   `xml:"UploadId"`
}

func (c *call) createMultipartUpload() error {
	if err := checkKey(c.key); err != nil {
		return err
	}
	m, err := metaFrom(c.r.Header)
	if err != nil {
		return err
	}
	// Read (and so verify) any body, though S3 expects none.
	if _, err := c.readXMLBody(); err != nil {
		return err
	}
	id, err := c.s.st.createUpload(c.bucket, c.key, m)
	if err != nil {
		return err
	}
	return c.writeXML(http.StatusOK, xmlInitiate{Xmlns: xmlns, Bucket: c.bucket, Key: c.key, UploadID: id})
}

// partNumber reads partNumber, 1 to 10000.
func (c *call) partNumber() (int, error) {
	n, err := strconv.Atoi(c.r.URL.Query().Get("partNumber"))
	if err != nil || n < 1 || n > 10000 {
		return 0, s3err.New(s3err.InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive")
	}
	return n, nil
}

type xmlCopyPart struct {
	XMLName      xml.Name `xml:"CopyPartResult"`
	Xmlns        string   `xml:"xmlns,attr"`
	ETag         string   `xml:"ETag"`
	LastModified string   `xml:"LastModified"`
}

// uploadPart serves UploadPart and, with x-amz-copy-source, UploadPartCopy.
func (c *call) uploadPart() error {
	n, err := c.partNumber()
	if err != nil {
		return err
	}
	id := c.r.URL.Query().Get("uploadId")
	if err := c.s.st.checkUpload(c.bucket, c.key, id); err != nil {
		return err
	}
	copying := c.r.Header.Get("x-amz-copy-source") != ""
	var data []byte
	if copying {
		src, _, _, err := c.copySource()
		if err != nil {
			return err
		}
		data = src.data
		if v := c.r.Header.Get("x-amz-copy-source-range"); v != "" {
			rng, ok := parseCopyRange(v, int64(len(src.data)))
			if !ok {
				return s3err.New(s3err.InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
			}
			data = src.data[rng.start : rng.end+1]
		}
	} else if data, err = c.readUpload(""); err != nil {
		return err
	}
	p := &part{data: data, etag: etagOf(data), modified: c.s.st.timestamp()}
	if err := c.s.st.putPart(c.bucket, c.key, id, n, p); err != nil {
		return err
	}
	if copying {
		return c.writeXML(http.StatusOK, xmlCopyPart{Xmlns: xmlns, ETag: p.etag, LastModified: timeISO(p.modified)})
	}
	c.w.Header().Set("ETag", p.etag)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// parseCopyRange reads x-amz-copy-source-range, which unlike Range must
// be bytes=first-last and lie inside the source: S3 refuses rather than
// clips it.
func parseCopyRange(v string, size int64) (byteRange, bool) {
	spec, ok := strings.CutPrefix(v, "bytes=")
	first, last, found := strings.Cut(spec, "-")
	if !ok || !found {
		return byteRange{}, false
	}
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || a < 0 || b < a || b >= size {
		return byteRange{}, false
	}
	return byteRange{a, b}, true
}

type xmlCompleteRequest struct {
	Parts []struct {
		PartNumber int    `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
	} `xml:"Part"`
}

type xmlCompleteResult struct {
	XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
	Xmlns    string   `xml:"xmlns,attr"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
}

func (c *call) completeMultipartUpload() error {
	id := c.r.URL.Query().Get("uploadId")
	body, err := c.readXMLBody()
	if err != nil {
		return err
	}
	var req xmlCompleteRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		return s3err.New(s3err.MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema")
	}
	want := make([]completedPart, 0, len(req.Parts))
	for _, p := range req.Parts {
		want = append(want, completedPart{p.PartNumber, p.ETag})
	}
	etag, err := c.s.st.complete(c.bucket, c.key, id, want)
	if err != nil {
		return err
	}
	return c.writeXML(http.StatusOK, xmlCompleteResult{
		Xmlns: xmlns, Location: "/" + c.bucket + "/" + c.key, Bucket: c.bucket, Key: c.key, ETag: etag,
	})
}

func (c *call) abortMultipartUpload() error {
	if err := c.s.st.abortUpload(c.bucket, c.key, c.r.URL.Query().Get("uploadId")); err != nil {
		return err
	}
	return c.noContent()
}

type xmlPart struct {
	PartNumber   int    `xml:"PartNumber"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int    `xml:"Size"`
}

type xmlListParts struct {
	XMLName              xml.Name  `xml:"ListPartsResult"`
	Xmlns                string    `xml:"xmlns,attr"`
	Bucket               string    `xml:"Bucket"`
	Key                  string    `xml:"Key"`
	UploadID             string    `xml:"UploadId"`
	Initiator            xmlOwner  `xml:"Initiator"`
	Owner                xmlOwner  `xml:"Owner"`
	StorageClass         string    `xml:"StorageClass"`
	PartNumberMarker     int       `xml:"PartNumberMarker"`
	NextPartNumberMarker int       `xml:"NextPartNumberMarker,omitempty"`
	MaxParts             int       `xml:"MaxParts"`
	IsTruncated          bool      `xml:"IsTruncated"`
	Parts                []xmlPart `xml:"Part"`
}

func (c *call) listParts() error {
	q := c.r.URL.Query()
	max, marker := 1000, 0
	if v := q.Get("max-parts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3err.New(s3err.InvalidArgument, "Provided max-parts not an integer or within integer range")
		}
		max = min(n, 1000)
	}
	if v := q.Get("part-number-marker"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3err.New(s3err.InvalidArgument, "Provided part-number-marker not an integer or within integer range")
		}
		marker = n
	}
	id := q.Get("uploadId")
	_, parts, err := c.s.st.listParts(c.bucket, c.key, id)
	if err != nil {
		return err
	}
	res := xmlListParts{
		Xmlns: xmlns, Bucket: c.bucket, Key: c.key, UploadID: id, Initiator: owner, Owner: owner,
		StorageClass: "STANDARD", PartNumberMarker: marker, MaxParts: max, Parts: []xmlPart{},
	}
	for _, p := range parts {
		if p.number <= marker {
			continue
		}
		if len(res.Parts) == max {
			res.IsTruncated = true
			break
		}
		res.Parts = append(res.Parts, xmlPart{p.number, timeISO(p.modified), p.etag, p.size})
		res.NextPartNumberMarker = p.number
	}
	return c.writeXML(http.StatusOK, res)
}
