package pggw

// A statement's text is searched for keywords about a dozen times before it
// is forwarded (changesAuth, leavesState, mayChangePrepared, redactSecrets,
// hasInto), each search a first test that lets the common text skip the
// tokenizer. Searched one word at a time, byte by byte, those tests were
// half of the relay's own instructions per pgbench statement
// (BenchmarkRelayCode). A foldSet makes each one pass over the text for
// all of its words, with one table look-up per byte.

// A foldSet finds any of a few words (lower case) in a text, A-Z folded
// to a-z and every other byte exact (as foldedIs compares); with whole,
// only where the word is not next to an identifier byte (isIdent).
//
// It reads the text as Horspool's search does, for a set of words: a
// window of the shortest word's length (min) moves along the text by what
// the byte at its end allows (shift), so that most of the text's bytes
// are never looked at, and the words are tried only where that byte is
// the last of some word's first min bytes.
type foldSet struct {
	// first holds, for each byte, 1 + the index in groups of the words
	// that begin with it folded; 0 when none does.
	first  [256]uint8
	groups [][]string
	// shift is how far the window may move when byte c ends it: 0 when c
	// is some word's byte min-1 (the words are tried at the window's
	// start, then it moves by one); else min-1-j for the last j < min-1
	// where some word has c, the least over the words; else min.
	shift [256]uint8
	min   int
	whole bool
}

// newFoldSet returns the set of words, each of at most 255 bytes.
func newFoldSet(whole bool, words ...string) *foldSet {
	f := &foldSet{whole: whole, min: len(words[0])}
	both := func(c byte, set func(byte)) {
		set(c)
		if 'a' <= c && c <= 'z' {
			set(c - ('a' - 'A'))
		}
	}
	for _, w := range words {
		f.min = min(f.min, len(w))
		c := w[0]
		if f.first[c] == 0 {
			f.groups = append(f.groups, nil)
			g := uint8(len(f.groups))
			both(c, func(b byte) { f.first[b] = g })
		}
		g := f.first[c] - 1
		f.groups[g] = append(f.groups[g], w)
	}
	for c := range f.shift {
		f.shift[c] = uint8(f.min)
	}
	for _, w := range words {
		for j := 0; j < f.min-1; j++ {
			d := uint8(f.min - 1 - j)
			both(w[j], func(b byte) { f.shift[b] = min(f.shift[b], d) })
		}
	}
	for _, w := range words {
		both(w[f.min-1], func(b byte) { f.shift[b] = 0 })
	}
	return f
}

// in reports whether s holds one of f's words.
func (f *foldSet) in(s string) bool {
	// j is the window's last byte, i its first.
	for j := f.min - 1; j < len(s); {
		if d := f.shift[s[j]]; d > 0 {
			j += int(d)
			continue
		}
		i := j - (f.min - 1)
		if g := f.first[s[i]]; g != 0 {
			for _, w := range f.groups[g-1] {
				end := i + len(w)
				if end <= len(s) && foldedIs(s[i:end], w) &&
					(!f.whole || ((i == 0 || !isIdent(s[i-1])) && (end == len(s) || !isIdent(s[end])))) {
					return true
				}
			}
		}
		j++
	}
	return false
}
