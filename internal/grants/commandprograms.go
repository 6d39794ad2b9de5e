package grants

import (
	"path"
	"slices"
	"strings"
)

// programOption is an option whose argument is a secret only when it is
// given to one program: curl's -u user:password. Its name says nothing
// (-u, -p, -a) and the same letter means something else to another
// program (docker run -u 1000:1000, ssh -p 2222), so secretName cannot
// see it, and a command line that used it kept the secret.
type programOption struct {
	programs []string // the program's names, as path.Base of its word
	// sub are the words of its subcommand, which come after the
	// program's word and before the option, in order (docker login -p
	// X; docker run -p 80:80 is a port).
	sub []string
	// opts are the options whose argument holds the secret (-u X, -uX,
	// --user X, --user=X), each with the piece of the argument after
	// which the secret starts: "" the whole argument; ":" for
	// user[:password], where only the password is a secret (curl -u
	// ann:PW keeps ann; curl -u ann asks for it); "=" for KEY=VALUE
	// (kubectl --from-literal); "%" for user%password (smbclient -U);
	// "pass:" for openssl's pass:X (env:VAR and file:F name no secret).
	// An argument without that piece holds none.
	opts map[string]string
	// flags are the program's letters that take no argument, which may
	// come before a letter of opts in one word (curl -sSu X).
	flags string
	// glued are the letters of opts whose argument is the rest of their
	// word only: alone, the option asks for the secret, and the word
	// after it is no secret (mysql -pPW; mysql -p db).
	glued string
	// words: the program's options are whole words, never letters
	// clustered or glued to their argument (openssl -kfile F is no -k).
	words bool
	// operands: the program's options end at its first operand, the
	// command it runs (sshpass -p X ssh -p 2222 h: ssh's -p is a port).
	// args are then the letters whose argument, no secret, is the next
	// word or the rest of theirs (sshpass -f FILE), read past.
	operands bool
	args     string
	// assign: each NAME=VALUE operand after sub sets a secret, its VALUE
	// hidden whatever NAME says (fly secrets set STRIPE_KEY=X).
	assign bool
	// token: the first operand after sub that is no NAME=VALUE (read by
	// the rule for those: vault login -method=userpass password=X) is a
	// secret (vault login TOKEN) unless it is - (read from stdin); the
	// operands after it are none. valueOpts are the options, without
	// their dashes, whose argument is the word after them (vault login
	// -method userpass), read past: another option takes none, and the
	// word after it is an operand.
	token     bool
	valueOpts []string
	// operand: with the letter batch among the program's flags, its
	// operand at this place (from 1) is a secret, one place earlier with
	// the letter fewer too (htpasswd -b FILE USER PW, htpasswd -nb USER
	// PW). Its options come before its operands.
	operand      int
	batch, fewer byte
	// env are the environment variables the program reads a secret from,
	// by its documentation, whose names do not say so (secretName reads
	// them as it reads PGPASSWORD): SSHPASS=X sshpass -e, REDISCLI_AUTH=X
	// redis-cli. As written: the programs read no other case.
	env []string
	// userEnv are the variables the program reads a user and password
	// from, each with the piece of its value after which the password
	// starts: smbclient's USER=ann%PW (redactAssignments hides PW).
	userEnv map[string]string
}

// userinfo is opts' piece for a user[:password] argument.
const userinfo = ":"

