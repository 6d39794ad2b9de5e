package s3mem

import (
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// subresources are the query keys that select an operation. Any query key
// that is neither one of these nor a known parameter is an operation this
// server does not implement.
var subresources = map[string]bool{
	"location": true, "list-type": true, "delete": true, "uploads": true,
	"uploadId": true, "partNumber": true, "tagging": true,
}

// params are query keys that only parameterise an operation.
var params = map[string]bool{
	"x-id": true, "prefix": true, "delimiter": true, "max-keys": true, "marker": true,
	"continuation-token": true, "start-after": true, "fetch-owner": true, "encoding-type": true,
	"max-parts": true, "part-number-marker": true, "max-buckets": true, "bucket-region": true,
	"response-content-type": true, "response-content-language": true, "response-expires": true,
	"response-cache-control": true, "response-content-disposition": true, "response-content-encoding": true,
}

// selectors returns the request's subresource keys, sorted and joined with
// "&", or an error naming a query key this server does not know.
func selectors(q url.Values) (string, error) {
	var sel []string
	for k := range q {
		switch {
		case subresources[k]:
			sel = append(sel, k)
		case params[k], strings.HasPrefix(k, "X-Amz-"):
		default:
			return "", s3err.New(s3err.NotImplemented, "s3mem does not implement the %q query parameter", k)
		}
	}
	sort.Strings(sel)
	return strings.Join(sel, "&"), nil
}

type handler func(*call) error

// routes maps method, level and subresources to an operation.
var routes = map[string]handler{
	"GET service ":                   (*call).listBuckets,
	"PUT bucket ":                    (*call).createBucket,
	"HEAD bucket ":                   (*call).headBucket,
	"DELETE bucket ":                 (*call).deleteBucket,
	"GET bucket location":            (*call).getBucketLocation,
	"GET bucket ":                    (*call).listObjectsV1,
	"GET bucket list-type":           (*call).listObjectsV2,
	"POST bucket delete":             (*call).deleteObjects,
	"GET object ":                    (*call).getObject,
	"HEAD object ":                   (*call).headObject,
	"PUT object ":                    (*call).putOrCopyObject,
	"DELETE object ":                 (*call).deleteObject,
	"GET object tagging":             (*call).getObjectTagging,
	"PUT object tagging":             (*call).putObjectTagging,
	"DELETE object tagging":          (*call).deleteObjectTagging,
	"POST object uploads":            (*call).createMultipartUpload,
	"PUT object partNumber&uploadId": (*call).uploadPart,
	"POST object uploadId":           (*call).completeMultipartUpload,
	"DELETE object uploadId":         (*call).abortMultipartUpload,
	"GET object uploadId":            (*call).listParts,
}

func (s *Server) route(c *call) error {
	sel, err := selectors(c.r.URL.Query())
	if err != nil {
		return err
	}
	level := "object"
	switch {
	case c.bucket == "":
		level = "service"
	case c.key == "":
		level = "bucket"
	}
	h, ok := routes[c.r.Method+" "+level+" "+sel]
	if !ok {
		return s3err.New(s3err.NotImplemented, "s3mem does not implement %s on a %s with %q", c.r.Method, level, sel)
	}
	return h(c)
}

// writeXML sends v as an S3 XML document.
func (c *call) writeXML(status int, v any) error {
	out, err := marshalXML(v)
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/xml")
	c.w.WriteHeader(status)
	_, _ = c.w.Write(out)
	return nil
}

func (c *call) noContent() error {
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
