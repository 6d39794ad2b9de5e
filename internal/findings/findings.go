// Package findings detects the signs that an identity is not one agent:
// the same identity active from two or more instances within a window
// (shared-identity), and a grant's gateway credentials used from another
// instance than the one that requested them (credential-moved). Its caller
// decides what activity is: an API call, and a gateway session from the
// requesting instance's address (internal/grants).
//
// The detector only decides; recording a finding (a "finding" log event, on
// the grant where there is one) and refusing the call under
// identity_binding: refuse are the caller's. It keeps, per identity, the
// instances seen within the window, and remembers which findings it has
// reported so that each identity+instance pair is reported once per window
// and each grant+instance pair once.
//
// What makes an instance is its source IP, its TLS client certificate and
// its workload instance claims; the user agent is recorded but not
// compared, because one agent legitimately runs several tools (the CLI,
// an SDK, curl) from one place.
package findings

import (
	"crypto/tls"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"crypto/sha256"
	"encoding/hex"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/model"
)

// maxTracked bounds the findings the detector remembers having reported:
// past it, those older than their window go first and, if that is not
// enough, the oldest of the rest (a flood of addresses cannot grow it
// without limit; one forgotten is at worst reported again).
const maxTracked = 100_000

// MaxInstances bounds the instances remembered per identity: past it, a
// new one takes the place of the one seen longest ago. Without it one
// identity seen from many addresses (a fleet sharing one key, or a stolen
// key used from a rotating range) grew the detector by every address
// within the window, and every call walked them all. An identity with
// that many is shared whatever is forgotten.
const MaxInstances = 1000

// MaxOthers bounds the other instances a finding lists. Each new instance
// of a shared identity is a finding naming the others active, so N
// instances within a window (a fleet sharing one key, or a stolen key used
// from many addresses) wrote N findings of up to N instances each, into
// the log and onto every grant requested meanwhile; the finding's detail
// still counts them all.
const MaxOthers = 10

// Sample returns others (sorted, as Shared and Active return them) cut to
// MaxOthers.
func Sample(others []string) []string {
	if len(others) > MaxOthers {
		return others[:MaxOthers:MaxOthers]
	}
	return others
}

// Key is the part of an instance that tells instances apart.
func Key(in model.Instance) string {
	var b strings.Builder
	b.WriteString(in.IP)
	if in.TLSClient != "" {
		b.WriteString(" tls:" + shortHash(in.TLSClient))
	}
	if len(in.Claims) > 0 {
		keys := make([]string, 0, len(in.Claims))
		for k := range in.Claims {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteString(" " + k + "=" + claimValue(in.Claims[k]))
		}
	}
	return b.String()
}

// MaxClaimValue bounds a claim's value in an instance's key: a longer one
// is kept as its start and a hash of the whole. Claims are the workload
// token's (up to workload.MaxTokenLength), partly chosen by whoever runs
// the workload (a branch, a workflow name), and a key is written whole
// into every finding naming the instance (up to MaxOthers+1 of them), the
// grant's record and the notices that tell other replicas of a sighting
// (which drop one too long, so that instance went unseen by them).
const MaxClaimValue = 64

