package sigv4

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// Body returns r's payload decoded (aws-chunked framing removed in
// streaming modes) and verified as it streams, never buffering the whole
// body: SHA256 mode compares the digest at EOF; streaming-signed checks
// every chunk's signature (chained from the seed signature) and the
// trailer signature; trailer modes verify the trailing checksum (crc32,
// crc32c, sha1, sha256, crc64nvme) if given, and a checksum sent as an
// x-amz-checksum-* header is verified in every mode. On mismatch or
// truncation Read returns an *s3err.Error (XAmzContentSHA256Mismatch,
// SignatureDoesNotMatch, BadDigest, IncompleteBody, InvalidRequest)
// instead of io.EOF, so a proxy that streams this reader upstream aborts
// the upstream request.
//
// Bytes are handed out before the check that covers them completes (the
// digest of the whole body is known only at its end), so a consumer must
// treat any error as "discard everything read": S3 semantics for an
// aborted upload.
func (a *Auth) Body(body io.Reader) io.Reader {
	if body == nil {
		body = http.NoBody
	}
	if a.headerComposite {
		// A composite checksum describes a whole multipart object, not
		// this payload.
		return errBody{s3err.Detailed(s3err.InvalidRequest, "Value for "+a.Checksum+" header is invalid.", "a composite checksum (\"-N\") is valid on CompleteMultipartUpload only")}
	}
	if a.Payload.Streaming() {
		return newChunkReader(a, body)
	}
	pr := &plainReader{a: a, r: body}
	if a.Payload == SHA256 {
		pr.sha = sha256.New()
	}
	if a.chain != nil && a.chain.alg != nil {
		pr.sum = a.chain.alg.new()
	}
	if pr.sha == nil && pr.sum == nil {
		return body
	}
	return pr
}

// plainReader verifies a body sent as is.
type plainReader struct {
	a   *Auth
	r   io.Reader
	sha hash.Hash // x-amz-content-sha256, if a digest
	sum hash.Hash // x-amz-checksum-*, if sent
	n   int64
	err error
}

func (p *plainReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.r.Read(b)
	if n > 0 {
		p.n += int64(n)
		if p.sha != nil {
			p.sha.Write(b[:n])
		}
		if p.sum != nil {
			p.sum.Write(b[:n])
		}
	}
	switch {
	case err == io.EOF:
		if e := p.finish(); e != nil {
			err = e
		}
		p.err = err
	case err != nil:
		p.err = readError(err)
		err = p.err
	}
	return n, err
}

func (p *plainReader) finish() *s3err.Error {
	if cl := p.a.DecodedLength; cl >= 0 && p.n != cl {
		return incomplete("the body has %d bytes; Content-Length said %d", p.n, cl)
	}
	if p.sha != nil {
		var got [32]byte
		p.sha.Sum(got[:0])
		var want [32]byte
		if _, err := hex.Decode(want[:], []byte(p.a.PayloadSHA256)); err != nil || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return s3err.Detailed(s3err.XAmzContentSHA256Mismatch, "The provided 'x-amz-content-sha256' header does not match what was computed.", "the body's SHA-256 is %x", got)
		}
	}
	if p.sum != nil {
		return checkSum(p.a.Checksum, p.sum, p.a.headerChecksum)
	}
	return nil
}

// checkSum compares a computed checksum with the value the client sent.
func checkSum(name string, h hash.Hash, sent string) *s3err.Error {
	if got := encodeSum(h); subtle.ConstantTimeCompare([]byte(got), []byte(sent)) != 1 {
		return s3err.Detailed(s3err.BadDigest, "The "+checksumAlgoName(name)+" you specified did not match the calculated checksum.", "the body's %s is %s", name, got)
	}
	return nil
}

// readError maps an error from the underlying body.
func readError(err error) *s3err.Error {
	var se *s3err.Error
	if errors.As(err, &se) {
		return se
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return s3err.New(s3err.EntityTooLarge, "Your proposed upload exceeds the maximum allowed size")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return incomplete("the body ended early")
	}
	return incomplete("reading the body failed: %v", err)
}

func incomplete(format string, args ...any) *s3err.Error {
	return s3err.Detailed(s3err.IncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header", format, args...)
}

// checksumAlgoName is S3's name of the algorithm of an x-amz-checksum-*
// header ("x-amz-checksum-crc32" -> "CRC32"), as its BadDigest names it.
func checksumAlgoName(header string) string {
	return strings.ToUpper(strings.TrimPrefix(header, "x-amz-checksum-"))
}

// errBody fails every Read with err.
type errBody struct{ err error }

func (e errBody) Read([]byte) (int, error) { return 0, e.err }
