package auditlog

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// The journal is the log's fast durable path (see "Journal" in the package
// documentation). This file holds its on-disk format: segment files of
// frames, each frame one committed batch.

const (
	// frameMagic starts every frame written, sealed under
	// JournalKeys.Seal (derived from the log signing key), the seal over
	// the entries' leaf hashes rather than their bytes.
	frameMagic = "ALJ3"
	// dataFrameMagic starts a frame of the journal's second format,
	// written by earlier releases: sealed under JournalKeys.Seal too, the
	// seal over the entries' bytes.
	dataFrameMagic = "ALJ2"
	// legacyFrameMagic starts a frame of the journal's first format, whose
	// seal was derived from the credential key (JournalKeys.Legacy).
	legacyFrameMagic = "ALJ1"
	// frameHeaderSize is magic, payload length and CRC-32C, 4 bytes each.
	frameHeaderSize = 12
	// DefaultSegmentSize is the default Options.SegmentSize.
	DefaultSegmentSize = 8 << 20
	// maxFrame bounds a frame's payload on reading, so that a corrupted
	// length cannot make replay allocate without limit.
	maxFrame = 1 << 30

	segmentSuffix = ".seg"
	lockName      = "LOCK"

	// blockSize is the unit of every journal write: whole, aligned 4 KiB
	// blocks, as O_DIRECT needs, and segment sizes are multiples of it.
	blockSize = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrJournalInUse is returned by ReplayJournal when a running Log holds the
// journal.
var ErrJournalInUse = errors.New("auditlog: the journal is in use by a running airlock")

// JournalKeys are the keys that seal the journal's frames and check them.
type JournalKeys struct {
	// Seal seals every frame written and checks frames of the current
	// format ("ALJ3") and of the second ("ALJ2"). A server derives it
	// from the log signing key, so that a frame replay accepts, and the
	// next start signs into the log, can only come from whoever could
	// sign the log.
	Seal []byte
	// Legacy checks frames of the first format ("ALJ1"), which earlier
	// releases sealed under a key derived from the credential key; nil if
	// there is none to check.
	Legacy []byte
	// LegacyTail allows replay to take "ALJ1" frames the store does not hold
	// yet. Without it such a frame is refused ([ErrLegacyJournal]): its
	// seal could have been made by whoever can read the credential key,
	// which may be easier to reach than the signing key. Frames the store
	// already holds are skipped either way, their seal checked.
	LegacyTail bool
}

// ErrLegacyJournal is returned by Open, ReplayJournal and ReadJournal for a
// frame of the first format ("ALJ1") that the store does not hold yet
// when JournalKeys.LegacyTail is off.
var ErrLegacyJournal = errors.New("auditlog: the journal holds entries the store does not that are sealed in its first format, under a key derived from the credential key rather than the signing key")

// appendFrame encodes one batch of consecutive entries, the first being
// entries[0].Seq, sealed with an HMAC-SHA256 under key.
//
// The seal covers the frame's format, first sequence number and count, and
// each entry's length and leaf hash (SHA-256(0x00 || bytes), which entry
// computed for the tree), not the entries' bytes again: the bytes were
// hashed once already, and hashing them a second time under the HMAC was
// half of a one-entry batch's SHA-256. Replay computes the leaf hashes
// from the bytes before it checks the seal, so a changed byte changes
// what the seal covers, as SHA-256's collision resistance holds (which the
// log's tree and signed checkpoints rely on already). An entry without its
// leaf hash (tests) has it computed here.
func appendFrame(buf []byte, entries []store.LogEntry, key []byte) []byte {
	return newSealer(key).appendFrame(buf, entries)
}

// sealer seals the writer's frames (appendFrame). It keeps one
// HMAC-SHA256 under the journal's key for every frame, reset for each, as
// a new one hashes the key's two padded blocks again and allocates (5.1k
// instructions a frame under callgrind, bench/HISTORY.md); and it gathers what
// the seal covers in a buffer kept from frame to frame, written to the
// HMAC at once: a Write per entry went through the hash.Hash interface,
// whose argument, a local array, was moved to the heap for every frame.
type sealer struct {
	m  hash.Hash
	in []byte
}

func newSealer(key []byte) *sealer { return &sealer{m: hmac.New(sha256.New, key)} }

// appendFrame is appendFrame with s's HMAC and buffer.
func (s *sealer) appendFrame(buf []byte, entries []store.LogEntry) []byte {
	start := len(buf)
	buf = appendFrameEntries(buf, frameMagic, entries)
	p := start + frameHeaderSize
	in := append(s.in[:0], frameMagic...) // binds the format to the seal
	in = append(in, buf[p:p+12]...)
	for _, e := range entries {
		in = binary.BigEndian.AppendUint32(in, uint32(len(e.Data)))
		if len(e.LeafHash) == sha256.Size {
			in = append(in, e.LeafHash...)
		} else {
			h := tlog.RecordHash(e.Data)
			in = append(in, h[:]...)
		}
	}
	s.m.Reset()
	s.m.Write(in)
	if cap(in) <= 64<<10 {
		s.in = in // not a huge batch's
	}
	return finishFrame(s.m.Sum(buf), start)
}

// appendFrameEntries appends a frame's magic, room for its length and CRC
// (finishFrame), and its payload up to the seal: the first sequence
// number, the count and the entries.
func appendFrameEntries(buf []byte, magic string, entries []store.LogEntry) []byte {
	buf = append(buf, magic...)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint64(buf, uint64(entries[0].Seq))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(entries)))
	for _, e := range entries {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(e.Data)))
		buf = append(buf, e.Data...)
	}
	return buf
}

