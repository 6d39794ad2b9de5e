package pgstore

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/store"
)

// PostgreSQL type OIDs of the log insert's parameters.
const (
	oidInt8       = 20
	oidBytea      = 17
	oidText       = 25
	oidInt8Array  = 1016
	oidTextArray  = 1009
	oidByteaArray = 1001
)

// logStmtOIDs are the parameter types commitLogCheckpointSQL is prepared
// with: the entries' seven arrays ($1-$7), then the checkpoint's size,
// root, note, frontier, creation time and MAC ($8-$13).
var logStmtOIDs = []uint32{
	oidInt8Array, oidInt8Array, oidTextArray, oidTextArray, oidTextArray, oidByteaArray, oidByteaArray,
	oidInt8, oidBytea, oidBytea, oidBytea, oidInt8, oidBytea,
}

// binaryFormats has a binary format code for every parameter.
var binaryFormats = func() []int16 {
	f := make([]int16, len(logStmtOIDs))
	for i := range f {
		f[i] = 1
	}
	return f
}()

// logParams encodes a batch of entries and its checkpoint as the
// parameters of commitLogCheckpointSQL, in PostgreSQL's binary format, in
// one buffer. pgx's own encoding of the same arrays allocated a buffer per
// element and grew the Bind message several times: over half of the bytes
// the shared log's writer allocated per event. Entries are checked as
// logRowsOf checks them, before anything is sent.
func logParams(entries []store.LogEntry, c store.Checkpoint) ([][]byte, error) {
	size := 13 * 20
	for _, e := range entries {
		size += 7*4 + 16 + len(e.Type) + len(e.GrantID) + len(e.SessionID) + len(e.Data) + len(e.LeafHash)
	}
	buf := make([]byte, 0, size+len(c.Root)+len(c.Note)+len(c.Frontier)+len(c.MAC)+32)
	params := make([][]byte, 0, len(logStmtOIDs))
	n := len(entries)
	for i, e := range entries {
		if err := checkText("log entry field", e.Type, e.GrantID, e.SessionID); err != nil {
			return nil, fmt.Errorf("pgstore: append log: entry %d: %w", e.Seq, err)
		}
		if want := entries[0].Seq + int64(i); e.Seq != want {
			return nil, fmt.Errorf("pgstore: append log: entry %d has seq %d, want %d: %w", i, e.Seq, want, store.ErrConflict)
		}
	}
	// array appends one array parameter: header, then each element
	// (NULL when elem reports ok false).
	array := func(oid uint32, elem func(i int, b []byte) ([]byte, bool, error)) error {
		start := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
		flags := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, 0) // has nulls
		buf = binary.BigEndian.AppendUint32(buf, oid)
		buf = binary.BigEndian.AppendUint32(buf, uint32(n))
		buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
		for i := range n {
			at := len(buf)
			buf = append(buf, 0, 0, 0, 0)
			var (
				ok  bool
				err error
			)
			if buf, ok, err = elem(i, buf); err != nil {
				return err
			}
			if !ok {
				binary.BigEndian.PutUint32(buf[at:], 0xFFFFFFFF)
				binary.BigEndian.PutUint32(buf[flags:], 1)
				continue
			}
			binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
		}
		params = append(params, buf[start:len(buf):len(buf)])
		return nil
	}
	int8s := func(v func(store.LogEntry) (int64, bool, error)) error {
		return array(oidInt8, func(i int, b []byte) ([]byte, bool, error) {
			x, ok, err := v(entries[i])
			if !ok || err != nil {
				return b, ok, err
			}
			return binary.BigEndian.AppendUint64(b, uint64(x)), true, nil
		})
	}
	strs := func(oid uint32, v func(store.LogEntry) ([]byte, string, bool)) error {
		return array(oid, func(i int, b []byte) ([]byte, bool, error) {
			bs, s, ok := v(entries[i])
			if !ok {
				return b, false, nil
			}
			if bs != nil {
				return append(b, bs...), true, nil
			}
			return append(b, s...), true, nil
		})
	}
	err := int8s(func(e store.LogEntry) (int64, bool, error) { return e.Seq, true, nil })
	if err == nil {
		err = int8s(func(e store.LogEntry) (int64, bool, error) {
			tm, err := nullNanos(e.Time)
			if err != nil {
				return 0, false, fmt.Errorf("pgstore: append log: entry %d: %w", e.Seq, err)
			}
			if tm == nil {
				return 0, false, nil
			}
			return *tm, true, nil
		})
	}
	if err == nil {
		err = strs(oidText, func(e store.LogEntry) ([]byte, string, bool) { return nil, e.Type, true })
	}
	if err == nil {
		err = strs(oidText, func(e store.LogEntry) ([]byte, string, bool) { return nil, e.GrantID, e.GrantID != "" })
	}
	if err == nil {
		err = strs(oidText, func(e store.LogEntry) ([]byte, string, bool) { return nil, e.SessionID, e.SessionID != "" })
	}
	if err == nil {
		err = strs(oidBytea, func(e store.LogEntry) ([]byte, string, bool) { return e.Data, "", e.Data != nil })
	}
	if err == nil {
		err = strs(oidBytea, func(e store.LogEntry) ([]byte, string, bool) { return e.LeafHash, "", e.LeafHash != nil })
	}
	if err != nil {
		return nil, err
	}
	created, err := nullNanos(c.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("pgstore: put checkpoint: %w", err)
	}
	int8 := func(x int64) []byte {
		start := len(buf)
		buf = binary.BigEndian.AppendUint64(buf, uint64(x))
		return buf[start:len(buf):len(buf)]
	}
	params = append(params, int8(c.Size), c.Root, c.Note, c.Frontier, nil, c.MAC)
	if created != nil {
		params[11] = int8(*created)
	}
	return params, nil
}

// logStmtTypesMatch reports whether the server prepared
// commitLogCheckpointSQL with the parameter types logParams encodes.
func logStmtTypesMatch(sd *pgconn.StatementDescription) bool {
	if len(sd.ParamOIDs) != len(logStmtOIDs) {
		return false
	}
	for i, oid := range sd.ParamOIDs {
		if oid != logStmtOIDs[i] {
			return false
		}
	}
	return true
}
