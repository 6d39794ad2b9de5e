package pggw

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestFoldSetsMatchWordSearches holds each foldSet to the searches it
// replaced, one word at a time (indexFold, strings.Contains, and the
// whole-word and state-word searches below, as they were), on random texts
// made of the words' own bytes in both cases and of the bytes where the
// folds and the word boundaries differ (@ and ` fold onto each other
// under indexFold's |0x20, _ and digits and bytes >= 0x80 are identifier
// bytes), so that words overlap, touch and lie at the text's ends.
func TestFoldSetsMatchWordSearches(t *testing.T) {
	anyFold := func(s string, words ...string) bool {
		for _, w := range words {
			if indexFold(s, w) >= 0 {
				return true
			}
		}
		return false
	}
	checks := []struct {
		name string
		got  func(string) bool
		want func(string) bool
	}{
		{"preparedWords", preparedWords.in, func(s string) bool {
			for _, w := range []string{"prepare", "deallocate", "discard", "declare", "close"} {
				if wordFoldBefore(s, w) {
					return true
				}
			}
			return false
		}},
		{"stateWordSet", stateWordSet.in, stateWordBefore},
		{"secretWords", secretWords.in, func(s string) bool {
			return anyFold(s, "password", "crypt", "hmac") || strings.Contains(s, "://")
		}},
		{"alterWord", alterWord.in, func(s string) bool { return anyFold(s, "alter") }},
		{"intoWord", intoWord.in, func(s string) bool { return anyFold(s, "into") }},
	}
	pieces := []string{"prepare", "PREPARE", "deallocate", "Discard", "declare", "close", "CLOSE", "clos",
		"dblink", "DBLINK", "query_to_xml", "QUERY_TO_XML", "ts_stat", "TS_REWRITE", `u&"`, `U&"`,
		"password", "PassWord", "passwor", "crypt", "CRYPT", "hmac", "HMAC", "://", ":/",
		"alter", "ALTER", "alte", "into", "INTO", "int",
		"a", "c", "d", "p", "t", "u", "_", "1", "$", " ", ";", "(", "@", "`", "[", "{", "\x7f", "\xc3\xa9", "\x80"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		var b strings.Builder
		for range rng.IntN(6) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := b.String()
		for _, c := range checks {
			if got, want := c.got(s), c.want(s); got != want {
				t.Fatalf("%s.in(%q) = %v, want %v", c.name, s, got, want)
			}
		}
	}
	// The texts the tests are for, spelled out.
	for _, tc := range []struct {
		name, s string
		want    bool
	}{
		{"preparedWords", "SELECT abalance FROM pgbench_accounts WHERE aid = 1;", false},
		{"preparedWords", "select close from prices", true}, // a word; the regexp decides
		{"preparedWords", "select closed, enclose, close_ from t", false},
		{"preparedWords", "DEALLOCATE p", true},
		{"stateWordSet", "select * from DBLINK('x')", true},
		{"stateWordSet", "select 1", false},
		{"secretWords", "create role r PASSWORD 'x'", true},
		{"secretWords", "select dblink_connect('postgresql://u:p@h')", true},
		{"secretWords", "select 1", false},
		{"intoWord", "select 1 INTO t", true},
		{"alterWord", "ALTER ROLE r", true},
	} {
		for _, c := range checks {
			if c.name == tc.name && c.got(tc.s) != tc.want {
				t.Errorf("%s.in(%q) = %v, want %v", tc.name, tc.s, !tc.want, tc.want)
			}
		}
	}
}

// wordFoldBefore is the whole-word search mayChangePrepared made before
// foldSet: sql holds w (lower case) as a whole word, ASCII case ignored.
func wordFoldBefore(sql, w string) bool {
	for i := 0; i < len(sql); {
		k := indexFold(sql[i:], w)
		if k < 0 {
			return false
		}
		k += i
		end := k + len(w)
		if (k == 0 || !isIdent(sql[k-1])) && (end == len(sql) || !isIdent(sql[end])) {
			return true
		}
		i = k + 1
	}
	return false
}

// stateWordBefore is hasStateWord before foldSet.
func stateWordBefore(sql string) bool {
	for i := 0; i < len(sql); i++ {
		c := sql[i] | 0x20
		if c != 'd' && c != 'q' && c != 't' && c != 'u' {
			continue
		}
		for _, w := range stateWords {
			if len(sql)-i >= len(w) && foldedIs(sql[i:i+len(w)], w) {
				return true
			}
		}
	}
	return false
}
