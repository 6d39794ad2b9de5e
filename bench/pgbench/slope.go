package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// The marginal memory of an idle connection, as a slope (-idle-slope).
//
// The second batch's figure (-idle-more) divides one RssAnon difference by
// the batch, so whatever else grew between its two readings falls on the
// connections: chiefly the store's SQLite page cache taking the pages the
// logins' log entries add (a `session.started` entry and a session row a
// login, about 20 KiB resident per 16 KiB page, until the writer's 16 MiB
// cache is full), and the Go runtime's metadata growing by 256 KiB chunks.
// Runs of one build gave 1.6–5.3 KiB per connection (bench/HISTORY.md,
// "What separates an idle session's live heap from its RssAnon").
//
// The slope method takes those out of the figure instead of dividing them
// among the connections:
//
//   - a warm-up of `pgbench -S` (statements on the load's few
//     connections, not logins) grows the gateway's log past its store's
//     caches, so that the batches' log entries replace cached pages
//     instead of adding them (the store's size is reported);
//   - a base batch opened and held past the most connections any earlier
//     phase held: the memory those freed (PgBouncer's slab of client
//     objects, the gateway's runtime pools) is taken up by it, so that
//     the batches after it need memory of their own, as connections
//     beyond any earlier peak do. A warm-up of logins instead (`pgbench
//     -C`, tried first) left PgBouncer memory that 800 connections
//     reused without growing (a slope of 0.02 KiB): the reuse of a
//     burst's memory, not what a connection holds;
//   - then k batches of n idle connections, every one kept open, RssAnon
//     read after each past the gateway's release of free heap pages
//     (idleMoreLater), so that no reading has the logins' garbage in it;
//   - the least-squares slope of RssAnon over the connections held is one
//     more idle connection's memory; the fit's residual and each batch's
//     own step show how far the points are from a line (the runtime maps
//     its metadata 256 KiB at a time, 1.3 KiB a connection of a batch of
//     200, so single steps differ by that much).

// slopePoint is one reading of the slope phase.
type slopePoint struct {
	Connections int    `json:"connections"`
	RSSKB       int64  `json:"rss_kb"`
	AnonKB      int64  `json:"rss_anon_kb"`
	Load        string `json:"loadavg"`
	// Go is the gateway's Go runtime gauges at the reading.
	Go map[string]float64 `json:"go,omitempty"`
	// Series is RssAnon in kB every slopeSample while the batch was held,
	// from its last connection's opening.
	Series []int64 `json:"rss_anon_series_kb,omitempty"`
	// StoreBytes is the size of the gateway's SQLite database and its WAL.
	StoreBytes int64 `json:"store_bytes,omitempty"`
	// HeldSeconds is how long the batch was held before the reading, and
	// Plateau whether RssAnon had stopped moving by then (plateaued).
	HeldSeconds float64 `json:"held_seconds"`
	Plateau     bool    `json:"plateau"`
}

// slopeExtra is how much longer than the spec's wait a batch is held while
// RssAnon still moves.
const slopeExtra = 60 * time.Second

// plateauSpan readings (the last 15 s at slopeSample) within plateauKB of
// each other make a plateau: the release of free heap pages gives back
// megabytes at once, while a batch of 200 connections settles within the
// runtime's 256 KiB steps.
const (
	plateauSpan = 4
	plateauKB   = 256
)

// plateaued reports whether the series' last plateauSpan readings lie
// within plateauKB of each other.
func plateaued(series []int64) bool {
	if len(series) < plateauSpan {
		return false
	}
	tail := series[len(series)-plateauSpan:]
	return slices.Max(tail)-slices.Min(tail) <= plateauKB
}

// slopeSample is how often RssAnon is read while a batch is held.
const slopeSample = 5 * time.Second

// slopeResult is one process's slope phase.
type slopeResult struct {
	Path string `json:"path"`
	// Base is the first batch's size, Batch the size of each after it.
	Base        int `json:"base"`
	Batch       int `json:"batch"`
	WarmSeconds int `json:"warm_seconds"`
	// WarmTransactions is the warm-up's pgbench transactions.
	WarmTransactions int64 `json:"warm_transactions"`
	// WaitSeconds is how long each batch was held before its reading.
	WaitSeconds float64      `json:"wait_seconds"`
	Points      []slopePoint `json:"points"`
	// AnonSlopeKB is the least-squares slope of RssAnon over the
	// connections held, KiB per connection; AnonResidKB the fit's
	// root-mean-square residual in KiB (of the whole process).
	AnonSlopeKB float64 `json:"anon_kb_per_connection_slope"`
	AnonResidKB float64 `json:"anon_fit_rms_residual_kb"`
	// AnonStepsKB is each batch's own growth of RssAnon over its
	// connections, KiB per connection.
	AnonStepsKB []float64 `json:"anon_kb_per_connection_steps"`
	RSSSlopeKB  float64   `json:"rss_kb_per_connection_slope"`
	// GoSlope is, for the gateway, each Go runtime gauge's slope in bytes
	// per connection.
	GoSlope map[string]float64 `json:"go_bytes_per_connection_slope,omitempty"`
}

