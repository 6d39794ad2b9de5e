package awsops

import (
	"encoding/binary"
	"math"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"
)

// cborServices maps the service name in a Smithy RPC v2 CBOR path
// (/service/NAME/operation/OP) to the signing name it must be signed for.
var cborServices = map[string]string{
	"GraniteServiceVersion20100801": "monitoring",
}

// cborRPC maps a Smithy RPC v2 CBOR call (CloudWatch in recent SDKs):
// POST /service/{service}/operation/{operation}, Smithy-Protocol:
// rpc-v2-cbor, and a body that is one CBOR map (or empty).
func (m *mapper) cborRPC(smithy []string) (*Op, error) {
	m.proto = pCBOR
	if len(smithy) != 1 || smithy[0] != "rpc-v2-cbor" {
		return nil, m.failure(codeMalformed, "Smithy-Protocol must be exactly one rpc-v2-cbor header")
	}
	if m.r.Method != "POST" {
		return nil, m.failure(codeMalformed, "an RPC v2 CBOR call is a POST, not %q", esc(m.r.Method))
	}
	// The path may carry a prefix (a custom endpoint's path), then
	// /service/NAME/operation/OP, nothing after.
	i := strings.LastIndex(m.r.Path, "/service/")
	var svcName, operation string
	if i >= 0 {
		rest := m.r.Path[i+len("/service/"):]
		var ok bool
		svcName, operation, ok = strings.Cut(rest, "/operation/")
		if !ok || strings.Contains(svcName, "/") || strings.Contains(operation, "/") {
			svcName, operation = "", ""
		}
	}
	// One /service/ and one /operation/ only: with a second pair, the
	// path names two operations, and a router that takes the first
	// ("/service/X/operation/DeleteAlarms/service/X/operation/GetMetricData")
	// would run another one than the last, which is the one checked.
	if strings.Count(m.r.Path, "/service/") != 1 || strings.Count(m.r.Path, "/operation/") != 1 {
		svcName, operation = "", ""
	}
	if svcName == "" || operation == "" {
		return nil, m.failure(codeMalformed, "path %q is not /service/NAME/operation/OPERATION", esc(m.r.Path))
	}
	if err := m.name("operation", operation, 1, 128, charset("")); err != nil {
		return nil, err
	}
	m.operation = operation
	svc, known := cborServices[svcName]
	switch {
	case !known:
		return nil, m.failure(codeDenied, "Airlock does not map RPC v2 CBOR service %q", esc(svcName))
	case svc != m.r.Service:
		return nil, m.failure(codeDenied, "path names service %s, but the request is signed for %q", svcName, esc(m.r.Service))
	}
	if queryNamesOperation(m.r.RawQuery) {
		return nil, m.failure(codeMalformed, "an RPC v2 CBOR call must not carry a Query protocol Action or Operation")
	}
	if len(m.r.Body) > 0 {
		ct := m.r.Header.Values("Content-Type")
		if len(ct) != 1 {
			return nil, m.failure(codeMalformed, "a CBOR call with a body has exactly one Content-Type header, not %d", len(ct))
		}
		if mt, _, err := mime.ParseMediaType(ct[0]); err != nil || mt != "application/cbor" {
			return nil, m.failure(codeMalformed, "Content-Type %q is not application/cbor", esc(ct[0]))
		}
	}
	root := &node{kind: 'o'}
	if len(m.r.Body) > 0 {
		d := cborDecoder{b: m.r.Body}
		v, err := d.item(0, false)
		if err == nil && d.off != len(d.b) {
			err = errCBOR("data after the CBOR item")
		}
		if err != nil {
			return nil, m.failure(codeMalformed, "malformed CBOR body: %s", err)
		}
		if v.kind != 'o' {
			return nil, m.failure(codeMalformed, "the CBOR body is not a map")
		}
		root = v
	}
	return m.run(svc, operation, pCBOR, treeInput{m, root})
}

type errCBOR string

func (e errCBOR) Error() string { return string(e) }

// cborDecoder is a small bounded CBOR (RFC 8949) reader for request
// bodies. It validates the whole item (well-formed, text strings valid
// UTF-8, map keys text strings and never repeated, nesting and kept nodes
// bounded, every length checked against the bytes left) and keeps only
// what the mapper reads, like the JSON reader. smithy-go's own decoder is
// not used: it keeps the last of duplicate map keys silently and builds
// the whole body as a tree.
type cborDecoder struct {
	b   []byte
	off int
	c   counter
}

// head reads an item's initial byte and argument. For indefinite lengths
// it returns indef=true.
func (d *cborDecoder) head() (major byte, arg uint64, indef bool, err error) {
	if d.off >= len(d.b) {
		return 0, 0, false, errCBOR("unexpected end")
	}
	ib := d.b[d.off]
	d.off++
	major, ai := ib>>5, ib&0x1f
	switch {
	case ai < 24:
		return major, uint64(ai), false, nil
	case ai <= 27:
		n := 1 << (ai - 24)
		if len(d.b)-d.off < n {
			return 0, 0, false, errCBOR("unexpected end")
		}
		p := d.b[d.off : d.off+n]
		d.off += n
		switch n {
		case 1:
			arg = uint64(p[0])
		case 2:
			arg = uint64(binary.BigEndian.Uint16(p))
		case 4:
			arg = uint64(binary.BigEndian.Uint32(p))
		default:
			arg = binary.BigEndian.Uint64(p)
		}
		return major, arg, false, nil
	case ai == 31 && major >= 2 && major <= 5:
		return major, 0, true, nil
	case ai == 31 && major == 7:
		return 0, 0, false, errCBOR("break outside an indefinite-length item")
	}
	return 0, 0, false, errCBOR("reserved additional information")
}

