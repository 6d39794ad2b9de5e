package s3mem

import (
	"crypto/subtle"
	"net/http"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// newVerifier accepts signatures made with the one key pair, for S3 in
// Region, as S3 itself would.
func newVerifier(accessKeyID, secretAccessKey string) *sigv4.Verifier {
	lookup := func(id string) (string, string, error) {
		if subtle.ConstantTimeCompare([]byte(id), []byte(accessKeyID)) != 1 {
			return "", "", s3err.New(s3err.InvalidAccessKeyID, "The AWS Access Key Id you provided does not exist in our records.")
		}
		return secretAccessKey, "", nil
	}
	return &sigv4.Verifier{Lookup: lookup, Region: Region, Service: "s3"}
}

// echoChecksum returns the verified x-amz-checksum-* value to the client,
// as S3 does; call it only after the body was read to its end, since a
// trailing checksum is known only then.
func (c *call) echoChecksum() {
	name := c.auth.Checksum
	if name == "" {
		return
	}
	v := c.r.Header.Get(name)
	if c.auth.Trailer != nil && c.auth.Trailer.Get(name) != "" {
		v = c.auth.Trailer.Get(name)
	}
	if v != "" {
		c.w.Header().Set(http.CanonicalHeaderKey(name), v)
	}
}
