package awsgw

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// Target is one configured aws target the gateway forwards to.
type Target struct {
	// Name is the target's name as grants carry it.
	Name string
	// Account is the AWS account id (for messages and review).
	Account string
	// Region is the region requests are re-signed for.
	Region string
	// Endpoint is the upstream base URL; "" means AWS itself
	// (https://s3.<region>.amazonaws.com, virtual-hosted where the bucket
	// name allows). A custom endpoint is always addressed path-style.
	Endpoint string
	// AccessKeyID and SecretAccessKey are the gateway's own static keys.
	// Never logged. Empty with RoleARN set means the ambient AWS
	// credentials (environment, shared config, instance role).
	AccessKeyID, SecretAccessKey string
	// RoleARN, if set, is assumed through STS once per grant, with a
	// session policy generated from the grant's scope.
	RoleARN string
	// STSEndpoint overrides the STS endpoint (tests, VPC endpoints).
	STSEndpoint string
	// Endpoints overrides, per service other than S3 (by signing name),
	// the upstream base URL (svcforward.go).
	Endpoints map[string]string
}

// Options configures a Gateway.
type Options struct {
	Authority gateway.Authority
	// Targets are the aws targets this gateway serves.
	Targets []Target
	// Hosts are the gateway's own host names, for virtual-hosted-style
	// requests ("bucket.<host>").
	Hosts []string
	// Transport carries upstream requests (and STS calls); nil means a
	// default tuned for many concurrent streams to few hosts.
	Transport http.RoundTripper
	// Clock is the gateway's time: what signatures and expiry are checked
	// against, and the timer that ends a session when its grant expires,
	// should the control plane's own end be late. nil means clock.Real.
	Clock clock.Clock
	// Logger receives operational errors; nil means slog.Default().
	Logger *slog.Logger
}

// MaxSkew is how far a request's signing time may be from the gateway's clock.
const MaxSkew = 5 * time.Minute

// Gateway is the AWS gateway's http.Handler.
type Gateway struct {
	auth    gateway.Authority
	targets map[string]*target
	mapper  *s3iam.Mapper
	clock   clock.Clock
	now     func() time.Time
	log     *slog.Logger
	known   *known
	// uploads binds multipart uploads to their keys (uploads.go).
	uploads *uploadTable
	// verifier is shared by all requests so that its cache of derived
	// signing keys serves a grant's calls all day; each call passes its
	// own lookup.
	verifier *sigv4.Verifier
	// hosts are Options.Hosts: the names a call to a service other than
	// S3 may be signed for (service.go).
	hosts []string

	// answerTimers keeps the answer watches' timers between calls
	// (answerwait.go, timers.go), on clock; stallTimers the stall
	// watches' (idle.go), on the real clock: answerTimers itself when
	// clock's timers are the real clock's.
	answerTimers timerPool
	stallTimers  *timerPool

	// base is cancelled by Close, which cuts every session.
	base       context.Context
	cancelBase context.CancelCauseFunc

	mu       sync.Mutex
	sessions map[sessionKey]*session
	closed   bool
	watchers sync.WaitGroup

	// syncResults makes a call wait for its result record (benchmarks
	// compare the two; the default appends it after the response).
	syncResults bool
	// afterCopy, for tests, is called once a call's response has been
	// copied to the client, before the call's bookkeeping.
	afterCopy func(*exchange)
	// afterLastFlush, for tests, is called once the flush that completes
	// a fixed-length answer has returned.
	afterLastFlush func(*exchange)
	// afterServiceFlush, for tests, is the same for a call to a service
	// other than S3: ctx is the call's (cancelled by its session's end),
	// cc its client's cut.
	afterServiceFlush func(c *call, ctx context.Context, cc *clientCut)

	reqPrefix string
	reqSeq    atomic.Uint64
}

// New checks the options and returns a Gateway. It subscribes to the
// Authority's grants at once.
func New(o Options) (*Gateway, error) {
	if o.Authority == nil {
		return nil, errors.New("awsgw: Options.Authority is required")
	}
	if o.Clock == nil {
		o.Clock = clock.Real
	}
	now := o.Clock.Now
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Transport == nil {
		o.Transport = newH1Transport(UpstreamTransport())
	}
	g := &Gateway{
		auth:     o.Authority,
		targets:  map[string]*target{},
		mapper:   &s3iam.Mapper{Hosts: o.Hosts},
		clock:    o.Clock,
		now:      now,
		log:      o.Logger,
		known:    newKnown(now),
		uploads:  newUploadTable(now),
		verifier: &sigv4.Verifier{Now: now, MaxSkew: MaxSkew, HashBody: hashServiceBody}, // any service: service.go
		sessions: map[sessionKey]*session{},
	}
	g.answerTimers.clk = o.Clock
	if clock.RealTimers(o.Clock) {
		// One pool for both watches: a call's answer watch hands its timer
		// to its stall watch (answerWatch.handOff).
		g.stallTimers = &g.answerTimers
	} else {
		g.stallTimers = &timerPool{clk: clock.Real}
	}
	g.hosts = o.Hosts
	for _, t := range o.Targets {
		if _, dup := g.targets[t.Name]; dup {
			return nil, fmt.Errorf("awsgw: target %q configured twice", t.Name)
		}
		tt, err := newTarget(t, o.Transport)
		if err != nil {
			return nil, err
		}
		g.targets[t.Name] = tt
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	g.reqPrefix = strings.ToUpper(hex.EncodeToString(b[:]))
	g.base, g.cancelBase = context.WithCancelCause(context.Background())
	o.Authority.Subscribe(g.known.add)
	return g, nil
}

// errClosing is the cause of cuts made by Close.
var errClosing = s3err.New(s3err.ServiceUnavailable, "the Airlock gateway is shutting down")

// Close ends every open session, cutting transfers still in flight, and
// waits (bounded) for their results to be recorded. Later requests get 503.
// Call it after the HTTP server has stopped accepting requests.
func (g *Gateway) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancelBase(errClosing)
	g.watchers.Wait()
	return nil
}

// requestID is the gateway's random prefix and a sequence number, in 12
// upper-case hex digits (more if it ever outgrows them).
func (g *Gateway) requestID() string {
	return appendRequestID(make([]byte, 0, len(g.reqPrefix)+16), g.reqPrefix, g.reqSeq.Add(1))
}

func appendRequestID(b []byte, prefix string, seq uint64) string {
	const digits = "0123456789ABCDEF"
	b = append(b, prefix...)
	var tmp [16]byte
	i := len(tmp)
	for seq != 0 || i > len(tmp)-12 {
		i--
		tmp[i] = digits[seq&15]
		seq >>= 4
	}
	return string(append(b, tmp[i:]...))
}

// firstValue is h.Get(ck) for a key ck that is canonical already (a
// constant): Get would check and canonicalise it again on every call,
// several times per call on the gateway's path, for the same answer.
func firstValue(h http.Header, ck string) string {
	if vs := h[ck]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// clientOf describes the peer for session and rejection records.
func clientOf(r *http.Request) string {
	c := r.RemoteAddr
	if ua := r.UserAgent(); ua != "" {
		if len(ua) > 200 {
			ua = ua[:200]
		}
		c += " " + ua
	}
	return c
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{gw: g, w: w, r: r, reqID: g.requestID(), start: time.Now()}
	c.serve()
}

// resourceOf is the path S3 errors name.
func resourceOf(r *http.Request) string {
	if u, err := url.PathUnescape(r.URL.EscapedPath()); err == nil {
		return u
	}
	return r.URL.EscapedPath()
}
