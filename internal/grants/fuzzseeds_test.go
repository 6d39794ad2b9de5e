package grants

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// keptSeedCases is the command each kept seed of the redaction fuzzers
// builds: the case it was kept for, found from the commit that kept it
// and the bug its message names. A seed is a regression check only while
// it builds that command; when a fuzzer's lists (forms, names, headers,
// pieces, options, separators) grow or change order, a seed that picks
// from them by index builds another command, which the fix it was kept
// for never touched, and passes whether or not the bug is back.
// FuzzRedactSetSecret's three seeds had moved that way (to az login,
// mysqlimport), and FuzzRedactHeaderSecret's 9d1cbc9aba32f039 to single
// quotes when its form's quote choice was added; they are rewritten to
// their cases.
var keptSeedCases = map[string][]string{
	// 0602a8b: `Set-Item in PowerShell is Set-Item (bareWord kept the backtick).
	"FuzzRedactSetSecret/f0ec4582783192f9": {"pwsh", "-c", " `Set-Item -Path Env:GITHUB_TOKEN -Value '0' "},
	// An assignment's empty value at the end of a line: no byte to read.
	"FuzzRedactSetSecret/empty-value-at-end": {"pwsh", "-c", ";Set-Item -Value '0''0''0''0' -Path Env:PGPASSWORD ="},
	// 1c75006: an array element's name and subscript are checked apart.
	"FuzzRedactSetSecret/e47a406a13b47f1f": {"bash", "-c", `(MYSQL_PWD[i]="\" 0") `},
	// PowerShell's -Value followed by another parameter takes no value.
	"FuzzRedactSetSecret/pwsh-value-then-option": {"pwsh", "-c", " `Set-Content -Value -Path Env:PGPASSWORD '0' "},
	// 47ca688: a subscript holds no [, quote or shell operator.
	"FuzzRedactSetSecret/0c74a545464509e1": {"bash", "-c", `A[;MYSQL_PWD[i]="\" 0" `},
	// 5e53741: past the first escaped space of the value.
	"FuzzRedactAssignedSecret/escaped-spaces": {"sh", "-c", `psql -h db PGPASSWORD=\ 4\ 2\ 4\ 2 `},
	// dd86239: a secret --flag right after another flag in a shell line.
	"FuzzRedactAssignedSecret/19cf48592502ee74": {"sh", "-c", "-A --MYSQL_PWD 0 "},
	// b443906: a secret flag as another's value.
	"FuzzRedactAssignedSecret/af50599c09eb55c1": {"sh", "-c", "-seCret --AWS_SECRET_ACCESS_KEY 0 "},
	// A secret's --flag as an assignment's value past blanks.
	"FuzzRedactAssignedSecret/flag-after-blank-assign": {"sh", "-c", "SECRET= --PGPASSWORD 0 "},
	// A secret's --flag as a header's credential past a known scheme (found by a throwaway random test over this fuzzer's inputs).
	"FuzzRedactAssignedSecret/flag-after-header-scheme": {"sh", "-c", "curl -H Authorization:Bearer --MYSQL_PWD 1234 h"},
	// A secret's --flag past blanks after a nested value's = (found by a throwaway random test over this fuzzer's inputs).
	"FuzzRedactAssignedSecret/flag-after-nested-blank-assign": {"sh", "-c", `SECRET=SECRET= --GITHUB_TOKEN " 5"" 7"" 7"" 8"" 4" `},
	// The same, its value $'\' …' pieces, one shell word (shellWordEnd ended it at the blank).
	"FuzzRedactAssignedSecret/flag-dollar-escaped-after-nested-blank-assign": {"sh", "-c", `SECRET= SECRET= --PGPASSWORD $'\' 6'1$'\' 8'0 &&`},
	// A secret's --flag as an Authorization header's credential: hidden as the header's, its value was kept.
	"FuzzRedactAssignedSecret/flag-after-header": {"sh", "-c", "!AuthoriZAtion: --MYSQL_PWD 0 "},
	// A secret's --flag as an Authorization header's credential, its value quoted with a blank.
	"FuzzRedactAssignedSecret/flag-after-header-quoted": {"sh", "-c", "!AuthoriZAtion: --MYSQL_PWD ' 0' "},
	// The same, its value in $'…' with a blank.
	"FuzzRedactAssignedSecret/flag-after-header-dollar-quoted": {"sh", "-c", "!AuthoriZAtion: --MYSQL_PWD $' 0' "},
	// The same, its value a word joined of a bare piece and $'…' with a blank.
	"FuzzRedactAssignedSecret/flag-after-header-dollar-joined": {"sh", "-c", "!AuthoriZAtion: --MYSQL_PWD 0$' 0' "},
	// The same, its value two '…' pieces joined (found by this fuzzer; it failed on 9a9f646 too).
	"FuzzRedactAssignedSecret/flag-after-header-single-pieces": {"sh", "-c", "!AuthoriZAtion: --MYSQL_PWD '0''0' "},
	// ec4f849: a secret's value that starts inside another secret's value.
	"FuzzRedactAssignedSecret/quoted-nested-assignment": {"sh", "-c", "'SECRET=A PGPASSWORD=' 0' "},
	// A secret's --flag with only blanks after it: an empty word, read as one (a panic).
	"FuzzRedactJSONSecret/flag-at-end": {"curl", "", "-d", `{"user": "u", "db-password": "0", "x": "y"}`, "-TOKEN "},
	// 0f407c0: a secret header inside another header's value, quoted.
	"FuzzRedactHeaderSecret/9d1cbc9aba32f039": {"sh", "-c", ` -H "Authorization: Basic aGk=" -H "X-Foo: Authorization: Bearer \"0\"" `},
	// 5be8256: a credential with blanks, to the end of the shell's quotes.
	"FuzzRedactHeaderSecret/6bd16938babe1fd8": {"sh", "-c", `" -H $'Authorization: Basic aGk=' -H $'X-Foo: Authorization: Bearer "0"' `},
	"FuzzRedactHeaderSecret/ca074bcb4c4c77af": {"sh", "-c", ` -H "Authorization: Basic aGk=" -H "Authorization: Bearer 0 0 " `},
	// A stray " before a $'…' header line: the credential's quote read as closing it (found by this fuzzer).
	"FuzzRedactHeaderSecret/quote-before-dollar-quoted-header": {"sh", "-c", `" -H $'' -H $'X-Api-Key: "0 0 "' `},
	// A header line in the word joined to a credential that reads as a --flag, its quoted credential past the word's end.
	"FuzzRedactHeaderSecret/header-in-joined-word": {"sh", "-c", `!TOKEN:- " -H '' -H 'Authorization: Bearer "0 0 "' `},
	// b443906: curl -u's empty password.
	"FuzzRedactHeaderSecret/4bbf57cfa7202e4d": {"sh", "-c", `curl '-u -H '' -H 'X-Api-Key: "0"' `},
	// A backslash-newline between a --flag and its value, read as the value (found by this fuzzer).
	"FuzzRedactShellGrammar/flag-backslash-newline-value": {"bash", "-c", "tool --password \\\n  1234"},
	// A value in "…" read past its closing quote into a later --flag's quoted value, whose flag it hid (found by this fuzzer).
	"FuzzRedactShellGrammar/quoted-value-into-later-flag": {"bash", "-c", `env "PGPASSWORD=1234" psql; tool --password " 1"234`},
	// A comment with a lone quote inside a here-document's body read apart (found by this fuzzer).
	"FuzzRedactShellGrammar/comment-quote-in-body": {"bash", "-c", "cat <<-EOFX >out\n\tif grep x # ' )\n\tthen git config credential.password 0; elif echo; then echo; else echo; fi\n\tEOFX\n"},
	// Here-documents nested in substitutions in bodies read apart: read again at each level, closingShell read 3.6 bytes a byte (found by this fuzzer).
	"FuzzRedactShellGrammar/nested-bodies-read-again": {"bash", "-c", "PGPASSWORD=0; sh <<EOFX\nit's\nEOFX\ngrep x &&\ngrep x | cat <<EOFXX >out\ngrep x\n\ncat <<EOFXXX >out\nx \"$(cat <<-EOFXXXX >out\n\tx \"$(grep x\n\t\n\tgrep x &&\n\tprintf %s 'c d' 'c d')\" y\n\tEOFXXXX\ncat <<-EOFXXXXX >out\n\tx \"$(printf %s 'c d' 'c d' | printf %s\n\t\n\tprintf %s &&\n\tgrep x &&\n\tgrep x 'c d' | grep x  'c d' 'c d' | grep x  'c d'\n\t\n\tgrep x 'c d' | grep x 'c d' 'c d' | grep x 'c d' 'c d' &&\n\tgrep x 'c d' 'c d' | grep x 'c d' 'c d' | grep x 'c d' 'c d' &&\n\tgrep x 'c d' 'c d' | grep x 'c d' 'c d' | grep x 'c d' 'c d')\" y\n\tEOFXXXXX\n)\" y\nEOFXXX\nEOFXX\n"},
	// Here-documents nested in substitutions in a body: closingShell reads 3.53 bytes a byte (on 6c81c70 too; grammarScanBound).
	"FuzzRedactShellGrammar/nested-bodies-in-substitutions": {"bash", "-c", "PGPASSWORD=0; sh <<\"EOFX\" >out\nx \"$(cat <<-EOFXX >out\n\tx \"$(grep x | grep x &&\n\tgrep x | grep x\n\t\n\tgrep x 'c d' | grep x 'c d' 'c d' | grep x 'c d' 'c d' &&\n\tgrep x 'c d' 'c d' | grep x 'c d' 'c d' | grep x 'c d' 'c d' &&\n\tgrep x 'c d' 'c d' | grep x 'c d' 'c d' | grep x 'c d' 'c d'\n\t\n\tgrep x 'c d' | grep x 'c d' 'c d' | grep x 'c d' 'c d' &&\n\tgrep x 'c d' 'c d' | grep x 'c d' 'c d' | grep x 'c d' 'c d' &&\n\tgrep x 'c d' 'c d' | grep x 'c d' 'c d' | grep x 'c d' 'c d')\" y\n\tEOFXX\n)\" y\nEOFX\n"},
	// A quoted value taken to a later word's end with its closing quote, which left the rest of the line read as quoted (found by this fuzzer).
	"FuzzRedactShellGrammar/quoted-value-closing-quote-kept": {"bash", "-c", `env "PGPASSWORD=0" psql | { env "PGPASSWORD=0" psql | docker login -u ann -p 0 reg; }`},
	// A comment with a lone quote in a substitution in a here-document's body that leaves nothing open (found by this fuzzer).
	"FuzzRedactShellGrammar/comment-in-substitution-in-body": {"bash", "-c", "cat <<-EOFX >out\n\tx $(if grep x # ' )\n\tthen git config credential.password 0; elif echo; then echo; else echo; fi) y\n\tEOFX\n"},
	// A quote past a "…" the shell's reading found open, taken as open unread: the value ended at it (found by this fuzzer).
	"FuzzRedactShellGrammar/quote-past-open-shell-quote": {"bash", "-c", `env "PGPASSWORD=0000" psql | grep x $(tool --password=0" 0"00)`},
	// A here-document's body in a substitution (itself in a body), whose quotes the scans passed over (found by this fuzzer).
	"FuzzRedactShellGrammar/body-in-substitution-quotes": {"bash", "-c", "cat <<EOFX >out\nx $(cat <<-EOFXX >out\n\tx $(env \"PGPASSWORD=\\\" 0\" psql) y\n\tEOFXX\n) y\nEOFX\n"},
	// A nested value read past its quotes into a later JSON member's, whose name it hid (found by this fuzzer).
	"FuzzRedactShellGrammar/nested-value-into-json": {"bash", "-c", "env \"PGPASSWORD=0\" psql | env \"PGPASSWORD= 0\" psql &&\ncurl -d \"{\\\"token\\\": \\\"0\\\"}\" https://h/"},
	// A nested value that ends in other quotes than its outer value starts in: the record's quotes were left open (found by this fuzzer).
	"FuzzRedactShellGrammar/nested-value-other-quotes": {"bash", "-c", "grep x | env \"PGPASSWORD=0\" psql &&\nPGPASSWORD=\" 0\" | git config credential.password 0"},
	// A <<- body read apart with its tabs, so that a here-document in it ran past its \tEOF line (found by this fuzzer).
	"FuzzRedactShellGrammar/dash-body-script-heredoc": {"bash", "-c", "cat <<-EOFX >out\n\tPGPASSWORD=000000000000 | cat <<'EOFXX' >out\n\tit's\n\tEOFXX\n\techo $(git config credential.password 000000000000)\n\tEOFX\n"},
	// A header's quoted credential glued to a substitution, in a line that starts as a header line does (found by this fuzzer).
	"FuzzRedactSetSecret/header-glued-subst-line-starts-as-header": {"sh", "-c", `A:||curl -H "X-Api-Key: a"$(echo "\" 0") https://h/ `},
	// A value in `…` read past its closing backtick into the next `…`, whose program it hid (found by this fuzzer).
	"FuzzRedactShellGrammar/value-past-closing-backtick": {"bash", "-c", "echo `tool --password=0` | echo `curl -u ann:0 https://h/`"},
	// A command in a substitution that a `…` opens with escaped backticks, its escaped blank read as \\ and a blank (found by this fuzzer).
	"FuzzRedactShellGrammar/escaped-backticks-in-backticks": {"zsh", "-c", "psql `echo \\`tool --password=\\\\ 1' 2'\\`` # x\n"},
	// ff9219e: header lines are redacted before a program's options.
	"FuzzRedactHeaderSecret/scheme-in-user-password": {"sh", "-c", `curl '-u -H '' -H 'authorization:Basic "0"' `},
	// A header line whose name a secret's value hides, the value ending inside its credential (found by a throwaway random test over this fuzzer's inputs).
	"FuzzRedactHeaderSecret/header-name-in-assigned-value": {"sh", "-c", " SECRET='\\ -H \"\" -H \"Authorization: OAuth '2 05 08 '\"A=\\;' \";"},
	// A header line whose name another header's $'…' credential hides, that word ending inside its credential (found by a throwaway random test over this fuzzer's inputs).
	"FuzzRedactHeaderSecret/header-name-in-dollar-quoted-credential": {"sh", "-c", "curl -H Authorization:$' -H \"\" -H \"Cookie: sid='3 8 8 3 7 '; theme=dark\" https://h/"},
	// A header line whose name a nested value hides, that value ending inside its credential (found by a throwaway random test over this fuzzer's inputs).
	"FuzzRedactHeaderSecret/header-name-in-nested-assigned-value": {"sh", "-c", "PGPASSWORD=SECRET=)$' -H'' -H'authorization:Basic \"204 1\"' "},
	// Quoted header lines (issue 15, helper redact5): in '…', a word joined after the closing quote.
	"FuzzRedactHeaderSecret/single-quoted-x-api-key-joined": {"sh", "-c", "curl -s -H '' -H 'X-Api-Key: \"1 2 3 4 \"'\"$x\"/h; echo visible"},
	// --header="…" glued, the credential quoted in it.
	"FuzzRedactHeaderSecret/long-glued-double-basic": {"sh", "-c", "curl --header=\"\" --header=\"authorization:Basic \\\"12 34 \\\"\" https://h/; echo visible"},
	// --header="…" glued, the credential's blanks bare in the quotes.
	"FuzzRedactHeaderSecret/long-glued-double-proxy-authorization-bare": {"sh", "-c", "curl --header=\"\" --header=\"Proxy-Authorization: 1 2 3 4 \" https://h/"},
	// A curl argument -HAuthorization: … (its name was read as -HAuthorization; kept on 02504ff).
	"FuzzRedactHeaderSecret/glued-argv-authorization": {"curl", "curl", "-H", "-HAuthorization: Bearer \"1 2 3 4 \"", "https://h/"},
	// -H$'…' glued, a cookie's quoted value.
	"FuzzRedactHeaderSecret/glued-single-dollar-cookie": {"sh", "-c", "curl -s -H$'' -H$'Cookie: theme=dark; sid=\"1 2 3 \"' https://h/"},
	// In $(…), the command after it with curl -u.
	"FuzzRedactHeaderSecret/in-dollar-paren": {"sh", "-c", "x=$(curl -s -H \"\" -H \"Authorization: Bearer \\\"1 23 4\\\"\" https://h/); curl -u ann:x h"},
	// --header '…' in "$(…)".
	"FuzzRedactHeaderSecret/in-dollar-paren-in-double": {"sh", "-c", "echo \"$(curl --header '' --header 'X-Api-Key: \"1 2 3 4 \"' https://h/)\" visible"},
	// -H '…' in `…`.
	"FuzzRedactHeaderSecret/in-backticks": {"sh", "-c", "x=`curl -H '' -H 'X-Api-Key: \"1 2 3 4 \"' https://h/`; echo visible"},
	// -H"…" in `…`, the closing backtick joined to the quote.
	"FuzzRedactHeaderSecret/in-backticks-joined": {"sh", "-c", "echo `curl -H\"\" -H\"Authorization: Bearer \\\"12 34 \\\"\"`; echo visible"},
	// --header='…' in `…` in $(…), a header line in another's value.
	"FuzzRedactHeaderSecret/in-backticks-in-dollar-paren": {"sh", "-c", "echo $(x `curl --header='' --header='X-Foo: Authorization: Bearer \"1 2 \"' h`)"},
}

