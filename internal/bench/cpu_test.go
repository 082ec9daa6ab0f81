package bench

import (
	"context"
	"math"
	"runtime"
	"testing"
	"time"
)

func TestCeiling(t *testing.T) {
	for _, tc := range []struct {
		res  Result
		want float64
	}{
		{Result{Workload: "W1", CPUPerOp: 250 * time.Microsecond, Cores: 2}, 8000},
		{Result{Workload: "W3", CPUPerOp: 2 * time.Millisecond, CPUPerEvent: 20 * time.Microsecond, Cores: 2}, 100000},
		{Result{Workload: "W4", CPUPerOp: time.Millisecond, Cores: 2}, 0}, // a latency has no ceiling
		{Result{Workload: "W1", Cores: 2}, 0},                             // not measured
	} {
		if got := tc.res.Ceiling(); math.Abs(got-tc.want) > 1e-9*tc.want {
			t.Errorf("%s %v per op, %v per event, %d cores: ceiling %v, want %v",
				tc.res.Workload, tc.res.CPUPerOp, tc.res.CPUPerEvent, tc.res.Cores, got, tc.want)
		}
	}
}

func TestSetCPU(t *testing.T) {
	res := Result{Workload: "W3", Ops: 100, Events: 10000}
	res.setCPU(cpuWindow{machine: 3 * time.Second, self: time.Second, elapsed: 2 * time.Second, cores: 2})
	if res.CPUPerOp != 30*time.Millisecond || res.CPUPerEvent != 300*time.Microsecond ||
		res.SelfCPUPerOp != 10*time.Millisecond || res.BusyCores != 1.5 || res.Cores != 2 {
		t.Errorf("setCPU: %+v", res)
	}
	none := Result{Workload: "W1"}
	none.setCPU(cpuWindow{machine: time.Second, elapsed: time.Second, cores: 2})
	if none.CPUPerOp != 0 || none.Cores != 0 {
		t.Errorf("setCPU with no operations: %+v", none)
	}
}

func TestCPUWindow(t *testing.T) {
	at := time.Unix(1000, 0)
	a := cpuSample{idle: 10 * time.Second, self: time.Second, cores: 2, at: at, ok: true}
	b := cpuSample{idle: 11500 * time.Millisecond, self: 2 * time.Second, cores: 2, at: at.Add(2 * time.Second), ok: true}
	w, ok := a.until(b)
	// 2 cores for 2 s, 1.5 s of it idle.
	if !ok || w.machine != 2500*time.Millisecond || w.self != time.Second || w.elapsed != 2*time.Second || w.cores != 2 {
		t.Errorf("until = %+v, %v", w, ok)
	}
	for _, bad := range []cpuSample{{}, {idle: 9 * time.Second, self: 2 * time.Second, cores: 2, at: b.at, ok: true}, {idle: b.idle, self: b.self, cores: 2, at: at, ok: true}} {
		if w, ok := a.until(bad); ok {
			t.Errorf("until(%+v) = %+v, ok", bad, w)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	stat := "cpu  100 20 30 5000 70 8 9 10 0 0\n" +
		"cpu0 50 10 15 2500 35 4 4 5 0 0\n" +
		"cpu1 50 10 15 2500 35 4 5 5 0 0\n" +
		"intr 12345\nctxt 999\n"
	idle, cores, ok := parseProcStat([]byte(stat))
	// idle + iowait = 5070 ticks of 10 ms.
	if !ok || idle != 50700*time.Millisecond || cores != 2 {
		t.Errorf("parseProcStat = %v, %d, %v; want 50.7s, 2, true", idle, cores, ok)
	}
	for _, bad := range []string{"", "cpu 1 2 3 4\ncpu0 1 2 3 4\n", "cpu 1 2 3 x 5 6 7 8\ncpu0 1\n", "cpu 1 2 3 4 5 6 7 8\n"} {
		if _, _, ok := parseProcStat([]byte(bad)); ok {
			t.Errorf("parseProcStat(%q): ok", bad)
		}
	}
}

// TestMeasureCPU runs an operation that keeps its goroutine on the CPU and
// checks that the row carries what the process and the machine spent.
func TestMeasureCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("CPU figures come from /proc/stat and getrusage on Linux")
	}
	spin := func(ctx context.Context, w *worker) (int, error) {
		for t0 := time.Now(); time.Since(t0) < time.Millisecond; {
		}
		return 1, nil
	}
	res := measure(context.Background(), 1, 50*time.Millisecond, 500*time.Millisecond, spin, nil)
	if res.Ops == 0 || res.SelfCPUPerOp <= 0 || res.CPUPerOp <= 0 || res.BusyCores <= 0 || res.Cores < 1 {
		t.Fatalf("no CPU figures: %+v", res)
	}
	// The machine's count is in 10 ms ticks per CPU; the process's in
	// microseconds: the machine spent at least what the process did, less
	// a tick per CPU at each end.
	slack := 2 * time.Duration(res.Cores) * 10 * time.Millisecond / time.Duration(res.Ops)
	if res.CPUPerOp+slack < res.SelfCPUPerOp {
		t.Errorf("machine CPU %v per op < this process's %v", res.CPUPerOp, res.SelfCPUPerOp)
	}
	if res.Ceiling() <= 0 {
		t.Errorf("no ceiling: %+v", res)
	}
}

func TestCPUNote(t *testing.T) {
	ceil := Spread{Median: 8000}
	w1 := Row{Workload: "W1", Main: "ops/s", CPUPerOp: 250 * time.Microsecond, SelfCPUPerOp: 90 * time.Microsecond,
		BusyCores: 1.5, Cores: 2, Ceiling: &ceil}
	if got, want := cpuNote(w1), "machine CPU 250µs/op (this process 90µs/op), 1.50 of 2 cores busy: ceiling 8,000 ops/s"; got != want {
		t.Errorf("cpuNote(W1) = %q, want %q", got, want)
	}
	ceil3 := Spread{Median: 100000}
	w3 := Row{Workload: "W3", Main: "events/s", CPUPerOp: 2 * time.Millisecond, CPUPerEvent: 20 * time.Microsecond,
		SelfCPUPerOp: 1200 * time.Microsecond, BusyCores: 1.2, Cores: 2, Ceiling: &ceil3}
	if got, want := cpuNote(w3), "machine CPU 20µs/event (this process 1,200µs/op), 1.20 of 2 cores busy: ceiling 100,000 events/s"; got != want {
		t.Errorf("cpuNote(W3) = %q, want %q", got, want)
	}
	if got := cpuNote(Row{Workload: "W1", Main: "ops/s"}); got != "" {
		t.Errorf("cpuNote without CPU figures = %q, want none", got)
	}
}