// claimValue is v bounded for a key: two values that differ anywhere
// still give different keys (the hash), and the same value the same key.
func claimValue(v string) string {
	if len(v) <= MaxClaimValue {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	cut := MaxClaimValue - 20 // the start, "…" (3 bytes) and 16 hex digits fit in MaxClaimValue
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "…" + hex.EncodeToString(sum[:8])
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// ReportKey is the part of in's Key that its shared-identity finding is
// recorded once per window for: Key with any TLS client certificate
// written as one, "tls:*". An address or a signed token's claims cost
// something to change; a self-signed certificate costs a key pair, one per
// connection if need be, and keyed by certificate one holder of an
// identity's key could have a finding written (onto each of its open
// grants) per handshake. At one address, the first instance told apart by
// its certificate alone is reported within the window; the others are
// instances all the same (listed among a finding's others, refused under
// identity_binding: refuse).
func ReportKey(in model.Instance) string {
	if in.TLSClient != "" {
		in.TLSClient = "*"
	}
	return Key(in)
}

// Describe is Key with the user agent, for the record.
func Describe(in model.Instance) string {
	s := Key(in)
	if in.UserAgent != "" {
		s += " (" + in.UserAgent + ")"
	}
	return s
}

// IPOf returns the IP of an address written host:port, possibly followed
// by a space and a user agent (as gateways describe their clients), or
// the address itself if it has no port.
func IPOf(addr string) string {
	addr, _, _ = strings.Cut(addr, " ")
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// FromRequest fingerprints an HTTP request's client. The user agent is
// bounded.
func FromRequest(r *http.Request) model.Instance {
	in := model.Instance{IP: IPOf(r.RemoteAddr)}
	if ua := r.UserAgent(); ua != "" {
		if len(ua) > 200 {
			ua = ua[:200]
		}
		in.UserAgent = Printable(ua)
	}
	in.TLSClient = TLSClient(r.TLS)
	return in
}

// TLSClient is the fingerprint of a TLS connection's client certificate:
// the SHA-256 of the certificate it presented (the chain's first), in hex,
// or "" for none (or no TLS). The listeners ask every client for one
// (tlscert) and verify none: the handshake proves the client holds the
// certificate's key, so no other client presents the same one.
func TLSClient(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// Printable escapes control characters and invalid UTF-8 in s (a user
// agent is the client's to choose, and ends up in tables and logs).
func Printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsGraphic(r) {
			q := strconv.QuoteToGraphic(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

// Detector holds the recent instances of every identity.
type Detector struct {
	clk    clock.Clock
	window time.Duration

	// maxInstances and maxReported are MaxInstances and maxTracked
	// (smaller in tests).
	maxInstances, maxReported int

	mu       sync.Mutex
	seen     map[string]map[string]time.Time // identity → instance key → last seen
	reported map[string]time.Time            // dedupe key → when reported
}

// New returns a Detector with the given window (how long an instance
// counts as active after its last call).
func New(clk clock.Clock, window time.Duration) *Detector {
	if clk == nil {
		clk = clock.Real
	}
	return &Detector{clk: clk, window: window, maxInstances: MaxInstances, maxReported: maxTracked,
		seen: map[string]map[string]time.Time{}, reported: map[string]time.Time{}}
}

// Window is the detector's window.
func (d *Detector) Window() time.Duration { return d.window }

// Shared notes a call by identity from in and returns the other instances
// of the identity active within the window (none: no finding), and whether
// this identity+instance pair has not been reported within the window yet
// (the caller records a finding only then).
func (d *Detector) Shared(identity string, in model.Instance) (others []string, report bool) {
	return d.Observe(identity, in, false)
}

// Observe is Shared for a caller that refuses the call when the identity
// is shared (refuse: identity_binding: refuse). A refused instance did not
// act, so it is then not noted, and is forgotten if it was, in the same
// step that found the others: noted until the caller forgot it after
// writing the finding, it was for that long an active instance to every
// other call, so the instance that was there first had its own calls
// refused, and was forgotten in turn, leaving the identity to the one
// refused (a stolen key's user calling just as the agent does).
func (d *Detector) Observe(identity string, in model.Instance, refuse bool) (others []string, report bool) {
	now := d.clk.Now()
	key := Key(in)
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.instances(identity)
	for k, t := range m {
		if now.Sub(t) >= d.window {
			delete(m, k)
			continue
		}
		if k != key {
			others = append(others, k)
		}
	}
	if refuse && len(others) > 0 {
		delete(m, key)
	} else {
		if _, ok := m[key]; !ok && len(m) >= d.maxInstances {
			others = dropOldest(m, others)
		}
		m[key] = now
	}
	sort.Strings(others)
	if len(others) > 0 {
		report = d.first(SharedKey(identity, ReportKey(in)), now, true)
	}
	d.prune(now)
	return others, report
}

// Active returns the instances of identity seen within the window.
func (d *Detector) Active(identity string) []string {
	now := d.clk.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for k, t := range d.seen[identity] {
		if now.Sub(t) < d.window {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Moved reports whether a grant's credentials used from in, when the grant
// was requested from requester, is a new credential-moved finding: the
// instances differ, and this grant+instance pair was never reported. moved
// says whether they differ at all (for refusing).
//
// The address is compared, and at the same address the TLS client
// certificate where both the requester and the gateway's client presented
// one: the gateway sees no token (its instance claims), and the tools that
// use a grant's credentials (an AWS SDK, psql) present no certificate
// unless told to, so a certificate missing on either side tells nothing.
func (d *Detector) Moved(grant string, requester, in model.Instance) (moved, report bool) {
	if requester.IP == "" || !MovedFrom(requester, in) {
		return false, false
	}
	now := d.clk.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	report = d.first(MovedKey(grant, MovedReport(in)), now, false)
	d.prune(now)
	return true, report
}

// MovedFrom says whether in is another instance than requester, as Moved
// compares them (a gateway session's activity is the requester's only if
// not: internal/grants).
func MovedFrom(requester, in model.Instance) bool {
	if requester.IP != in.IP {
		return true
	}
	return requester.TLSClient != "" && in.TLSClient != "" && requester.TLSClient != in.TLSClient
}

// MovedInstance is the instance a credential-moved finding names: the
// address, and the TLS client certificate's shortened fingerprint (as Key
// writes it) where there is one.
func MovedInstance(in model.Instance) string {
	if in.TLSClient == "" {
		return in.IP
	}
	return in.IP + " tls:" + shortHash(in.TLSClient)
}

// MovedReportOf is what a credential-moved finding whose instance is desc
// (Describe of a gateway client: address, certificate, user agent in
// parentheses) is recorded once per grant for: its address, and "tls:*"
// for any certificate (as ReportKey, certificates cost nothing to make).
// Moved and MovedKey take it from an Instance; a grant's record compares
// its findings by it (the replicas' dedupe).
func MovedReportOf(desc string) string {
	ip, rest, _ := strings.Cut(desc, " ")
	if t, _, _ := strings.Cut(rest, " "); strings.HasPrefix(t, "tls:") {
		return ip + " tls:*"
	}
	return ip
}

// MovedReport is MovedReportOf of in's description.
func MovedReport(in model.Instance) string {
	if in.TLSClient == "" {
		return in.IP
	}
	return in.IP + " tls:*"
}

// first marks key reported and says whether it was not already (within the
// window if windowed, else ever, up to pruning).
func (d *Detector) first(key string, now time.Time, windowed bool) bool {
	if t, ok := d.reported[key]; ok && (!windowed || now.Sub(t) < d.window) {
		return false
	}
	d.reported[key] = now
	return true
}

// prune drops state older than the window once the maps grow large.
// credential-moved dedupe entries are kept for a day: a grant lives at
// most the configured cap, 12 hours by default. If the findings reported
// are still too many, the oldest go until a quarter of the room is free,
// so that a flood of fresh ones does not have every call walk them all.
func (d *Detector) prune(now time.Time) {
	if len(d.reported)+len(d.seen) < d.maxReported {
		return
	}
	defer d.shrinkReported()
	for k, t := range d.reported {
		keep := d.window
		if strings.HasPrefix(k, movedPrefix) {
			keep = 24 * time.Hour
		}
		if now.Sub(t) >= keep {
			delete(d.reported, k)
		}
	}
	for id, m := range d.seen {
		for k, t := range m {
			if now.Sub(t) >= d.window {
				delete(m, k)
			}
		}
		if len(m) == 0 {
			delete(d.seen, id)
		}
	}
}

// Note records that identity was active from the instance whose Key is
// key, as another replica of a shared store saw it (the call itself was
// reported there): the next call from another instance through this
// replica then sees it as Shared does. Nothing is reported.
func (d *Detector) Note(identity, key string) {
	now := d.clk.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.instances(identity)
	if _, ok := m[key]; !ok && len(m) >= d.maxInstances {
		dropOldest(m, nil)
	}
	m[key] = now
	d.prune(now)
}

// NoteAt notes that identity was active from the instance whose key is key
// at the past time at (a record read back at start-up), unless a later
// sighting of it is already noted. A time outside the window is ignored.
func (d *Detector) NoteAt(identity, key string, at time.Time) {
	now := d.clk.Now()
	if now.Sub(at) >= d.window {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.instances(identity)
	t, ok := m[key]
	if !ok && len(m) >= d.maxInstances {
		dropOldest(m, nil)
	}
	if !ok || at.After(t) {
		m[key] = at
	}
	d.prune(now)
}

// dropOldest removes from m the instance seen longest ago, to make room
// for a new one, and from others if it is there. It runs under
// d.mu.
func dropOldest(m map[string]time.Time, others []string) []string {
	var oldest string
	var at time.Time
	for k, t := range m {
		if oldest == "" || t.Before(at) || (t.Equal(at) && k < oldest) {
			oldest, at = k, t
		}
	}
	delete(m, oldest)
	for i, k := range others {
		if k == oldest {
			return append(others[:i], others[i+1:]...)
		}
	}
	return others
}

// instances is identity's map of instance keys to when they were last
// seen, made if absent. It runs under d.mu.
func (d *Detector) instances(identity string) map[string]time.Time {
	m := d.seen[identity]
	if m == nil {
		m = map[string]time.Time{}
		d.seen[identity] = m
	}
	return m
}

// SharedKey is the key under which Shared remembers that it reported
// identity from key, for MarkReported.
func SharedKey(identity, key string) string { return "shared " + identity + " " + key }

const movedPrefix = "moved "

// MovedKey is the key under which Moved remembers that it reported
// grant's credentials used from the instance whose MovedReport is
// instance, for Unreport.
func MovedKey(grant, instance string) string { return movedPrefix + grant + " " + instance }

// Unreport forgets that the finding of dedupe key k (SharedKey, MovedKey)
// was reported, for a caller that could not record it: Shared and Moved
// count a finding as reported when they tell the caller to record it, so
// without this the next call raising it, a retry a moment later, would
// go through with no finding at all.
func (d *Detector) Unreport(k string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.reported, k)
}

// MarkReported records that another replica reported the finding of
// dedupe key k (SharedKey), so that this one does not report it again
// within the window.
func (d *Detector) MarkReported(k string) {
	now := d.clk.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.first(k, now, true)
	d.prune(now)
}

// shrinkReported drops the oldest reported findings until len(d.reported)
// is at most three quarters of d.maxReported. It runs under d.mu.
func (d *Detector) shrinkReported() {
	keep := d.maxReported * 3 / 4
	if len(d.reported) <= keep {
		return
	}
	type entry struct {
		k string
		t time.Time
	}
	all := make([]entry, 0, len(d.reported))
	for k, t := range d.reported {
		all = append(all, entry{k, t})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t.Before(all[j].t) })
	for _, e := range all[:len(all)-keep] {
		delete(d.reported, e.k)
	}
}