// programOptions are the options whose arguments programValues hides.
// A program is named in one entry only.
var programOptions = []programOption{
	// curl -u/--user and -U/--proxy-user take user:password, as
	// -E/--cert and --proxy-cert take certificate:password; its
	// --oauth2-bearer a token, --pass and --proxy-pass a key's
	// passphrase.
	{programs: []string{"curl"}, opts: map[string]string{
		"-u": userinfo, "-U": userinfo, "--user": userinfo, "--proxy-user": userinfo,
		"-E": userinfo, "--cert": userinfo, "--proxy-cert": userinfo,
		"--oauth2-bearer": "", "--pass": "", "--proxy-pass": "",
	}, flags: "0123456aBfgGIijJklLMnNOpqRsSvVZ#"},
	// Samba's clients take -U user%password, and read USER as it
	// (Samba's cli_credentials_guess; LOGNAME is a user's name only).
	{programs: []string{"smbclient", "rpcclient", "smbcacls"}, opts: map[string]string{"-U": "%", "--user": "%"}, flags: "NPegkq", userEnv: map[string]string{"USER": "%"}},
	// A password given as an option's argument: sshpass -p, redis-cli
	// -a and --pass, docker (podman) login -p, az login -p, sqlcmd -P,
	// MongoDB's shells and tools -p, OpenLDAP's clients -w (ldappasswd
	// -a and -s: the old and new passwords). Their --password is
	// secretName's.
	{programs: []string{"sshpass"}, opts: map[string]string{"-p": ""}, flags: "ehvV", operands: true, args: "fdP", env: []string{"SSHPASS"}},
	{programs: []string{"redis-cli"}, opts: map[string]string{"-a": "", "--pass": ""}, env: []string{"REDISCLI_AUTH"}},
	// GitLab Runner's DOCKER_AUTH_CONFIG holds a registry's config JSON,
	// its credentials in "auth".
	{programs: []string{"docker", "podman"}, sub: []string{"login"}, opts: map[string]string{"-p": ""}, env: []string{"DOCKER_AUTH_CONFIG"}},
	{programs: []string{"az"}, sub: []string{"login"}, opts: map[string]string{"-p": ""}},
	{programs: []string{"sqlcmd"}, opts: map[string]string{"-P": ""}},
	{programs: []string{"mongosh", "mongo", "mongodump", "mongorestore", "mongoexport", "mongoimport", "mongostat", "mongotop", "mongofiles"}, opts: map[string]string{"-p": ""}},
	{programs: []string{"ldapsearch", "ldapmodify", "ldapadd", "ldapdelete", "ldapcompare", "ldapmodrdn", "ldapwhoami", "ldapexop"}, opts: map[string]string{"-w": ""}, flags: "ACLMNQVWZcntuvx"},
	{programs: []string{"ldappasswd"}, opts: map[string]string{"-w": "", "-a": "", "-s": ""}, flags: "AESMNQVWZcnvx"},
	// The MySQL and MariaDB clients take their password glued to -p.
	{programs: mysqlClients, opts: map[string]string{"-p": ""}, glued: "p", flags: "ABCEHNVXabcfgiknqstvx"},
	// ssh-keygen's new (-N) and old (-P) passphrases.
	{programs: []string{"ssh-keygen"}, opts: map[string]string{"-N": "", "-P": ""}, flags: "ABceHhiKkLlpQqUuvyg"},
	// Archives' passwords: 7-Zip's -pPASSWORD (-p alone asks for it;
	// its switches are words, of which only -p starts with p), zip's
	// and unzip's -P.
	{programs: []string{"7z", "7za", "7zr", "7zz"}, opts: map[string]string{"-p": ""}, glued: "p"},
	{programs: []string{"zip"}, opts: map[string]string{"-P": ""}, flags: "0123456789ADFJLRSTXcdefghjklmqruvyz"},
	{programs: []string{"unzip"}, opts: map[string]string{"-P": ""}, flags: "abcfjlnopqstuvzBCDKLMNTUVWXYZ"},
	// rclone's config password, read from the environment only.
	// (borg's BORG_PASSPHRASE says passphrase: secretName.)
	{programs: []string{"rclone"}, env: []string{"RCLONE_CONFIG_PASS"}},
	// openssl's pass phrase arguments (-passin, -passout, -pass) name
	// where it is read from, and hold it only as pass:X; enc's -k is a
	// password and -K a key, whole. Its options are words: -kfile F and
	// -in F are no -k nor -i.
	{programs: []string{"openssl"}, opts: map[string]string{"-passin": "pass:", "-passout": "pass:", "-pass": "pass:", "-k": "", "-K": ""}, words: true},
	// htpasswd -b takes the password as its last operand (-n: no file).
	{programs: []string{"htpasswd"}, flags: "bcnimBdpsDv", args: "Cr", operand: 3, batch: 'b', fewer: 'n'},
	// gh secret set NAME --body VALUE sets a secret whatever its NAME
	// says (setValues sees the value only under a secret's name).
	{programs: []string{"gh"}, sub: []string{"secret", "set"}, opts: map[string]string{"-b": "", "--body": ""}},
	// kubectl (oc) create secret generic N --from-literal=K=V: each V,
	// its K kept (a configmap's literals are no secret).
	{programs: []string{"kubectl", "oc"}, sub: []string{"create", "secret"}, opts: map[string]string{"--from-literal": "="}},
	// fly (flyctl) secrets set A=x B=y and heroku config:set K=V.
	{programs: []string{"fly", "flyctl"}, sub: []string{"secrets", "set"}, assign: true},
	{programs: []string{"heroku"}, sub: []string{"config:set"}, assign: true},
	// vault (OpenBao's bao) login TOKEN: the token method's operand.
	{programs: []string{"vault", "bao"}, sub: []string{"login"}, token: true, valueOpts: []string{
		"method", "path", "field", "format", "address", "namespace", "ns", "ca-cert", "ca-path",
		"client-cert", "client-key", "tls-server-name", "mfa", "wrap-ttl", "header", "agent-address", "policy-override",
	}},
}

