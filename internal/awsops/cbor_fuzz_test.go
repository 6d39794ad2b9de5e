package awsops

import (
	"testing"

	"github.com/aws/smithy-go/encoding/cbor"
)

// FuzzCBORAgreesWithSmithy holds the mapper's CBOR reader to smithy-go's
// decoder, a second reading of the same bytes: for a body both accept,
// every member the mapper keeps and reads (a string, a list of strings,
// a boolean, null) is what smithy-go reads there, so the checks name what
// a service decoding the body would act on. The mapper is stricter
// (duplicate keys, invalid UTF-8, bounded nesting): a body only it
// refuses is fine, and one only it accepts must hold nothing it reads.
func FuzzCBORAgreesWithSmithy(f *testing.F) {
	f.Add([]byte("\xa1\x6aAlarmNames\x82\x61a\x62\xc3\xa4"))
	f.Add([]byte("\xbf\x71MetricDataQueries\x9f\xa1\x62Id\x62q1\xff\xff"))
	f.Add([]byte("\xa2\x69Namespace\x7f\x62AW\x61S\xff\x6aMetricName\xd8\x37\x61x"))
	f.Add([]byte("\xa1\x6aAlarmNames\x9f\x61a\xf6\xff"))
	f.Add([]byte("\xa1\x6eWithDecryption\xf5"))
	f.Add(cbor.Encode(cbor.Map{"Namespace": cbor.String("AWS/EC2"), "AlarmNames": cbor.List{cbor.String("x"), cbor.String("y")}, "Recursive": cbor.Bool(false)}))
	f.Fuzz(func(t *testing.T, body []byte) {
		d := cborDecoder{b: body}
		v, err := d.item(0, false)
		if err != nil || d.off != len(body) || v.kind != 'o' {
			return
		}
		ref, rerr := cbor.Decode(body)
		m, isMap := ref.(cbor.Map)
		if rerr != nil || !isMap {
			// smithy-go refuses what the mapper takes (simple values
			// other than booleans and null, say): nothing the mapper
			// reads may hang on the difference.
			return
		}
		for _, mb := range v.obj {
			got, ok := m[mb.name]
			if !ok {
				t.Fatalf("member %q kept by the mapper, absent for smithy-go", mb.name)
			}
			if !sameCBOR(mb.val, got) {
				t.Fatalf("member %q: mapper reads %+v, smithy-go %#v", mb.name, mb.val, got)
			}
		}
	})
}

// sameCBOR reports whether a kept node reads as smithy-go's value; nodes
// the mapper does not read as a value ('x', numbers, nested objects)
// agree with anything.
func sameCBOR(n *node, v cbor.Value) bool {
	switch n.kind {
	case 's':
		s, ok := v.(cbor.String)
		return ok && string(s) == n.str
	case 't', 'f':
		b, ok := v.(cbor.Bool)
		return ok && bool(b) == (n.kind == 't')
	case '0':
		switch v.(type) {
		case *cbor.Nil, *cbor.Undefined:
			return true
		}
		return false
	case 'a':
		l, ok := v.(cbor.List)
		if !ok || len(l) != len(n.arr) {
			return false
		}
		for i, e := range n.arr {
			if !sameCBOR(e, l[i]) {
				return false
			}
		}
		return true
	case 'o':
		m, ok := v.(cbor.Map)
		if !ok {
			return false
		}
		for _, mb := range n.obj {
			if !sameCBOR(mb.val, m[mb.name]) {
				return false
			}
		}
		return true
	}
	return true
}
