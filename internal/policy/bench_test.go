package policy

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// benchPolicy is the benchmark agent's own policy, in DESIGN.md's style:
// the walkthrough's reads plus writes to its scratch prefix. Its prefixes
// are ones the generated policies never mention, so the decision does not
// depend on which random forbids the generator produced.
const benchPolicy = `
@id("triage-bot-logs")
@approval("auto")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"tgt-00")
when { context.resource like "arn:aws:s3:::triage/app-logs/*" && context.duration_seconds <= 900 };

@id("triage-bot-scratch")
@approval("auto")
permit (principal == Agent::"log-triage-bot", action in [Action::"s3:PutObject", Action::"s3:GetObject"], resource == Target::"tgt-00")
when { context.resource like "arn:aws:s3:::triage/bot-tmp/log-triage-bot/*" && context.duration_seconds <= 3600 };
`

// benchSet loads 200 policies over 20 targets (198 generated, plus the two
// of benchPolicy) and returns a 4-pair request those policies grant
// automatically: the agent is also in team-3 and team-5, so the generated
// policies for those teams are evaluated too, as are the guardrails and
// the per-target policies of tgt-00.
func benchSet(b testing.TB, broken bool) (*Set, Request) {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	targets := genTargets(20)
	files := genPolicies(r, 198, targets, broken)
	files["zz-bench.cedar"] = benchPolicy
	s := loadGen(b, files, targets)
	if s.Len() != 200 {
		b.Fatalf("%d policies", s.Len())
	}
	req := Request{
		Principal: Principal{Kind: "agent", Name: "log-triage-bot", Owner: "sre-team", Groups: []string{"team-3", "team-5"}},
		Target:    targets[0],
		Pairs: []scope.Pair{
			{Action: "s3:GetObject", Resource: "arn:aws:s3:::triage/app-logs/*"},
			{Action: "s3:ListBucket", Resource: "arn:aws:s3:::triage/app-logs/*"},
			{Action: "s3:PutObject", Resource: "arn:aws:s3:::triage/bot-tmp/log-triage-bot/*"},
			{Action: "s3:GetObject", Resource: "arn:aws:s3:::triage/bot-tmp/log-triage-bot/*"},
		},
		Duration: 10 * time.Minute,
		Reason:   "INC-42 triage",
	}
	if d := s.Decide(req); !broken && d.Outcome != OutcomeAuto {
		b.Fatalf("benchmark request not auto-approved: %+v", d)
	}
	return s, req
}

// deniedRequest is req with one more pair that nothing permits.
func deniedRequest(req Request) Request {
	req.Pairs = append(slices.Clip(req.Pairs[:3]), scope.Pair{Action: "s3:DeleteObject", Resource: "arn:aws:s3:::triage/*"})
	return req
}

// measure runs Decide b.N times and returns the per-call durations, sorted.
// It also reports the CPU time the benchmark's thread spent per call, which
// other processes on the machine do not inflate the way they inflate
// wall-clock latency.
func measure(b *testing.B, s *Set, req Request) []time.Duration {
	lat := make([]time.Duration, 0, b.N)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := testenv.ThreadCPU()
	n := 0
	defer func() {
		if n > 0 && cpu0 >= 0 {
			b.ReportMetric(float64((testenv.ThreadCPU()-cpu0).Nanoseconds())/float64(n)/1e3, "cpu-µs/op")
		}
	}()
	for b.Loop() {
		n++
		t0 := time.Now()
		d := s.Decide(req)
		lat = append(lat, time.Since(t0))
		if d.Outcome == "" {
			b.Fatal("no outcome")
		}
	}
	slices.Sort(lat)
	return lat
}

func quantile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(q*float64(len(lat))))]
}

func report(b *testing.B, lat []time.Duration, prefix string) {
	b.ReportMetric(float64(quantile(lat, 0.50).Nanoseconds())/1e3, prefix+"p50-µs")
	b.ReportMetric(float64(quantile(lat, 0.99).Nanoseconds())/1e3, prefix+"p99-µs")
}

// BenchmarkDecide: a 4-pair request against 200 policies, with p50 and p99
// latency. The requirement is p99 < 100µs.
func BenchmarkDecide(b *testing.B) {
	s, req := benchSet(b, false)
	b.ReportAllocs()
	lat := measure(b, s, req)
	report(b, lat, "")
}