// programUserEnv returns, where name, or its part after a ':'
// (PowerShell's Env:USER), is one of programOptions' userEnv, the piece
// of its value after which the password starts. An element of it
// (USER[0], bash's USER itself; fish's set -x USER[1]) is it too.
func programUserEnv(name string) (string, bool) {
	name = envName(name)
	for i := range programOptions {
		if p, ok := programOptions[i].userEnv[name]; ok {
			return p, true
		}
	}
	return "", false
}

// programEnv says whether name, or its part after a ':' (PowerShell's
// Env:SSHPASS), is one of programOptions' env, or an element of one
// (SSHPASS[0]).
func programEnv(name string) bool {
	name = envName(name)
	for i := range programOptions {
		if slices.Contains(programOptions[i].env, name) {
			return true
		}
	}
	return false
}

// envName is the variable that name (an assignment's or a setter's)
// sets: without a subscript ([0]: the subscript of a[USER] names no
// variable) and without what comes before a ':' (Env:USER).
func envName(name string) string {
	name, _, _ = strings.Cut(name, "[")
	return name[strings.LastIndexByte(name, ':')+1:]
}

// secretCut says where in a word its secret starts: past the byte from,
// and past the first of each piece of after found in turn (":" for
// user:password, "=" and ":" for --user=user:password).
type secretCut struct {
	from  int
	after []string
}

// start returns where w's secret starts, or -1 if w has none (curl -u
// ann: no password).
func (c secretCut) start(w string) int {
	i := min(c.from, len(w))
	for _, sep := range c.after {
		j := strings.Index(w[i:], sep)
		if j < 0 {
			return -1
		}
		i += j + len(sep)
	}
	return i
}

// apply returns w with its secret replaced by RedactedArg. A closing
// quote of a word that is one quoted piece is kept ('ann:[REDACTED]').
// An empty secret (curl -u ann:) is left as it is: a [REDACTED] put
// there would be read by the later rules as text of the word (a header
// line's credential, whose own value was then kept).
func (c secretCut) apply(w string) string {
	s := c.start(w)
	if s < 0 || quotedEnd(w, s) == s {
		return w
	}
	return w[:s] + RedactedArg + w[quotedEnd(w, s):]
}

// quotedEnd returns where a secret starting at s in the word w ends: at
// the closing quote where w is one '…' or "…" piece that opened before
// s, or else at w's end.
func quotedEnd(w string, s int) int {
	n := len(w)
	if s == 0 || n < 2 || s >= n || w[0] != '\'' && w[0] != '"' || w[n-1] != w[0] {
		return n
	}
	if strings.IndexByte(w[1:n-1], w[0]) >= 0 || w[0] == '"' && strings.IndexByte(w, '\\') >= 0 {
		return n
	}
	return n - 1
}

