package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i))
	}
	if p50, p99 := percentiles(d); p50 != 50 || p99 != 99 {
		t.Errorf("percentiles(1..100) = %d, %d, want 50, 99", p50, p99)
	}
	if p50, p99 := percentiles([]time.Duration{7}); p50 != 7 || p99 != 7 {
		t.Errorf("percentiles(7) = %d, %d, want 7, 7", p50, p99)
	}
	if p50, p99 := percentiles(nil); p50 != 0 || p99 != 0 {
		t.Errorf("percentiles(nil) = %d, %d", p50, p99)
	}
}

func TestSelectWorkloads(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, Workloads},
		{[]string{"all"}, Workloads},
		{[]string{"w5", "W1", "w5"}, []string{"W1", "W5"}},
	} {
		got, err := selectWorkloads(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("selectWorkloads(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := selectWorkloads([]string{"W99"}); err == nil {
		t.Error("selectWorkloads(W99): no error")
	}
}

func TestRatio(t *testing.T) {
	r := &runner{t: &target{kind: "postgres"}}
	r.add(Result{Workload: "W1", Clients: 8, OpsPerSec: 300})
	r.add(Result{Workload: "W1", Clients: 8, OpsPerSec: 100, System: "plain"})
	r.add(Result{Workload: "W4", Clients: 1, P50: 2 * time.Millisecond})
	r.add(Result{Workload: "W4", Clients: 1, P50: 4 * time.Millisecond, System: "plain"})
	for i, want := range []float64{3, 3, 0.5, 0.5} {
		if got := r.results[i].Ratio; got != want {
			t.Errorf("row %d: ratio %v, want %v", i, got, want)
		}
	}
}

func TestPeakRSS(t *testing.T) {
	f := filepath.Join(t.TempDir(), "status")
	os.WriteFile(f, []byte("Name:\tchronicle\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n"), 0o644)
	if got, err := PeakRSS(f); err != nil || got != 12345*1024 {
		t.Errorf("PeakRSS = %d, %v, want %d", got, err, 12345*1024)
	}
	if got, err := PeakRSS("/proc/self/status"); err != nil || got <= 0 {
		t.Errorf("PeakRSS(self) = %d, %v", got, err)
	}
}

// TestRoundsInterleave checks that round k of every row runs before round
// k+1 of any, that the fsync probe runs before, between and after the
// rounds, and that the report has a row per job with every round in it.
func TestRoundsInterleave(t *testing.T) {
	var order []string
	r := &runner{opts: Options{Rounds: 3, FsyncProbe: time.Millisecond}, t: &target{kind: "sqlite", dir: t.TempDir()}, prog: &progress{}}
	r.fsyncDir = r.t.dir
	for _, name := range []string{"a", "b", "c"} {
		r.jobs = append(r.jobs, job{workload: "W1", run: func(ctx context.Context, round int) (Result, error) {
			order = append(order, fmt.Sprint(name, round))
			return Result{Workload: "W1", Case: name, OpsPerSec: float64(round)}, nil
		}})
	}
	if err := r.runRounds(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a1", "b1", "c1", "a2", "b2", "c2", "a3", "b3", "c3"}; !slices.Equal(order, want) {
		t.Errorf("order %q, want %q", order, want)
	}
	rep := r.report()
	if got := len(rep.Disk.Samples); got != 4 {
		t.Errorf("%d fsync samples, want 4 (before, between and after 3 rounds)", got)
	}
	if len(rep.Rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rep.Rows))
	}
	for _, row := range rep.Rows {
		if len(row.Rounds) != 3 || row.Value != (Spread{Median: 2, Min: 1, Max: 3}) {
			t.Errorf("row %s: %d rounds, value %+v, want 3 rounds, 2 (1-3)", row.Case, len(row.Rounds), row.Value)
		}
		for i, res := range row.Rounds {
			if res.Round != i+1 {
				t.Errorf("row %s: round %d numbered %d", row.Case, i+1, res.Round)
			}
		}
	}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Spread
	}{
		{[]float64{5}, Spread{5, 5, 5}},
		{[]float64{3, 1, 2}, Spread{2, 1, 3}},
		{[]float64{4, 1, 3, 2}, Spread{2.5, 1, 4}},
		{[]float64{10, 30, 20, 100, 0}, Spread{20, 0, 100}},
	} {
		in := slices.Clone(tc.in)
		if got := summarize(in); got != tc.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("summarize(%v) changed its argument to %v", tc.in, in)
		}
	}
}

// TestRoundRatios: the ratio is chronicle / plain within each round, and
// the row's ratio is the median of those, not the ratio of the medians.
func TestRoundRatios(t *testing.T) {
	r := &runner{t: &target{kind: "postgres"}}
	for round, pair := range [][2]float64{{100, 100}, {300, 100}, {150, 300}} {
		r.add(Result{Round: round + 1, Workload: "W1", Clients: 8, OpsPerSec: pair[0]})
		r.add(Result{Round: round + 1, Workload: "W1", Clients: 8, OpsPerSec: pair[1], System: "plain"})
	}
	rep := r.report()
	if len(rep.Rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rep.Rows))
	}
	for _, row := range rep.Rows {
		// Per round 1, 3 and 0.5; the medians' ratio would be 150/100.
		if row.Ratio == nil || *row.Ratio != (Spread{Median: 1, Min: 0.5, Max: 3}) {
			t.Errorf("%s: ratio %+v, want 1 (0.5-3)", row.System, row.Ratio)
		}
	}
}

func TestFsyncRate(t *testing.T) {
	rate, err := FsyncRate(t.TempDir(), 20*time.Millisecond)
	if err != nil || rate <= 0 {
		t.Errorf("FsyncRate(temp dir) = %v, %v, want a positive rate", rate, err)
	}
	if _, err := FsyncRate(filepath.Join(t.TempDir(), "missing"), 20*time.Millisecond); err == nil {
		t.Error("FsyncRate(missing dir): no error")
	}
	for _, tc := range []struct {
		rate float64
		want string
	}{{100, "slow"}, {500, "medium"}, {1700, "fast"}, {50000, "very fast"}} {
		if got := Regime(tc.rate); !strings.HasPrefix(got, tc.want) {
			t.Errorf("Regime(%v) = %q, want %q", tc.rate, got, tc.want)
		}
	}
}

// TestRunFsyncDir: a probe directory that does not exist fails the run
// before anything is set up or measured.
func TestRunFsyncDir(t *testing.T) {
	rep, err := Run(context.Background(), Options{Store: "sqlite://" + filepath.Join(t.TempDir(), "b.db"), Workloads: []string{"W3"},
		Duration: time.Millisecond, FsyncProbe: time.Millisecond, FsyncDir: filepath.Join(t.TempDir(), "missing")})
	if err == nil || !strings.Contains(err.Error(), "fsync probe") || rep != nil {
		t.Errorf("Run with a missing --fsync-dir: %v, %+v", err, rep)
	}
}
