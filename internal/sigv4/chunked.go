package sigv4

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// Limits of the aws-chunked decoder. Memory is bounded by the line buffer:
// chunk data streams through without being held, so a chunk may be large,
// but not absurd.
const (
	maxChunkSize = 16 << 20 // SDKs send 64 KiB to 1 MiB; 16 MiB leaves room
	maxLineLen   = 1024     // "<hex>;chunk-signature=<64 hex>" is ~100 bytes
	lineBufSize  = 4096
)

// emptySHA256 is the hex SHA-256 of nothing, part of every chunk's
// string to sign.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

const (
	stHeader = iota // expecting a chunk-size line
	stData          // inside a chunk's data
	stDone          // verified to the end
)

// chunkReader decodes and verifies an aws-chunked body:
//
//	<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n
//	[<trailer>:<value>\r\n ... [x-amz-trailer-signature:<sig>\r\n]]\r\n
//
// Each chunk's signature is HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\n" date
// "\n" scope "\n" previous-signature "\n" sha256("") "\n" sha256(data)),
// starting from the seed signature of the request itself, so chunks can
// be neither altered, reordered, dropped nor appended.
type chunkReader struct {
	a        *Auth
	st       *chain
	br       *bufio.Reader
	signed   bool  // chunks carry signatures
	prevSize int64 // size of the previous chunk (S3: only the last data chunk may be under minChunkSize)
	trailer  bool  // trailing headers follow the last chunk
	mac      signer
	prev     [32]byte  // signature of the previous chunk (the seed at first)
	want     [32]byte  // signature claimed for the current chunk
	data     hash.Hash // SHA-256 of the current chunk's data
	sum      hash.Hash // checksum of the decoded payload, if any
	left     int64     // bytes left in the current chunk
	total    int64     // decoded bytes so far
	chunks   int
	state    int
	err      error
	sts      []byte
}

func newChunkReader(a *Auth, body io.Reader) *chunkReader {
	c := &chunkReader{
		a:       a,
		st:      a.chain,
		br:      bufio.NewReaderSize(body, lineBufSize),
		signed:  a.Payload == StreamingSigned || a.Payload == StreamingSignedTrailer,
		trailer: a.Payload == StreamingSignedTrailer || a.Payload == StreamingUnsignedTrailer,
	}
	if c.signed {
		c.mac = newSigner(&c.st.key)
		c.prev = c.st.seed
		c.data = sha256.New()
		c.sts = make([]byte, 0, 256)
	}
	if c.st.alg != nil {
		c.sum = c.st.alg.new()
	}
	return c
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for {
		if c.err != nil {
			return 0, c.err
		}
		switch c.state {
		case stDone:
			return 0, io.EOF
		case stHeader:
			if e := c.readHeader(); e != nil {
				c.err = e
			}
		case stData:
			if len(p) == 0 {
				return 0, nil
			}
			if int64(len(p)) > c.left {
				p = p[:c.left]
			}
			n, err := c.br.Read(p)
			if n > 0 {
				c.left -= int64(n)
				c.total += int64(n)
				if c.data != nil {
					c.data.Write(p[:n])
				}
				if c.sum != nil {
					c.sum.Write(p[:n])
				}
			}
			if c.left == 0 {
				if e := c.endChunk(); e != nil {
					c.err = e
					return n, e
				}
			} else if err != nil {
				if err == io.EOF {
					c.err = malformedBody("the body ended inside chunk %d", c.chunks)
				} else {
					c.err = readError(err)
				}
				return n, c.err
			}
			if n > 0 {
				return n, nil
			}
		}
	}
}

// readLine returns the next CRLF-terminated line without its CRLF. At a
// clean end of input it returns io.EOF.
func (c *chunkReader) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull || len(line) > maxLineLen:
		return nil, malformedBody("a chunk header or trailer line is longer than %d bytes", maxLineLen)
	case err == io.EOF && len(line) == 0:
		return nil, io.EOF
	case err == io.EOF:
		return nil, malformedBody("the body ended inside a chunk header or trailer line")
	case err != nil:
		return nil, readError(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, malformedBody("chunk header and trailer lines must end in CRLF")
	}
	return line[:len(line)-2], nil
}

