package s3mem

import (
	"net/http"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// S3 error codes the gateway vocabulary in s3err does not have, because the
// gateway itself never answers them; only an upstream does.
const (
	codeNoSuchBucket            = "NoSuchBucket"
	codeNoSuchKey               = "NoSuchKey"
	codeNoSuchUpload            = "NoSuchUpload"
	codeBucketAlreadyOwnedByYou = "BucketAlreadyOwnedByYou"
	codeBucketNotEmpty          = "BucketNotEmpty"
	codeInvalidBucketName       = "InvalidBucketName"
	codeInvalidPart             = "InvalidPart"
	codeInvalidPartOrder        = "InvalidPartOrder"
	codeEntityTooSmall          = "EntityTooSmall"
	codeInvalidRange            = "InvalidRange"
	codePreconditionFailed      = "PreconditionFailed"
	codeMethodNotAllowed        = "MethodNotAllowed"
	codeInvalidTag              = "InvalidTag"
)

var localStatuses = map[string]int{
	codeNoSuchBucket:            http.StatusNotFound,
	codeNoSuchKey:               http.StatusNotFound,
	codeNoSuchUpload:            http.StatusNotFound,
	codeBucketAlreadyOwnedByYou: http.StatusConflict,
	codeBucketNotEmpty:          http.StatusConflict,
	codeInvalidBucketName:       http.StatusBadRequest,
	codeInvalidPart:             http.StatusBadRequest,
	codeInvalidPartOrder:        http.StatusBadRequest,
	codeEntityTooSmall:          http.StatusBadRequest,
	codeInvalidRange:            http.StatusRequestedRangeNotSatisfiable,
	codePreconditionFailed:      http.StatusPreconditionFailed,
	codeMethodNotAllowed:        http.StatusMethodNotAllowed,
	codeInvalidTag:              http.StatusBadRequest,
}

// errorf is s3err.New that also knows the codes above.
func errorf(code, format string, args ...any) *s3err.Error {
	e := s3err.New(code, format, args...)
	if st, ok := localStatuses[code]; ok {
		e.Status = st
	}
	return e
}

func noSuchBucket(name string) *s3err.Error {
	e := errorf(codeNoSuchBucket, "The specified bucket does not exist")
	e.Resource = "/" + name
	return e
}

func noSuchKey(bucket, key string) *s3err.Error {
	e := errorf(codeNoSuchKey, "The specified key does not exist.")
	e.Resource = "/" + bucket + "/" + key
	return e
}
