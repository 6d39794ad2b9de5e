package s3mem

import (
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// validBucketName applies S3's naming rules for new buckets: 3 to 63
// lower-case letters, digits, dots and hyphens, starting and ending with a
// letter or digit.
func validBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 || strings.Contains(name, "..") {
		return false
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		alnum := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9'
		if !alnum && (i == 0 || i == len(name)-1 || ch != '.' && ch != '-') {
			return false
		}
	}
	return true
}

type xmlBucket struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
	BucketRegion string `xml:"BucketRegion"`
}

type xmlListBuckets struct {
	XMLName           xml.Name    `xml:"ListAllMyBucketsResult"`
	Xmlns             string      `xml:"xmlns,attr"`
	Owner             xmlOwner    `xml:"Owner"`
	Buckets           []xmlBucket `xml:"Buckets>Bucket"`
	ContinuationToken string      `xml:"ContinuationToken,omitempty"`
	Prefix            string      `xml:"Prefix,omitempty"`
}

func (c *call) listBuckets() error {
	q := c.r.URL.Query()
	prefix := q.Get("prefix")
	max := 10000
	if v := q.Get("max-buckets"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return s3err.New(s3err.InvalidArgument, "max-buckets must be between 1 and 10000")
		}
		max = n
	}
	after := ""
	if v := q.Get("continuation-token"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			return s3err.New(s3err.InvalidArgument, "The continuation token provided is incorrect")
		}
		after = string(raw)
	}
	res := xmlListBuckets{Xmlns: xmlns, Owner: owner, Prefix: prefix, Buckets: []xmlBucket{}}
	for _, b := range c.s.st.listBuckets() {
		if !strings.HasPrefix(b.name, prefix) || b.name <= after {
			continue
		}
		if len(res.Buckets) == max {
			res.ContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(res.Buckets[max-1].Name))
			break
		}
		res.Buckets = append(res.Buckets, xmlBucket{Name: b.name, CreationDate: timeISO(b.created), BucketRegion: Region})
	}
	return c.writeXML(http.StatusOK, res)
}

type xmlCreateBucket struct {
	LocationConstraint string `xml:"LocationConstraint"`
}

func (c *call) createBucket() error {
	if !validBucketName(c.bucket) {
		e := errorf(codeInvalidBucketName, "The specified bucket is not valid.")
		e.Resource = "/" + c.bucket
		return e
	}
	body, err := c.readXMLBody()
	if err != nil {
		return err
	}
	if len(body) > 0 {
		var cfg xmlCreateBucket
		if err := xml.Unmarshal(body, &cfg); err != nil {
			return s3err.New(s3err.MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema")
		}
		if cfg.LocationConstraint != "" && cfg.LocationConstraint != Region {
			return s3err.New("IllegalLocationConstraintException", "The %s location constraint is incompatible for the region specific endpoint this request was sent to.", cfg.LocationConstraint)
		}
	}
	if err := c.s.st.createBucket(c.bucket); err != nil {
		return err
	}
	c.w.Header().Set("Location", "/"+c.bucket)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (c *call) headBucket() error {
	if err := c.s.st.hasBucket(c.bucket); err != nil {
		return err
	}
	c.w.Header().Set("x-amz-bucket-region", Region)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (c *call) deleteBucket() error {
	if err := c.s.st.deleteBucket(c.bucket); err != nil {
		return err
	}
	return c.noContent()
}

type xmlLocation struct {
	XMLName xml.Name `xml:"LocationConstraint"`
	Xmlns   string   `xml:"xmlns,attr"`
	Value   string   `xml:",chardata"`
}

func (c *call) getBucketLocation() error {
	if err := c.s.st.hasBucket(c.bucket); err != nil {
		return err
	}
	// S3 answers an empty constraint for us-east-1.
	loc := Region
	if loc == "us-east-1" {
		loc = ""
	}
	return c.writeXML(http.StatusOK, xmlLocation{Xmlns: xmlns, Value: loc})
}
