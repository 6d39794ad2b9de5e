package sigv4

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"strings"
)

// algorithm is one of S3's flexible checksums, named by its header
// x-amz-checksum-<name>; values are base64 of the big-endian digest.
type algorithm struct {
	header string
	new    func() hash.Hash
}

var (
	crc32cTable    = crc32.MakeTable(crc32.Castagnoli)
	crc64nvmeTable = crc64.MakeTable(0x9a6c9329ac4bc9b5) // CRC-64/NVME, reflected
)

var algorithms = []*algorithm{
	{header: "x-amz-checksum-crc32", new: func() hash.Hash { return crc32.NewIEEE() }},
	{header: "x-amz-checksum-crc32c", new: func() hash.Hash { return crc32.New(crc32cTable) }},
	{header: "x-amz-checksum-crc64nvme", new: func() hash.Hash { return crc64.New(crc64nvmeTable) }},
	{header: "x-amz-checksum-sha1", new: sha1.New},
	{header: "x-amz-checksum-sha256", new: sha256.New},
}

// checksumPrefix starts every flexible-checksum header; x-amz-checksum-mode
// and -type share it but are not checksums.
const checksumPrefix = "x-amz-checksum-"

func algorithmFor(lowerName string) *algorithm {
	for _, a := range algorithms {
		if a.header == lowerName {
			return a
		}
	}
	return nil
}

// isChecksumName reports whether a lowercase header name claims to be a
// checksum value.
func isChecksumName(lowerName string) bool {
	return strings.HasPrefix(lowerName, checksumPrefix) &&
		lowerName != "x-amz-checksum-mode" && lowerName != "x-amz-checksum-type" &&
		lowerName != "x-amz-checksum-algorithm"
}

// encodeSum is the header value for h's digest.
func encodeSum(h hash.Hash) string {
	var buf [32]byte
	return base64.StdEncoding.EncodeToString(h.Sum(buf[:0]))
}

// ChecksumSize is the digest size in bytes of the flexible checksum whose
// header is name (e.g. "x-amz-checksum-crc32": 4), or 0 for no such
// checksum.
func ChecksumSize(name string) int {
	a := algorithmFor(strings.ToLower(name))
	if a == nil {
		return 0
	}
	return a.new().Size()
}