// bytesOf reads a definite byte string's (major 2) or text string's
// (major 3, valid UTF-8) content, or one chunk of an indefinite one.
func (d *cborDecoder) bytesOf(major byte, n uint64) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) {
		return nil, errCBOR("string longer than the body")
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	if major == 3 && !utf8.Valid(p) {
		return nil, errCBOR("text string is not valid UTF-8")
	}
	return p, nil
}

// str reads a (possibly indefinite) byte or text string of major type.
func (d *cborDecoder) str(major byte, arg uint64, indef bool) (string, error) {
	if !indef {
		p, err := d.bytesOf(major, arg)
		return string(p), err
	}
	var sb strings.Builder
	for {
		if d.off >= len(d.b) {
			return "", errCBOR("unexpected end")
		}
		if d.b[d.off] == 0xff {
			d.off++
			return sb.String(), nil
		}
		cm, carg, cindef, err := d.head()
		if err != nil {
			return "", err
		}
		if cm != major || cindef {
			return "", errCBOR("indefinite string chunk of another type")
		}
		p, err := d.bytesOf(major, carg)
		if err != nil {
			return "", err
		}
		sb.Write(p)
	}
}

// more reports whether another element follows in a container: for a
// definite one while i < n, for an indefinite one until the break byte.
func (d *cborDecoder) more(i, n uint64, indef bool) (bool, error) {
	if !indef {
		return i < n, nil
	}
	if d.off >= len(d.b) {
		return false, errCBOR("unexpected end")
	}
	if d.b[d.off] == 0xff {
		d.off++
		return false, nil
	}
	return true, nil
}

// item reads one data item at depth, keeping it up to keepDepth unless
// skip is set (a top-level member no operation reads).
func (d *cborDecoder) item(depth int, skip bool) (*node, error) {
	if depth > maxDepth {
		return nil, errCBOR("nested too deeply")
	}
	if !skip && depth <= keepDepth && !d.c.add() {
		return nil, errCBOR("too many values")
	}
	start := d.off
	major, arg, indef, err := d.head()
	if err != nil {
		return nil, err
	}
	// Containers are kept above keepDepth only, like the JSON reader.
	keep := !skip && depth < keepDepth
	switch major {
	case 0:
		return &node{kind: 'n', str: strconv.FormatUint(arg, 10)}, nil
	case 1:
		if arg == math.MaxUint64 {
			return &node{kind: 'n', str: "-18446744073709551616"}, nil
		}
		return &node{kind: 'n', str: "-" + strconv.FormatUint(arg+1, 10)}, nil
	case 2, 3:
		s, err := d.str(major, arg, indef)
		if err != nil {
			return nil, err
		}
		if major == 2 {
			return &node{kind: 'x'}, nil
		}
		return &node{kind: 's', str: s}, nil
	case 4:
		// Each element takes at least one byte: a count larger than
		// the bytes left is malformed, not a reason to loop.
		if !indef && arg > uint64(len(d.b)-d.off) {
			return nil, errCBOR("array longer than the body")
		}
		n := &node{kind: 'a'}
		for i := uint64(0); ; i++ {
			ok, err := d.more(i, arg, indef)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			v, err := d.item(depth+1, !keep)
			if err != nil {
				return nil, err
			}
			if keep {
				n.arr = append(n.arr, v)
			}
		}
		if !keep {
			return &node{kind: 'x'}, nil
		}
		return n, nil
	case 5:
		if !indef && arg > uint64(len(d.b)-d.off)/2 {
			return nil, errCBOR("map longer than the body")
		}
		n := &node{kind: 'o'}
		seen := map[string]bool{}
		for i := uint64(0); ; i++ {
			ok, err := d.more(i, arg, indef)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			km, karg, kindef, err := d.head()
			if err != nil {
				return nil, err
			}
			if km != 3 {
				return nil, errCBOR("map key is not a text string")
			}
			k, err := d.str(km, karg, kindef)
			if err != nil {
				return nil, err
			}
			if seen[k] {
				return nil, errCBOR("map key " + strconv.Quote(esc(k)) + " appears twice")
			}
			seen[k] = true
			read := keep && (depth > 0 || readMembers[k] || foldsToRead(k))
			v, err := d.item(depth+1, !read)
			if err != nil {
				return nil, err
			}
			if read {
				n.obj = append(n.obj, member{k, v})
			}
		}
		if !keep {
			return &node{kind: 'x'}, nil
		}
		return n, nil
	case 6:
		// Tags (1 for timestamps) annotate the item that follows. A tag
		// on a string, array, map or another tag is refused: the item
		// would be kept as 'x', read as absent (a GetMetricData query's
		// AccountId inside a tagged map went unchecked), while a decoder
		// that skips tags it does not know, as CBOR decoders commonly
		// do, reads the value inside. RPC v2 CBOR tags timestamps only.
		if d.off < len(d.b) {
			if m := d.b[d.off] >> 5; m >= 2 && m <= 6 {
				return nil, errCBOR("a tag on a string, array, map or tag (RPC v2 CBOR tags only numbers, as timestamps)")
			}
		}
		if _, err := d.item(depth+1, true); err != nil {
			return nil, err
		}
		return &node{kind: 'x'}, nil
	default: // 7: simple values and floats
		switch ai := d.b[start] & 0x1f; {
		case ai >= 24:
			// one-byte simple values and floats: nothing we read
		case arg == 20:
			return &node{kind: 'f'}, nil
		case arg == 21:
			return &node{kind: 't'}, nil
		case arg == 22 || arg == 23:
			return &node{kind: '0'}, nil
		}
		return &node{kind: 'x'}, nil
	}
}