// finishFrame fills in the length and CRC of the frame at start, whose
// payload, seal included, runs to the end of buf.
func finishFrame(buf []byte, start int) []byte {
	payload := buf[start+frameHeaderSize:]
	binary.BigEndian.PutUint32(buf[start+4:], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[start+8:], crc32.Checksum(payload, castagnoli))
	return buf
}

// frame is one decoded frame.
type frame struct {
	first   int64
	entries [][]byte
	// hashes are the entries' leaf hashes, computed to check the seal of
	// a frame of the current format (nil for the earlier formats).
	hashes []tlog.Hash
	legacy bool // of the first format, sealed under JournalKeys.Legacy
}

// errNoFrame means the bytes at an offset are not a whole, intact frame:
// the zeros past the last frame of a preallocated segment, or a frame torn
// by a crash while it was written.
var errNoFrame = errors.New("no intact frame")

// readFrame decodes the frame at the start of b, checking its seal with
// the key of its format, and returns it with its encoded size.
func readFrame(b []byte, keys JournalKeys) (frame, int, error) {
	n, sum, ok := frameHeader(b)
	if !ok {
		return frame{}, 0, errNoFrame
	}
	key, legacy := keys.Seal, false
	if string(b[:4]) == legacyFrameMagic {
		key, legacy = keys.Legacy, true
	}
	payload := b[frameHeaderSize : frameHeaderSize+n]
	if crc32.Checksum(payload, castagnoli) != sum {
		return frame{}, 0, errNoFrame
	}
	// The checksum matched, so these are the bytes a writer wrote: not a
	// torn write but, failing what follows, a forged or damaged frame.
	if len(payload) < sha256.Size {
		return frame{}, 0, errors.New("malformed frame: too short")
	}
	body, mac := payload[:len(payload)-sha256.Size], payload[len(payload)-sha256.Size:]
	if len(key) == 0 {
		if legacy {
			return frame{}, 0, errors.New("the frame is of the first format, sealed under the credential key's derived key, and that key is not known here")
		}
		return frame{}, 0, errors.New("the frame's seal cannot be checked: the key derived from the log signing key is not known here")
	}
	m := hmac.New(sha256.New, key)
	var f frame
	if string(b[:4]) == frameMagic {
		// The seal covers the leaf hashes: the entries are parsed, and
		// hashed, before it is checked (parsePayload bounds every length
		// by the payload's, which the CRC bounded).
		var err error
		if f, err = parsePayload(body); err != nil {
			return frame{}, 0, fmt.Errorf("malformed frame: %w", err)
		}
		m.Write(b[:4])
		m.Write(body[:12])
		f.hashes = make([]tlog.Hash, len(f.entries))
		var lh [4]byte
		for i, d := range f.entries {
			f.hashes[i] = tlog.RecordHash(d)
			binary.BigEndian.PutUint32(lh[:], uint32(len(d)))
			m.Write(lh[:])
			m.Write(f.hashes[i][:])
		}
		if !hmac.Equal(m.Sum(nil), mac) {
			return frame{}, 0, errors.New("the frame's seal does not match: it was not written by this airlock")
		}
		return f, frameHeaderSize + n, nil
	}
	if !legacy {
		m.Write(b[:4])
	}
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), mac) {
		return frame{}, 0, errors.New("the frame's seal does not match: it was not written by this airlock")
	}
	f, err := parsePayload(body)
	if err != nil {
		return frame{}, 0, fmt.Errorf("malformed frame: %w", err)
	}
	f.legacy = legacy
	return f, frameHeaderSize + n, nil
}

