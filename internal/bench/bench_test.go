package bench

import (
	"os"
	"path/filepath"
	"slices"
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
