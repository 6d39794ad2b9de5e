package pggw

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The in-place decoders read what pgproto3 reads, and refuse what it
// refuses: every message below, and every truncation of it.
func TestDecodeMatchesPgproto3(t *testing.T) {
	binds := []pgproto3.Bind{
		{},
		{DestinationPortal: "p1", PreparedStatement: "s1"},
		{PreparedStatement: "s", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 7}, nil, {}},
			ResultFormatCodes: []int16{0, 1}},
		{Parameters: [][]byte{[]byte("it's"), []byte("x")}, ParameterFormatCodes: []int16{0, 1}},
	}
	var m bindMsg
	for _, want := range binds {
		raw, err := want.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		body := raw[5:]
		for cut := 0; cut <= len(body); cut++ {
			var got pgproto3.Bind
			wantErr := got.Decode(body[:cut]) != nil
			if ok := m.parse(body[:cut]); ok == wantErr {
				t.Fatalf("Bind %+v cut at %d: parse ok %v, pgproto3 error %v", want, cut, ok, wantErr)
			}
			if wantErr {
				continue
			}
			if string(m.portal) != got.DestinationPortal || string(m.stmt) != got.PreparedStatement ||
				len(m.params) != len(got.Parameters) || len(m.formats) != len(got.ParameterFormatCodes) {
				t.Fatalf("Bind %+v: got portal %q stmt %q %d params %d formats", want, m.portal, m.stmt, len(m.params), len(m.formats))
			}
			for i, p := range m.params {
				if (p == nil) != (got.Parameters[i] == nil) || !bytes.Equal(p, got.Parameters[i]) {
					t.Fatalf("Bind %+v: parameter %d is %q, want %q", want, i, p, got.Parameters[i])
				}
			}
			for i, f := range m.formats {
				if f != got.ParameterFormatCodes[i] {
					t.Fatalf("Bind %+v: format %d is %d", want, i, f)
				}
			}
		}
	}
	for _, want := range []pgproto3.Execute{{}, {Portal: "p1", MaxRows: 10}} {
		raw, _ := want.Encode(nil)
		body := raw[5:]
		for cut := 0; cut <= len(body); cut++ {
			var got pgproto3.Execute
			wantErr := got.Decode(body[:cut]) != nil
			name, ok := parseExecute(body[:cut])
			if ok == wantErr || ok && string(name) != got.Portal {
				t.Fatalf("Execute %+v cut at %d: parse %q %v, pgproto3 %q error %v", want, cut, name, ok, got.Portal, wantErr)
			}
		}
	}
}

// The per-statement decoding and parameter formatting of the relay path
// allocate only the recorded string.
func TestBindPathAllocations(t *testing.T) {
	raw, _ := (&pgproto3.Bind{PreparedStatement: "P_0", Parameters: [][]byte{[]byte("48213")}}).Encode(nil)
	var m bindMsg
	n := testing.AllocsPerRun(100, func() {
		if !m.parse(raw[5:]) {
			t.Fatal("parse failed")
		}
		if formatParams(m.params, m.formats, false) != "$1='48213'" {
			t.Fatal("bad parameters")
		}
	})
	if n > 1 {
		t.Fatalf("%v allocations per Bind, want 1", n)
	}
}

// FuzzBindDecode: on any bytes, the in-place Bind and Execute decoders
// accept exactly what pgproto3 accepts, with the same fields.
func FuzzBindDecode(f *testing.F) {
	for _, b := range []pgproto3.Bind{{}, {DestinationPortal: "p", PreparedStatement: "s", ParameterFormatCodes: []int16{1},
		Parameters: [][]byte{[]byte("x"), nil, {}}, ResultFormatCodes: []int16{0, 1}}} {
		raw, _ := b.Encode(nil)
		f.Add(raw[5:])
	}
	f.Add([]byte("p\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		var want pgproto3.Bind
		wantErr := want.Decode(body)
		var m bindMsg
		ok := m.parse(body)
		if ok != (wantErr == nil) {
			t.Fatalf("Bind %x: parse ok %v, pgproto3 error %v", body, ok, wantErr)
		}
		if ok {
			if string(m.portal) != want.DestinationPortal || string(m.stmt) != want.PreparedStatement || len(m.params) != len(want.Parameters) || len(m.formats) != len(want.ParameterFormatCodes) {
				t.Fatalf("Bind %x: got %q %q %d params %d formats, pgproto3 %+v", body, m.portal, m.stmt, len(m.params), len(m.formats), want)
			}
			for i, p := range m.params {
				if (p == nil) != (want.Parameters[i] == nil) || string(p) != string(want.Parameters[i]) {
					t.Fatalf("Bind %x: parameter %d %q, pgproto3 %q", body, i, p, want.Parameters[i])
				}
			}
		}
		var ex pgproto3.Execute
		exErr := ex.Decode(body)
		name, exOK := parseExecute(body)
		if exOK != (exErr == nil) || exOK && string(name) != ex.Portal {
			t.Fatalf("Execute %x: parse %q %v, pgproto3 %q error %v", body, name, exOK, ex.Portal, exErr)
		}
	})
}