// frameHeader reads the frame header at the start of b: the magic of
// any format, the payload's length, which must fit in b and under
// maxFrame, and its CRC-32C.
func frameHeader(b []byte) (n int, sum uint32, ok bool) {
	if len(b) < frameHeaderSize {
		return 0, 0, false
	}
	if m := string(b[:4]); m != frameMagic && m != dataFrameMagic && m != legacyFrameMagic {
		return 0, 0, false
	}
	u := binary.BigEndian.Uint32(b[4:])
	if u > maxFrame || int(u) > len(b)-frameHeaderSize {
		return 0, 0, false
	}
	return int(u), binary.BigEndian.Uint32(b[8:]), true
}

func parsePayload(p []byte) (frame, error) {
	var f frame
	if len(p) < 12 {
		return f, errors.New("short payload")
	}
	first := binary.BigEndian.Uint64(p)
	count := binary.BigEndian.Uint32(p[8:])
	if first > 1<<62 || count == 0 {
		return f, fmt.Errorf("first entry %d, %d entries", first, count)
	}
	f.first = int64(first)
	p = p[12:]
	for i := uint32(0); i < count; i++ {
		if len(p) < 4 {
			return f, errors.New("truncated entry length")
		}
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-4) {
			return f, errors.New("truncated entry")
		}
		f.entries = append(f.entries, p[4:4+n])
		p = p[4+n:]
	}
	if len(p) != 0 {
		return f, fmt.Errorf("%d bytes after the entries", len(p))
	}
	return f, nil
}

// segmentName is the file name of the segment with number n. Numbers only
// grow, so lexical order is write order.
func segmentName(n int64) string { return fmt.Sprintf("%016d%s", n, segmentSuffix) }

// listSegments returns the segment numbers in dir, in order.
func listSegments(dir string) ([]int64, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ns []int64
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), segmentSuffix)
		if !ok || de.IsDir() {
			continue
		}
		n, err := strconv.ParseInt(name, 10, 64)
		if err != nil || segmentName(n) != de.Name() {
			return nil, fmt.Errorf("auditlog: unexpected file %s in the journal directory %s", de.Name(), dir)
		}
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns, nil
}

// segment is one open segment file, preallocated with zeros so that a
// commit rewrites blocks in place and fdatasync need not touch the file's
// metadata: that halves the cost of every commit.
type segment struct {
	n    int64
	path string
	f    *os.File // opened with O_DIRECT where the filesystem allows it
	off  int64    // where the next frame goes
	size int64    // a multiple of blockSize
	end  int64    // one past the last entry written to it; 0 if none
	// tail holds the bytes of the block that off falls in, before off:
	// the next write rewrites that block whole, with them.
	tail []byte
}