// programValues calls hide(k, cut) for each of a command's n words
// (word(k)) that holds a secret given to a program in programOptions,
// with where in the word it starts: the argument of one of its options
// (curl -u ann:PW, -uann:PW, -sSu ann:PW, --user=ann:PW). The
// program's word may follow others (sudo curl, env X=1 curl); the words
// are read once, each after the last program named before it.
func programValues(n int, word func(k int) string, hide func(k int, c secretCut)) {
	var o *programOption
	var pending *secretCut // word k is the secret argument of the option before it
	skip := false          // word k is another option's argument (operands)
	sub := 0               // how many words of o.sub have been seen
	optArg := false        // word k may be the argument of the option before it
	letters := ""          // o's flags seen (batch, fewer)
	operands := 0          // o's operands seen
	for k := 0; k < n; k++ {
		if pending != nil {
			hide(k, *pending)
			pending = nil
			continue
		}
		raw := word(k)
		w := bareWord(raw)
		// A program whose operands are counted runs no other: its
		// operand /etc/nginx/htpasswd is no htpasswd. Nor does a
		// word that names a container or a host (namesArg).
		if p := programOf(w); p != nil && (o == nil || o.operand == 0) && (k == 0 || !namesArg(bareWord(word(k-1)))) {
			o, skip, sub, optArg, letters, operands = p, false, 0, false, "", 0
			continue
		}
		switch {
		case o == nil:
			continue
		case skip:
			skip = false
			continue
		case sub < len(o.sub):
			// The words of o's subcommand, each the first operand
			// after the one before: options may stand between, and
			// the word after an option (which may be its argument:
			// docker -H tcp://h login). Another operand is another
			// subcommand, whose options are no secrets: docker run
			// --name login -p 80:80 hid the port.
			switch {
			case w == o.sub[sub]:
				sub, optArg = sub+1, false
			case isOption(w):
				optArg = !strings.Contains(w, "=")
			case optArg:
				optArg = false
			default:
				o = nil
			}
			continue
		case o.operands && (w == "--" || !isOption(w)):
			o = nil // the command the program runs
			continue
		case o.assign && !isOption(w):
			if strings.Contains(w, "=") {
				hide(k, secretCut{after: []string{"="}})
			}
			continue
		case o.token && isOption(w):
			skip = !strings.Contains(w, "=") && slices.Contains(o.valueOpts, strings.TrimLeft(w, "-"))
			continue
		case o.token:
			if !strings.Contains(w, "=") {
				// The one token, or - (stdin): a redirection's
				// file after it (vault login - < f) is none.
				if w != "-" && w != "" {
					hide(k, secretCut{})
				}
				o = nil
			}
			continue
		case o.operand > 0 && !isOption(w):
			operands++
			at := o.operand
			if strings.IndexByte(letters, o.fewer) >= 0 {
				at--
			}
			if operands == at && strings.IndexByte(letters, o.batch) >= 0 {
				hide(k, secretCut{})
			}
			continue
		}
		if piece, ok := o.opts[w]; ok {
			if len(w) != 2 || strings.IndexByte(o.glued, w[1]) < 0 {
				pending = &secretCut{after: pieces(piece)}
			}
			continue
		}
		if strings.HasPrefix(w, "--") {
			if l, _, ok := strings.Cut(w, "="); ok {
				if piece, ok := o.opts[l]; ok {
					hide(k, secretCut{after: append([]string{"="}, pieces(piece)...)})
				}
			}
			continue
		}
		if o.words || len(w) < 2 || w[0] != '-' {
			continue
		}
		// A cluster of short options (-sSu): the letters that take no
		// argument, then one whose argument is the rest of the word or
		// the next word.
		for j := 1; j < len(w); j++ {
			c := w[j]
			if strings.IndexByte(o.flags, c) >= 0 {
				letters += string(c)
				continue
			}
			if piece, ok := o.opts["-"+string(c)]; ok {
				if j+1 < len(w) {
					hide(k, secretCut{from: rawIndex(raw, j+1), after: pieces(piece)})
				} else if strings.IndexByte(o.glued, c) < 0 {
					pending = &secretCut{after: pieces(piece)}
				}
			}
			skip = j+1 == len(w) && strings.IndexByte(o.args, c) >= 0
			break
		}
	}
}

// namesArg says whether the option w takes a name as its argument: a
// container's, a host's (docker run --name mongo -p 27017:27017 mongo,
// redis-cli -h mongo -p 6379), which is no program run though a program
// has that name, so its options are not the program's.
func namesArg(w string) bool {
	switch w {
	case "--name", "--hostname", "--host", "-h", "--network-alias":
		return true
	}
	return false
}

// pieces is a secretCut's after for opts' piece p.
func pieces(p string) []string {
	if p == "" {
		return nil
	}
	return []string{p}
}

// programOf returns the entry of programOptions that names the program
// whose word (without quotes) is w, or nil.
func programOf(w string) *programOption {
	base := path.Base(w)
	for i := range programOptions {
		for _, p := range programOptions[i].programs {
			if p == base {
				return &programOptions[i]
			}
		}
	}
	return nil
}

// rawIndex returns where in the shell word raw the byte at i of its
// bareWord stands: past the quotes, backslashes and backticks that
// bareWord leaves out.
func rawIndex(raw string, i int) int {
	for r := 0; r < len(raw); r++ {
		if strings.IndexByte("'\"\\`", raw[r]) >= 0 {
			continue
		}
		if i == 0 {
			return r
		}
		i--
	}
	return len(raw)
}