// fitSlope is the least-squares line through (x, y): its slope, and the
// root-mean-square of the points' distance from it. Fewer than two
// distinct x give NaN.
func fitSlope(x, y []float64) (slope, rms float64) {
	n := float64(len(x))
	if len(x) != len(y) || len(x) < 2 {
		return math.NaN(), math.NaN()
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx, my = mx/n, my/n
	var sxx, sxy float64
	for i := range x {
		sxx += (x[i] - mx) * (x[i] - mx)
		sxy += (x[i] - mx) * (y[i] - my)
	}
	if sxx == 0 {
		return math.NaN(), math.NaN()
	}
	slope = sxy / sxx
	var ss float64
	for i := range x {
		d := y[i] - (my + slope*(x[i]-mx))
		ss += d * d
	}
	return slope, math.Sqrt(ss / n)
}

// slopeSpec is what idleSlope measures on one process in the middle.
type slopeSpec struct {
	path string
	pid  int
	e    pgEnv
	// warm is the warm-up's load.
	warm load
	// base connections first, then batch connections batches times, each
	// held wait before its reading.
	base, batch, batches int
	wait                 time.Duration
	gm                   goMemory
	// store, if set, is the gateway's SQLite database file.
	store string
}

// idleSlope runs the slope phase on one process: the warm-up, then a
// batch of s.base idle connections and s.batches batches of s.batch,
// RssAnon read s.wait after each; all are closed at the end. warm is the warm-up's pgbench
// run (its transactions go through the path and, for the gateway, are
// calls the review counts).
func idleSlope(ctx context.Context, s slopeSpec) (slopeResult, phase, error) {
	res := slopeResult{Path: s.path, Base: s.base, Batch: s.batch, WarmSeconds: s.warm.seconds, WaitSeconds: s.wait.Seconds()}
	warm, err := runPgbench(ctx, s.e, "simple", s.warm, s.pid)
	if err != nil {
		return res, warm, fmt.Errorf("%s: warm-up: %v", s.path, err)
	}
	res.WarmTransactions = warm.Transactions
	conns := make([]*pgx.Conn, 0, s.base+s.batch*s.batches)
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	for b := range s.batches + 1 {
		n := s.batch
		if b == 0 {
			n = s.base
		}
		for i := range n {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err := pgxConnect(cctx, s.e.dsn())
			cancel()
			if err != nil {
				return res, warm, fmt.Errorf("%s: slope batch %d, connection %d: %v", s.path, b+1, i+1, err)
			}
			conns = append(conns, c)
		}
		// RssAnon every slopeSample while the batch is held: whether the
		// reading is taken on a plateau (after the gateway's release of
		// the logins' garbage) or on a slope.
		// Held s.wait at least, then for as long as the last readings
		// still move (plateaued), up to slopeExtra more: a release that
		// comes late, just before s.wait ends, would otherwise put the
		// reading on its way down.
		var series []int64
		held := time.Now()
		for end, last := held.Add(s.wait), held.Add(s.wait+slopeExtra); ; {
			if _, a, err := rss(s.pid); err == nil {
				series = append(series, a)
			}
			now := time.Now()
			if !now.Before(end) && (plateaued(series) || !now.Before(last)) {
				break
			}
			wait := slopeSample
			if now.Before(end) {
				wait = min(wait, end.Sub(now))
			}
			select {
			case <-ctx.Done():
				return res, warm, ctx.Err()
			case <-time.After(wait):
			}
		}
		p := slopePoint{Connections: len(conns), Load: loadavg(), Series: series, HeldSeconds: time.Since(held).Seconds(), Plateau: plateaued(series)}
		if p.RSSKB, p.AnonKB, err = rss(s.pid); err != nil {
			return res, warm, err
		}
		if s.gm != nil {
			// After rss: reading the gauges stops the world briefly.
			if p.Go, err = s.gm(); err != nil {
				return res, warm, err
			}
		}
		if s.store != "" {
			for _, f := range []string{s.store, s.store + "-wal"} {
				if st, err := os.Stat(f); err == nil {
					p.StoreBytes += st.Size()
				}
			}
		}
		res.Points = append(res.Points, p)
	}
	x := make([]float64, len(res.Points))
	anon, vm := make([]float64, len(x)), make([]float64, len(x))
	for i, p := range res.Points {
		x[i], anon[i], vm[i] = float64(p.Connections), float64(p.AnonKB), float64(p.RSSKB)
		if i > 0 {
			res.AnonStepsKB = append(res.AnonStepsKB, float64(p.AnonKB-res.Points[i-1].AnonKB)/float64(p.Connections-res.Points[i-1].Connections))
		}
	}
	res.AnonSlopeKB, res.AnonResidKB = fitSlope(x, anon)
	res.RSSSlopeKB, _ = fitSlope(x, vm)
	if s.gm != nil {
		res.GoSlope = map[string]float64{}
		for k := range res.Points[0].Go {
			g := make([]float64, len(x))
			for i, p := range res.Points {
				g[i] = p.Go[k]
			}
			res.GoSlope[k], _ = fitSlope(x, g)
		}
	}
	return res, warm, nil
}

// slopeLine is one process's slope phase on one line.
func slopeLine(r slopeResult) string {
	s := fmt.Sprintf("warm-up %d transactions in %d s; a base of %d, batches of %d, each held %.0f s: RssAnon", r.WarmTransactions, r.WarmSeconds, r.Base, r.Batch, r.WaitSeconds)
	for _, p := range r.Points {
		s += fmt.Sprintf(" %d→%.2f MB", p.Connections, mb(p.AnonKB))
	}
	s += "; steps"
	for _, k := range r.AnonStepsKB {
		s += fmt.Sprintf(" %.2f", k)
	}
	s += fmt.Sprintf(" KiB each; slope %.2f KiB per connection (fit residual %.0f kB; VmRSS slope %.2f)", r.AnonSlopeKB, r.AnonResidKB, r.RSSSlopeKB)
	if n := len(r.Points); n > 0 && r.Points[n-1].StoreBytes > 0 {
		s += fmt.Sprintf("; store %.1f → %.1f MB", float64(r.Points[0].StoreBytes)/1e6, float64(r.Points[n-1].StoreBytes)/1e6)
	}
	if r.GoSlope != nil {
		s += "; Go runtime per connection: " + goMemoryLine(r.GoSlope, r.AnonSlopeKB)
	}
	loads := ""
	held := ""
	for _, p := range r.Points {
		loads += " [" + p.Load + "]"
		held += fmt.Sprintf(" %.0f", p.HeldSeconds)
		if !p.Plateau {
			held += " (still moving)"
		}
	}
	return s + "; held, s:" + held + "; load" + loads
}

// printSlope prints the slope phase's figures and the gateway's ratio to
// PgBouncer's.
func printSlope(w io.Writer, rs []slopeResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\none more idle connection, by slope (after a warm-up of `pgbench -S`, a base batch past the earlier phases' peak, then batches, each held %s or until RssAnon stops moving, every one kept open; RssAnon's least-squares slope over the connections held):\n", idleMoreLater)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\twarm-up transactions\tpoints (connections: RssAnon)\tsteps, KiB each\tslope, KiB per connection\tfit residual\t")
	by := map[string]float64{}
	for _, r := range rs {
		pts, steps := "", ""
		for i, p := range r.Points {
			if i > 0 {
				pts += ", "
			}
			pts += fmt.Sprintf("%d: %.2f MB", p.Connections, mb(p.AnonKB))
		}
		for i, k := range r.AnonStepsKB {
			if i > 0 {
				steps += ", "
			}
			steps += fmt.Sprintf("%.2f", k)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.2f KiB\t%.0f kB\t\n", r.Path, r.WarmTransactions, pts, steps, r.AnonSlopeKB, r.AnonResidKB)
		by[r.Path] = r.AnonSlopeKB
	}
	tw.Flush()
	for _, r := range rs {
		if r.GoSlope != nil {
			fmt.Fprintf(w, "%s, the Go runtime's gauges' slopes, per connection: %s\n", r.Path, goMemoryLine(r.GoSlope, r.AnonSlopeKB))
		}
		if n := len(r.Points); n > 0 && r.Points[n-1].StoreBytes > 0 {
			fmt.Fprintf(w, "%s, its store (SQLite database and WAL) over the batches: %.1f → %.1f MB\n", r.Path, float64(r.Points[0].StoreBytes)/1e6, float64(r.Points[n-1].StoreBytes)/1e6)
		}
	}
	if g, b := by["gateway"], by["pgbouncer"]; b > 0 {
		fmt.Fprintf(w, "gateway / PgBouncer, by slope: %.2f× (issue 15 item 3: within 4×, %s)\n", g/b, verdict(g <= 4*b))
	}
}
