package main

import (
	"math"
	"testing"
)

// The slope is what one more connection adds whatever the process held
// before the first batch, and the residual says whether the readings lie
// on a line: a one-off fill during one batch shows in the residual and in
// that batch's step, not as a cost of every connection.
func TestFitSlope(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for _, tc := range []struct {
		name      string
		x, y      []float64
		slope, rm float64
	}{
		{"a line", []float64{200, 400, 600}, []float64{50000, 50400, 50800}, 2, 0},
		{"two points", []float64{200, 400}, []float64{50000, 50500}, 2.5, 0},
		// Steps of 3 and 1: the first batch's dearer step shows in the
		// residual (the line 1000⅓ + 2x misses by −⅓, ⅔, −⅓), the slope
		// stays the mean cost.
		{"a bump", []float64{0, 1, 2}, []float64{1000, 1003, 1004}, 2, math.Sqrt(2.0 / 9)},
	} {
		s, r := fitSlope(tc.x, tc.y)
		if !near(s, tc.slope) || !near(r, tc.rm) {
			t.Errorf("%s: slope %v residual %v, want %v and %v", tc.name, s, r, tc.slope, tc.rm)
		}
	}
	for _, x := range [][]float64{{1}, {3, 3}} {
		if s, r := fitSlope(x, make([]float64, len(x))); !math.IsNaN(s) || !math.IsNaN(r) {
			t.Errorf("x %v: slope %v residual %v, want NaN for no slope", x, s, r)
		}
	}
}

// A batch's reading waits for RssAnon to stop moving: the release of the
// logins' garbage drops it by megabytes at once, so a series whose last
// 15 s hold such a drop is not a plateau yet, and runtime-sized wobbles
// are.
func TestPlateaued(t *testing.T) {
	for _, tc := range []struct {
		name   string
		series []int64
		want   bool
	}{
		{"too short", []int64{100000, 100000, 100000}, false},
		{"flat", []int64{90000, 100000, 100000, 100000, 100000}, true},
		{"runtime steps", []int64{100000, 100256, 100000, 100128}, true},
		{"a release in the last readings", []int64{104000, 104000, 104000, 101000}, false},
		{"a release just before", []int64{104000, 101000, 101000, 101000, 101100}, true},
		{"just over", []int64{100000, 100000, 100257, 100000}, false},
	} {
		if got := plateaued(tc.series); got != tc.want {
			t.Errorf("%s: plateaued(%v) = %v, want %v", tc.name, tc.series, got, tc.want)
		}
	}
}
