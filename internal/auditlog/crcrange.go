package auditlog

import (
	"hash/crc32"
	"sync"
)

// The CRC-32C of a slice of a buffer, from the CRCs of the buffer's
// prefixes: findFrame checks every candidate frame of a damaged segment in
// constant time this way.
//
// A CRC is linear over GF(2): for the CRC-32C of a || b (initial value and
// final XOR both all ones),
//
//	crc(a || b) = crc(a)·x^(8·len(b)) mod P  XOR  crc(b)
//
// (zlib's crc32_combine), so crc(b) follows from crc(a || b), crc(a) and
// len(b). Polynomials are in the reflected bit order of package crc32: bit
// 31 is x^0.

// castagnoliReflected is the CRC-32C polynomial, reflected.
const castagnoliReflected = 0x82f63b78

// mulModP returns a·b mod P.
func mulModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; a != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			a ^= m
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReflected
		} else {
			b >>= 1
		}
	}
	return p
}

// bytePowers holds x^(8·i·256^j) mod P in [j][i], for i < 256 and j < 4.
var bytePowers = sync.OnceValue(func() *[4][256]uint32 {
	var t [4][256]uint32
	x8 := uint32(1) << (31 - 8) // x^8
	for j := range t {
		t[j][0] = 1 << 31 // x^0
		t[j][1] = x8
		for i := 2; i < 256; i++ {
			t[j][i] = mulModP(t[j][i-1], x8)
		}
		x8 = mulModP(t[j][255], t[j][1]) // x^(8·256^(j+1))
	}
	return &t
})

// shiftCRC returns c·x^(8n) mod P: what a CRC register holding c holds
// after n zero bytes, less their own contribution.
func shiftCRC(c uint32, n int) uint32 {
	t := bytePowers()
	u := uint32(n)
	p := mulModP(t[0][u&0xff], t[1][u>>8&0xff])
	if u >= 1<<16 {
		p = mulModP(p, mulModP(t[2][u>>16&0xff], t[3][u>>24]))
	}
	return mulModP(p, c)
}

// crcStride is how far apart prefixCRC keeps the prefixes' CRCs.
const crcStride = 64

// prefixCRC answers the CRC-32C of any slice of b in constant time, after
// one pass over b.
type prefixCRC struct {
	b  []byte
	at []uint32 // at[j] is the CRC of b[:j*crcStride]
}

func newPrefixCRC(b []byte) *prefixCRC {
	at := make([]uint32, len(b)/crcStride+1)
	for j := 1; j < len(at); j++ {
		at[j] = crc32.Update(at[j-1], castagnoli, b[(j-1)*crcStride:j*crcStride])
	}
	return &prefixCRC{b: b, at: at}
}

// upTo returns the CRC of b[:i].
func (p *prefixCRC) upTo(i int) uint32 {
	j := i / crcStride
	return crc32.Update(p.at[j], castagnoli, p.b[j*crcStride:i])
}

// crc returns the CRC of b[from:to].
func (p *prefixCRC) crc(from, to int) uint32 {
	return p.upTo(to) ^ shiftCRC(p.upTo(from), to-from)
}