// BenchmarkDecideDenied: the same with the last pair denied, so the
// explanation is built.
func BenchmarkDecideDenied(b *testing.B) {
	s, req := benchSet(b, false)
	req = deniedRequest(req)
	if d := s.Decide(req); d.Outcome != OutcomeDeny {
		b.Fatalf("%+v", d)
	}
	b.ReportAllocs()
	lat := measure(b, s, req)
	report(b, lat, "")
}

// BenchmarkDecideWithBrokenPolicies: the same, but the set also holds
// policies that raise an evaluation error for this principal on every
// pair; cedar-go builds an error value (fmt.Errorf) for each, which is
// the dominant cost then.
func BenchmarkDecideWithBrokenPolicies(b *testing.B) {
	s, req := benchSet(b, true)
	b.ReportAllocs()
	lat := measure(b, s, req)
	report(b, lat, "")
	if d := s.Decide(req); len(d.Pairs[0].Errors) == 0 {
		b.Fatal("no evaluation errors")
	}
}

// BenchmarkDecideSlicedVsUnsliced runs the same request with and without
// policy slicing in one run and reports the ratio.
func BenchmarkDecideSlicedVsUnsliced(b *testing.B) {
	s, req := benchSet(b, false)
	unsliced := *s
	unsliced.unsliced = true
	if got, want := s.Decide(req), unsliced.Decide(req); got.Outcome != want.Outcome || !slices.Equal(got.PolicyIDs, want.PolicyIDs) {
		b.Fatalf("decisions differ: %+v / %+v", got, want)
	}
	var sl, un []time.Duration
	for b.Loop() {
		t0 := time.Now()
		s.Decide(req)
		t1 := time.Now()
		unsliced.Decide(req)
		t2 := time.Now()
		sl = append(sl, t1.Sub(t0))
		un = append(un, t2.Sub(t1))
	}
	slices.Sort(sl)
	slices.Sort(un)
	report(b, sl, "sliced-")
	report(b, un, "unsliced-")
	ratio := float64(quantile(un, 0.5)) / float64(max(quantile(sl, 0.5), 1))
	b.ReportMetric(ratio, "speedup-p50-x")
	b.Logf("n=%d sliced p50 %v p99 %v; unsliced p50 %v p99 %v; unsliced/sliced (p50) = %.1fx",
		len(sl), quantile(sl, .5), quantile(sl, .99), quantile(un, .5), quantile(un, .99), ratio)
}

// BenchmarkMayApprove: the approver check for the same 4 pairs.
func BenchmarkMayApprove(b *testing.B) {
	s, req := benchSet(b, false)
	approver := Principal{Kind: "human", Name: "person-1", Groups: []string{"leads-0", "leads-1", "leads-2"}}
	b.ReportAllocs()
	for b.Loop() {
		s.MayApprove(approver, req.Principal.Name, req.Target, req.Pairs, req.Duration, req.Reason)
	}
}

// BenchmarkLoad: loading and indexing 200 policies in 20 files.
func BenchmarkLoad(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	targets := genTargets(20)
	dir := writeDir(b, genPolicies(r, 200, targets, false))
	known := func(string) bool { return true }
	for b.Loop() {
		if _, err := Load(dir, known); err != nil {
			b.Fatal(err)
		}
	}
}

var sink uint64

// spin does a fixed amount of pure CPU work (no allocation).
func spin(n int) {
	x := sink
	for i := range n {
		x = x*6364136223846793005 + uint64(i)
	}
	sink = x
}

// BenchmarkNoiseFloor measures the machine rather than the package: a
// fixed, allocation-free spin of about a median Decide's length, timed the
// same way. On a shared machine its p99 shows how much of BenchmarkDecide's
// p99 is other processes taking the CPU, not policy evaluation.
func BenchmarkNoiseFloor(b *testing.B) {
	s, req := benchSet(b, false)
	median := func(f func()) time.Duration {
		lat := make([]time.Duration, 101)
		for i := range lat {
			t0 := time.Now()
			f()
			lat[i] = time.Since(t0)
		}
		slices.Sort(lat)
		return lat[50]
	}
	target := median(func() { s.Decide(req) })
	n := 1000
	for range 5 {
		n = max(1, int(float64(n)*float64(target)/float64(median(func() { spin(n) }))))
	}
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		spin(n)
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	report(b, lat, "")
}
