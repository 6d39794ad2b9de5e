package s3mem

import (
	"crypto/md5"
	"encoding/base64"
	"net/http"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// checkContentMD5 verifies Content-MD5 against the payload. (The
// x-amz-checksum-* headers and trailers are verified by the signature
// verifier's body reader.)
func checkContentMD5(req http.Header, data []byte) error {
	v := req.Get("Content-MD5")
	if v == "" {
		return nil
	}
	want, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(want) != md5.Size {
		return s3err.New(s3err.InvalidDigest, "The Content-MD5 you specified was invalid.")
	}
	if sum := md5.Sum(data); string(sum[:]) != string(want) {
		return s3err.New(s3err.BadDigest, "The Content-MD5 you specified did not match what we received.")
	}
	return nil
}