func (c *chunkReader) readHeader() *s3err.Error {
	line, err := c.readLine()
	if err == io.EOF {
		return malformedBody("the body ended before its final zero-length chunk")
	}
	if err != nil {
		return err.(*s3err.Error)
	}
	sizeHex := line
	var ext []byte
	if i := indexByte(line, ';'); i >= 0 {
		sizeHex, ext = line[:i], line[i+1:]
	}
	size, ok := parseHexSize(sizeHex)
	if !ok {
		return malformedBody("invalid chunk size in chunk %d", c.chunks+1)
	}
	if size > 0 && c.chunks > 0 && c.prevSize < minChunkSize {
		// The previous chunk was short but was not the last with data.
		return s3err.Detailed(s3err.InvalidChunkSizeError, msgChunkSize, "chunk %d holds %d bytes and is followed by another", c.chunks, c.prevSize)
	}
	c.prevSize = size
	c.chunks++
	if c.signed {
		const prefix = "chunk-signature="
		if len(ext) != len(prefix)+64 || string(ext[:len(prefix)]) != prefix {
			return malformedBody("chunk %d must carry ;chunk-signature=<64 hex digits>", c.chunks)
		}
		sig, ok := decodeSig(string(ext[len(prefix):]))
		if !ok {
			return malformedBody("chunk %d has a malformed chunk-signature", c.chunks)
		}
		c.want = sig
		c.data.Reset()
	} else if ext != nil {
		return malformedBody("chunk %d has an extension; %s chunks carry none", c.chunks, streamingUnsignedTrailer)
	}
	if dl := c.a.DecodedLength; dl >= 0 && c.total+size > dl {
		// S3 reports a framing fault first: if the chunk's data is not
		// followed by CRLF where its size says, the size is wrong, not the
		// declared length. (Peeked only: nothing beyond dl is passed on.)
		if size+2 <= int64(lineBufSize) {
			b, err := c.br.Peek(int(size) + 2)
			if err != nil || b[size] != '\r' || b[size+1] != '\n' {
				return malformedBody("chunk %d's data is not followed by CRLF (its size is wrong)", c.chunks)
			}
		}
		return incomplete("the chunks hold more than x-amz-decoded-content-length (%d) bytes", dl)
	}
	if size > 0 {
		c.left = size
		c.state = stData
		return nil
	}
	// The zero-length chunk ends the payload.
	if c.signed {
		if e := c.checkChunk(); e != nil {
			return e
		}
	}
	if dl := c.a.DecodedLength; dl >= 0 && c.total != dl {
		return incomplete("the chunks hold %d bytes; x-amz-decoded-content-length said %d", c.total, dl)
	}
	if e := c.readTrailers(); e != nil {
		return e
	}
	var one [1]byte
	if n, _ := c.br.Read(one[:]); n > 0 {
		return malformedBody("data follows the final chunk")
	}
	c.state = stDone
	return nil
}

// endChunk consumes the CRLF after a chunk's data and checks its
// signature.
func (c *chunkReader) endChunk() *s3err.Error {
	var crlf [2]byte
	if _, err := io.ReadFull(c.br, crlf[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return malformedBody("the body ended after chunk %d's data", c.chunks)
		}
		return readError(err)
	}
	if crlf != [2]byte{'\r', '\n'} {
		return malformedBody("chunk %d's data is not followed by CRLF (its size is wrong)", c.chunks)
	}
	c.state = stHeader
	if c.signed {
		return c.checkChunk()
	}
	return nil
}

// checkChunk verifies the current chunk's signature and advances the chain.
func (c *chunkReader) checkChunk() *s3err.Error {
	var sum [32]byte
	c.data.Sum(sum[:0])
	b := append(c.sts[:0], "AWS4-HMAC-SHA256-PAYLOAD\n"...)
	b = append(b, c.st.amzDate...)
	b = append(b, '\n')
	b = append(b, c.st.scope...)
	b = append(b, '\n')
	b = appendHex(b, c.prev[:])
	b = append(b, '\n')
	b = append(b, emptySHA256...)
	b = append(b, '\n')
	b = appendHex(b, sum[:])
	c.sts = b
	got := c.mac.sign(b)
	if !hmac.Equal(got[:], c.want[:]) {
		return s3err.New(s3err.SignatureDoesNotMatch, "The chunk signature of chunk %d does not match: the chunk was altered, reordered or signed with another key", c.chunks)
	}
	c.prev = c.want
	return nil
}