// createSegment creates segment n in dir with size bytes (rounded up to
// whole blocks) of zeros, synced, and opens it for the journal's writes.
func createSegment(dir string, n, size int64) (*segment, error) {
	size = (size + blockSize - 1) &^ (blockSize - 1)
	path := filepath.Join(dir, segmentName(n))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	zero := make([]byte, 1<<20)
	for off := int64(0); off < size && err == nil; {
		k := min(int64(len(zero)), size-off)
		_, err = f.WriteAt(zero[:k], off)
		off += k
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(dir)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		f, err = openDirect(path)
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return &segment{n: n, path: path, f: f, size: size}, nil
}

// removeSegment removes segment n of dir.
func removeSegment(dir string, n int64) error {
	if err := os.Remove(filepath.Join(dir, segmentName(n))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("auditlog: removing a replayed journal segment: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// journal is the writer's side: the current segment, the next one being
// prepared in the background, and the full ones waiting until the store
// holds their entries.
type journal struct {
	dir     string
	segSize int64
	lock    *os.File

	cur    *segment
	next   chan prepared // the next segment, prepared ahead of time
	nextN  int64
	broken error  // set when a failed write could not be undone
	buf    []byte // the blocks being written, aligned for O_DIRECT
	// syncErr, if set, is called before each fdatasync and fails it with
	// its error, so that tests can fail a write after its bytes are out.
	syncErr func() error

	mu      sync.Mutex
	retired []*segment // full segments, oldest first
}

type prepared struct {
	seg *segment
	err error
}

// openJournal locks dir and starts a new segment after the existing ones,
// which the caller has replayed and may remove with dropBefore.
func openJournal(dir string, segSize int64, lock *os.File, nextN int64) (*journal, error) {
	j := &journal{dir: dir, segSize: segSize, lock: lock, nextN: nextN}
	seg, err := createSegment(dir, j.nextN, segSize)
	if err != nil {
		return nil, fmt.Errorf("auditlog: creating journal segment: %w", err)
	}
	j.nextN++
	j.cur = seg
	j.prepare()
	return j, nil
}

// prepare starts creating the next segment.
func (j *journal) prepare() {
	ch := make(chan prepared, 1)
	j.next = ch
	n := j.nextN
	j.nextN++
	go func() {
		seg, err := createSegment(j.dir, n, j.segSize)
		ch <- prepared{seg, err}
	}()
}

// write appends one frame (whose last entry is end-1) and makes it durable.
// It writes whole blocks: the partial block the frame starts in (with the
// tail of the frames before it, as they are on disk) through the block it
// ends in, padded with the zeros that are there already, so that the write
// can bypass the page cache (O_DIRECT), which makes the fdatasync after it
// cheaper. If it fails, the blocks are written again as they were, the
// frame's bytes zeros, so that replay cannot find a batch its callers were
// told had failed; if even that fails, the journal refuses every later
// write, since the file's contents are no longer known.
func (j *journal) write(fr []byte, end int64) error {
	if j.broken != nil {
		return j.broken
	}
	if j.cur.off+int64(len(fr)) > j.cur.size {
		if err := j.rotate(int64(len(fr))); err != nil {
			return err
		}
	}
	seg := j.cur
	start := seg.off - int64(len(seg.tail))
	k := len(seg.tail)
	buf := j.blocks(k + len(fr))
	copy(buf, seg.tail)
	copy(buf[k:], fr)
	clear(buf[k+len(fr):])
	err := j.writeSync(seg, buf, start)
	if err != nil {
		clear(buf[k:])
		zerr := j.writeSync(seg, buf, start)
		if zerr != nil {
			j.broken = fmt.Errorf("auditlog: the journal is unusable after a failed write (%v) could not be undone (%v); restart airlock", err, zerr)
		}
		return fmt.Errorf("auditlog: writing the journal: %w", err)
	}
	seg.off += int64(len(fr))
	from := int(seg.off&^(blockSize-1) - start)
	seg.tail = append(seg.tail[:0], buf[from:int(seg.off-start)]...)
	seg.end = end
	if cap(j.buf) > 1<<20 {
		j.buf = nil // do not keep a huge batch's buffer
	}
	return nil
}

// blocks returns j's write buffer holding n bytes rounded up to whole
// blocks, aligned to a block in memory as O_DIRECT needs.
func (j *journal) blocks(n int) []byte {
	n = (n + blockSize - 1) &^ (blockSize - 1)
	if cap(j.buf) < n {
		b := make([]byte, n+blockSize)
		off := 0
		if r := int(uintptr(unsafe.Pointer(&b[0])) & (blockSize - 1)); r != 0 {
			off = blockSize - r
		}
		j.buf = b[off : off+n : off+n]
	}
	return j.buf[:n]
}

// writeSync writes b at off in seg and fdatasyncs it. A filesystem that
// took O_DIRECT at open but refuses its writes (EINVAL: an alignment it
// needs that is not 4 KiB) gets the segment reopened without it, once.
func (j *journal) writeSync(seg *segment, b []byte, off int64) error {
	_, err := seg.f.WriteAt(b, off)
	if errors.Is(err, syscall.EINVAL) {
		var f *os.File
		if f, err = os.OpenFile(seg.path, os.O_RDWR, 0); err == nil {
			seg.f.Close()
			seg.f = f
			_, err = seg.f.WriteAt(b, off)
		}
	}
	if err == nil && j.syncErr != nil {
		err = j.syncErr()
	}
	if err == nil {
		err = fdatasync(seg.f)
	}
	return err
}

// rotate retires the current segment and moves to the prepared one, or to a
// bigger one made now for a frame that does not fit a segment.
func (j *journal) rotate(need int64) error {
	p := <-j.next
	if p.err != nil {
		j.prepare() // try again for the next rotation
		return fmt.Errorf("auditlog: preparing a journal segment: %w", p.err)
	}
	seg := p.seg
	if need > seg.size {
		seg.f.Close()
		os.Remove(seg.path)
		big, err := createSegment(j.dir, seg.n, need)
		if err != nil {
			j.prepare()
			return fmt.Errorf("auditlog: creating a journal segment of %d bytes: %w", need, err)
		}
		seg = big
	}
	old := j.cur
	j.cur = seg
	j.prepare()
	old.f.Close()
	j.mu.Lock()
	j.retired = append(j.retired, old)
	j.mu.Unlock()
	return nil
}

// dropIndexed removes the retired segments whose entries are all in the
// store (below size).
func (j *journal) dropIndexed(size int64) {
	j.mu.Lock()
	var drop []*segment
	for len(j.retired) > 0 && j.retired[0].end <= size {
		drop = append(drop, j.retired[0])
		j.retired = j.retired[1:]
	}
	j.mu.Unlock()
	for _, s := range drop {
		os.Remove(s.path)
	}
}

// close closes the journal. If every entry is in the store (indexed), its
// segments are removed; otherwise they stay for the next Open to replay.
func (j *journal) close(indexed bool) {
	if p := <-j.next; p.seg != nil {
		p.seg.f.Close()
		os.Remove(p.seg.path)
	}
	j.cur.f.Close()
	if indexed {
		j.mu.Lock()
		for _, s := range j.retired {
			os.Remove(s.path)
		}
		j.retired = nil
		j.mu.Unlock()
		os.Remove(j.cur.path)
	}
	_ = syncDir(j.dir)
	unlockFile(j.lock)
	j.lock.Close()
}

// lockJournal creates dir if needed and takes its lock file, failing with
// ErrJournalInUse if another Log holds it.
func lockJournal(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auditlog: journal directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("auditlog: journal lock: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// replay reads every segment in dir and hands the entries that continue
// the store's log (from tree.n on) to apply, frame by frame, extending tree.
// Frames the store already holds are skipped. A torn frame at the end of the
// newest segment is ignored: it was never acknowledged. Anything else that
// does not fit is an error: entries would be lost, or were altered.
//
// It returns the numbers of the segments it read.
func replay(dir string, keys JournalKeys, tree *frontier, apply func([]store.LogEntry) error) (ns []int64, err error) {
	ns, err = listSegments(dir)
	if err != nil {
		return nil, err
	}
	for i, n := range ns {
		path := filepath.Join(dir, segmentName(n))
		b, err := os.ReadFile(path)
		if err != nil {
			return ns, fmt.Errorf("auditlog: reading journal segment %s: %w", path, err)
		}
		last := i == len(ns)-1
		for off := 0; off < len(b); {
			fr, size, err := readFrame(b[off:], keys)
			if errors.Is(err, errNoFrame) {
				if at := findFrame(b[off+1:]); at >= 0 {
					return ns, fmt.Errorf("auditlog: refusing to start: journal segment %s is damaged at offset %d, with more frames after it at offset %d (tampered or corrupted journal)", path, off, off+1+at)
				}
				if !last && !allZero(b[off:]) {
					return ns, fmt.Errorf("auditlog: refusing to start: journal segment %s ends in a damaged frame at offset %d, but a newer segment follows it (tampered or corrupted journal)", path, off)
				}
				break // the end of the segment, or a torn, unacknowledged last write
			}
			if err != nil {
				return ns, fmt.Errorf("auditlog: refusing to start: journal segment %s offset %d: %v (tampered or corrupted journal)", path, off, err)
			}
			off += size
			end := fr.first + int64(len(fr.entries))
			if end <= tree.n {
				continue // already in the store
			}
			if fr.legacy && !keys.LegacyTail {
				return ns, fmt.Errorf("%w: from entry %d on (journal segment %s offset %d)", ErrLegacyJournal, max(fr.first, tree.n), path, off-size)
			}
			if fr.first != tree.n {
				return ns, fmt.Errorf("auditlog: refusing to start: journal segment %s offset %d holds entries %d-%d but the log has %d; entries are missing (tampered or corrupted journal)", path, off-size, fr.first, end-1, tree.n)
			}
			es := make([]store.LogEntry, 0, len(fr.entries))
			for k, data := range fr.entries {
				var h *tlog.Hash
				if fr.hashes != nil {
					h = &fr.hashes[k] // computed for the seal
				}
				e, err := entryFromBytes(fr.first+int64(k), data, h)
				if err != nil {
					return ns, fmt.Errorf("auditlog: refusing to start: journal segment %s offset %d: entry %d: %v (tampered or corrupted journal)", path, off-size, fr.first+int64(k), err)
				}
				if err := tree.add(tlog.Hash(e.LeafHash)); err != nil {
					return ns, err
				}
				es = append(es, e)
			}
			if err := apply(es); err != nil {
				return ns, err
			}
		}
	}
	return ns, nil
}

// findFrame returns the offset of the first intact frame in b, or -1: the
// first offset at which readFrame finds a frame header whose checksum
// matches its payload (it then returns the frame, or an error other than
// errNoFrame).
//
// Checksumming each candidate's payload would cost its length: a damaged
// segment can hold a header every 8 bytes, each claiming a payload that
// runs to the segment's end, and that took 8.6 s for a crafted 1 MiB
// segment, 16 times as long for each doubling. Instead each candidate's
// checksum is derived from those of b's prefixes (prefixCRC, one pass over
// b), in constant time.
func findFrame(b []byte) int {
	var pc *prefixCRC
	for i := 0; ; {
		k := indexMagic(b[i:])
		if k < 0 {
			return -1
		}
		p := i + k
		if n, sum, ok := frameHeader(b[p:]); ok {
			if pc == nil {
				pc = newPrefixCRC(b)
			}
			if pc.crc(p+frameHeaderSize, p+frameHeaderSize+n) == sum {
				return p
			}
		}
		i = p + 1
	}
}

// indexMagic returns the offset of the first frame magic of any format
// in b, or -1.
func indexMagic(b []byte) int {
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte("ALJ"))
		if k < 0 || i+k+4 > len(b) {
			return -1
		}
		if m := string(b[i+k : i+k+4]); m == frameMagic || m == dataFrameMagic || m == legacyFrameMagic {
			return i + k
		}
		i += k + 1
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// entryFromBytes rebuilds the store row of entry seq from its exact bytes,
// with its leaf hash if the caller computed it already (leaf), else hashed.
func entryFromBytes(seq int64, data []byte, leaf *tlog.Hash) (store.LogEntry, error) {
	if s, ok := entrySeq(data); !ok || s != seq {
		return store.LogEntry{}, errors.New("does not start with its sequence number")
	}
	var f struct {
		Time    string `json:"time"`
		Type    string `json:"type"`
		Grant   string `json:"grant"`
		Session string `json:"session"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return store.LogEntry{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, f.Time)
	if err != nil || f.Type == "" {
		return store.LogEntry{}, fmt.Errorf("bad time %q or type %q", f.Time, f.Type)
	}
	var h tlog.Hash
	if leaf != nil {
		h = *leaf
	} else {
		h = tlog.RecordHash(data)
	}
	return store.LogEntry{Seq: seq, Time: t.UTC(), Type: f.Type, GrantID: f.Grant, SessionID: f.Session,
		Data: bytes.Clone(data), LeafHash: h[:]}, nil
}