// TestRedactFuzzSeedsKeepTheirCase builds the command of every kept seed
// of the redaction fuzzers and fails where it is not the case the seed
// was kept for (keptSeedCases), where a seed has no recorded case, where
// a recorded case has no seed, and where a seed picks its form, name,
// header or place by index rather than by key (every fuzzer's seeds name
// them by key: FuzzRedactAssignedSecret's, FuzzRedactHeaderSecret's and
// FuzzRedactJSONSecret's picked theirs by index until the three took
// keys as FuzzRedactSetSecret's had). A fuzzer's list that
// grows or changes order in a way that moves a kept seed fails here,
// rather than leaving a regression check that cannot fail.
func TestRedactFuzzSeedsKeepTheirCase(t *testing.T) {
	build := map[string]func(t *testing.T, v []any) []string{
		"FuzzRedactSetSecret": func(t *testing.T, v []any) []string {
			form, name, which := v[0].(string), v[1].(string), v[2].(uint16)
			if !slices.ContainsFunc(setSecretForms, func(f setSecretForm) bool { return f.key == form }) || !slices.Contains(setSecretNames, name) {
				f, n := setSecretPick(form, name, which)
				t.Errorf("names form %q and name %q, of which one is none: it is kept by index, which moves as the lists grow; write the form and name it was found for (which %d stands for %q and %q today)", form, name, which, f.key, n)
			}
			return setSecretArgv(form, name, which, v[3].(uint8), v[4].(string), v[5].([]byte), v[6].([]byte), v[7].(string), v[8].(string))
		},
		"FuzzRedactAssignedSecret": func(t *testing.T, v []any) []string {
			form, name, which := v[0].(string), v[1].(string), v[2].(uint8)
			keyed(t, "form", form, assignedSecretForms, int(which))
			keyed(t, "name", name, assignedSecretNames, int(which)/len(assignedSecretForms))
			return assignedSecretArgv(form, name, which, v[3].(string), v[4].([]byte), v[5].(string), v[6].(string))
		},
		"FuzzRedactJSONSecret": func(t *testing.T, v []any) []string {
			form, name, which := v[0].(string), v[1].(string), v[2].(uint8)
			keyed(t, "form", form, jsonSecretForms, int(which))
			keyed(t, "name", name, jsonSecretNames, int(which)/len(jsonSecretForms))
			return jsonSecretArgv(form, name, which, v[3].(string), v[4].([]byte), v[5].(string), v[6].(string))
		},
		"FuzzRedactShellGrammar": func(t *testing.T, v []any) []string {
			// Its choices are bytes read in order: a change to the
			// grammar moves what a kept seed builds, which fails here.
			return grammarArgv(v[0].([]byte), v[1].(string))
		},
		"FuzzRedactHeaderSecret": func(t *testing.T, v []any) []string {
			header, place, which := v[0].(string), v[1].(string), v[3].(uint8)
			var keys []string
			for _, h := range headerSecretHeaders {
				keys = append(keys, h.key)
			}
			keyed(t, "header", header, keys, int(which))
			keyed(t, "place", place, headerSecretPlaces, int(which)/len(keys))
			return headerSecretArgv(header, place, v[2].(uint8), which, v[4].(string), v[5].([]byte), v[6].(string), v[7].(string))
		},
	}
	seen := map[string]bool{}
	for fuzzer, argv := range build {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", fuzzer, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			seed := fuzzer + "/" + filepath.Base(file)
			seen[seed] = true
			t.Run(seed, func(t *testing.T) {
				v, err := readCorpusFile(file)
				if err != nil {
					t.Fatal(err)
				}
				got := func() (got []string) {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("the seed's values do not fit %s's arguments: %v", fuzzer, r)
						}
					}()
					return argv(t, v)
				}()
				want, ok := keptSeedCases[seed]
				switch {
				case !ok:
					t.Errorf("no case recorded for it in keptSeedCases; it builds %#v", got)
				case !slices.Equal(got, want):
					t.Errorf("builds %#v, not the case it was kept for, %#v: a list it picks from by index has moved", got, want)
				}
			})
		}
	}
	for seed := range keptSeedCases {
		if !seen[seed] {
			t.Errorf("keptSeedCases records %s, which is no seed in testdata/fuzz", seed)
		}
	}
	lists := map[string][]string{
		"assignedSecretForms": assignedSecretForms, "assignedSecretNames": assignedSecretNames,
		"jsonSecretForms": jsonSecretForms, "jsonSecretNames": jsonSecretNames,
		"headerSecretPlaces": headerSecretPlaces, "setSecretNames": setSecretNames,
	}
	for _, f := range setSecretForms {
		lists["setSecretForms"] = append(lists["setSecretForms"], f.key)
	}
	for _, h := range headerSecretHeaders {
		lists["headerSecretHeaders"] = append(lists["headerSecretHeaders"], h.key)
	}
	for list, keys := range lists {
		seen := map[string]bool{}
		for _, k := range keys {
			if k == "" || seen[k] {
				t.Errorf("%s key %q is empty or not unique", list, k)
			}
			seen[k] = true
		}
	}
}