// readTrailers reads the trailing headers after the final chunk and
// verifies their signature and the checksum they carry.
func (c *chunkReader) readTrailers() *s3err.Error {
	if !c.trailer {
		// Only the final CRLF may follow; tolerate its absence.
		line, err := c.readLine()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err.(*s3err.Error)
		}
		if len(line) != 0 {
			return malformedTrailer("trailing headers were sent without x-amz-trailer and a trailer payload mode")
		}
		return nil
	}
	var signed []byte // "name:value\n" for each trailer, as the signature covers them
	var sig [32]byte
	haveSig, blank := false, false
	trailer := http.Header{}
	for lines := 0; ; lines++ {
		if lines > maxTrailers+2 {
			return malformedTrailer("too many trailer lines")
		}
		line, err := c.readLine()
		if err == io.EOF {
			if blank && len(trailer) == 0 && !haveSig {
				break // the blank line after the final chunk ended the body
			}
			// The trailers end with a blank line.
			return malformedBody("the body ended before the blank line that ends the trailers")
		}
		if err != nil {
			return err.(*s3err.Error)
		}
		if len(line) == 0 {
			// Some encoders put a blank line between the final chunk and
			// the trailers; a blank line after them ends the body.
			if len(trailer) == 0 && !haveSig && !blank {
				blank = true
				continue
			}
			break
		}
		if indexByte(line, '\r') >= 0 {
			return malformedBody("a trailer line holds a bare CR")
		}
		if haveSig {
			return malformedTrailer("x-amz-trailer-signature must be the last trailer")
		}
		name, value, ok := strings.Cut(string(line), ":")
		lower := strings.ToLower(strings.TrimSpace(name))
		if !ok || lower == "" {
			return malformedTrailer("a trailer line is not name:value")
		}
		if lower == "x-amz-trailer-signature" {
			s, ok := decodeSig(strings.TrimSpace(value))
			if !ok {
				return malformedBody("x-amz-trailer-signature is malformed")
			}
			sig, haveSig = s, true
			continue
		}
		if !contains(c.st.trailers, lower) {
			if c.signed && len(c.st.trailers) > 0 && len(trailer) == len(c.st.trailers) {
				// Every declared trailer is in: S3 reads what follows as
				// the trailer signature's line, garbled.
				return malformedBody("%q where x-amz-trailer-signature was due", clip(lower))
			}
			return malformedTrailer("trailer %q was not declared in x-amz-trailer", clip(lower))
		}
		key := textproto.CanonicalMIMEHeaderKey(lower)
		if _, dup := trailer[key]; dup {
			return malformedTrailer("trailer %q is sent twice", lower)
		}
		trailer[key] = []string{strings.TrimSpace(value)}
		signed = append(signed, line...)
		signed = append(signed, '\n')
	}
	for _, name := range c.st.trailers {
		if _, ok := trailer[textproto.CanonicalMIMEHeaderKey(name)]; !ok {
			return malformedTrailer("trailer %q declared in x-amz-trailer was not sent", clip(name))
		}
	}
	if c.signed {
		if !haveSig {
			return s3err.New(s3err.SignatureDoesNotMatch, "the trailing headers carry no x-amz-trailer-signature")
		}
		h := sha256.Sum256(signed)
		b := append(c.sts[:0], "AWS4-HMAC-SHA256-TRAILER\n"...)
		b = append(b, c.st.amzDate...)
		b = append(b, '\n')
		b = append(b, c.st.scope...)
		b = append(b, '\n')
		b = appendHex(b, c.prev[:])
		b = append(b, '\n')
		b = appendHex(b, h[:])
		c.sts = b
		got := c.mac.sign(b)
		if !hmac.Equal(got[:], sig[:]) {
			return s3err.New(s3err.SignatureDoesNotMatch, "The trailer signature does not match: the trailing headers were altered or signed with another key")
		}
	}
	if c.a.headerChecksum == "" && c.a.Checksum != "" {
		// The checksum came in the trailer: well-formed, whether verified
		// here or forwarded for the upstream to verify.
		if alg := algorithmFor(c.a.Checksum); alg != nil && !alg.validValue(trailer.Get(c.a.Checksum)) {
			return s3err.New(s3err.InvalidRequest, "Value for %s trailing header is invalid.", c.a.Checksum)
		}
	}
	if c.sum != nil {
		sent := c.a.headerChecksum
		if sent == "" {
			sent = trailer.Get(c.a.Checksum)
		}
		if e := checkSum(c.a.Checksum, c.sum, sent); e != nil {
			return e
		}
	}
	c.a.Trailer = trailer
	return nil
}

// parseHexSize parses a chunk size of 1 to 8 hex digits (at most
// maxChunkSize), so that no size line can overflow or ask for an absurd
// chunk.
func parseHexSize(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, n <= maxChunkSize
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// S3's messages for faults in an aws-chunked body, word for word.
const (
	msgBodyTerminated = "The request body terminated unexpectedly"
	msgBadTrailer     = "The request contained trailing data that was not well-formed or did not conform to our published schema."
	msgChunkSize      = "Only the last chunk is allowed to have a size less than 8192 bytes"
)

// minChunkSize is the smallest size S3 accepts for a chunk that is not
// the last one holding data.
const minChunkSize = 8192

// malformedBody is a fault in the aws-chunked framing. S3 answers those
// with IncompleteBody: it reads the framing as the body's length.
func malformedBody(format string, args ...any) *s3err.Error {
	return s3err.Detailed(s3err.IncompleteBody, msgBodyTerminated, "the aws-chunked request body is malformed: "+format, args...)
}

// malformedTrailer is a fault in the trailing headers, S3's
// MalformedTrailerError.
func malformedTrailer(format string, args ...any) *s3err.Error {
	return s3err.Detailed(s3err.MalformedTrailerError, msgBadTrailer, format, args...)
}