// keyed fails the test where a kept seed names as its key what is no
// key of its fuzzer's list keys: it is then kept by index (i), which
// moves as the list grows.
func keyed(t *testing.T, what, key string, keys []string, i int) {
	t.Helper()
	if !slices.Contains(keys, key) {
		t.Errorf("names %s %q, which is none: it is kept by index, which moves as the lists grow; write the %s it was found for (which stands for %q today)", what, key, what, keys[i%len(keys)])
	}
}

// readCorpusFile reads a "go test fuzz v1" file's values, of the types
// the redaction fuzzers take.
func readCorpusFile(path string) ([]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("%s: not a go test fuzz v1 file", path)
	}
	var vs []any
	for _, line := range lines[1:] {
		typ, lit, ok := strings.Cut(line, "(")
		if !ok || !strings.HasSuffix(lit, ")") {
			return nil, fmt.Errorf("%s: %q is no value", path, line)
		}
		lit = strings.TrimSuffix(lit, ")")
		switch typ {
		case "string", "[]byte":
			s, err := strconv.Unquote(lit)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %v", path, line, err)
			}
			if typ == "string" {
				vs = append(vs, s)
			} else {
				vs = append(vs, []byte(s))
			}
		case "byte", "uint8", "uint16":
			var n uint64
			if strings.HasPrefix(lit, "'") {
				r, _, tail, err := strconv.UnquoteChar(strings.TrimSuffix(lit[1:], "'"), '\'')
				if err != nil || tail != "" || !strings.HasSuffix(lit, "'") {
					return nil, fmt.Errorf("%s: %q is no character", path, line)
				}
				n = uint64(r)
			} else if n, err = strconv.ParseUint(lit, 0, 16); err != nil {
				return nil, fmt.Errorf("%s: %q: %v", path, line, err)
			}
			if typ == "uint16" {
				vs = append(vs, uint16(n))
			} else if n > 255 {
				return nil, fmt.Errorf("%s: %q is no byte", path, line)
			} else {
				vs = append(vs, uint8(n))
			}
		default:
			return nil, fmt.Errorf("%s: %q: type %s is not read here", path, line, typ)
		}
	}
	return vs, nil
}
