package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle/internal/bench"
	"github.com/chronicle-es/chronicle/internal/natstest"
)

// TestBenchSmoke runs every workload at tiny sizes, so that the benchmark
// code cannot rot. It checks what was written and read, never the speed.
func TestBenchSmoke(t *testing.T) {
	nats := natstest.Start(t)
	quick := []string{"bench", "--workload", "all", "--events", "2000", "--scale", "0.01",
		"--clients", "4", "--duration", "200ms", "--warmup", "0", "--json", "--serve", "inprocess", "--nats", nats.URL(),
		"--rounds", "1", "--fsync-probe", "20ms"}
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		named := filepath.Join(dir, "mine.db")
		// NORMAL: the smoke test checks counts, and fsyncs would only slow it.
		rows := runBench(t, append(quick, "--store", "sqlite://"+named+"?synchronous=NORMAL", "--baseline")...)
		checkBench(t, rows, true)
		// The named file is never touched, and the run cleans up after itself.
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("bench left %v next to the named store", left)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		rows := runBench(t, append(quick, "--store", pgStoreURL(t), "--baseline")...)
		checkBench(t, rows, true)
	})
}

// runBench runs bench --json and returns every round of every row.
func runBench(t *testing.T, args ...string) []bench.Result {
	t.Helper()
	out, stderr, code := newCLI(t, nil).run(args...)
	if code != 0 {
		t.Fatalf("chronicle %v: exit %d\n%s", args, code, stderr)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	if rep.Disk == nil || rep.Disk.FsyncPerSec.Median <= 0 || rep.Disk.Regime == "" {
		t.Errorf("bench --json: no fsync rate: %+v", rep.Disk)
	}
	var rows []bench.Result
	for _, row := range rep.Rows {
		if len(row.Rounds) != rep.Rounds {
			t.Errorf("%s %s %s: %d rounds, want %d", row.Workload, row.Case, row.System, len(row.Rounds), rep.Rounds)
		}
		rows = append(rows, row.Rounds...)
	}
	return rows
}

func checkBench(t *testing.T, rows []bench.Result, baseline bool) {
	t.Helper()
	seen := map[string]bool{}
	measured := map[string]bool{}
	for _, r := range rows {
		seen[r.Workload+"/"+r.System] = true
		if r.Errors != 0 {
			t.Errorf("%s %s %s: %d errors, first: %s", r.Workload, r.Case, r.System, r.Errors, r.FirstError)
		}
		if r.Total == 0 {
			t.Errorf("%s %s %s: no operation succeeded", r.Workload, r.Case, r.System)
		}
		switch r.Workload {
		case "W3":
			if r.Events != 100*r.Ops {
				t.Errorf("W3 %s: %d events in %d batches, want 100 each", r.System, r.Events, r.Ops)
			}
		case "W4":
			if r.Events != 1000*r.Ops {
				t.Errorf("W4 %s: %d events in %d reads, want 1,000 each", r.System, r.Events, r.Ops)
			}
		case "W5":
			if r.Events != 2000 {
				t.Errorf("W5 %s: read %d events, want 2,000", r.System, r.Events)
			}
		case "W7":
			if r.Events < 2000 {
				t.Errorf("W7 %s: rebuilt over %d events, want at least 2,000", r.Case, r.Events)
			}
		case "W10":
			if r.Events != 2000 {
				t.Errorf("W10: relayed %d events, want 2,000", r.Events)
			}
		case "W8":
			if r.PeakRSS <= 0 {
				t.Errorf("W8: no peak RSS")
			}
		}
		// A ratio needs an operation inside both measured windows; on a
		// loaded machine one slow W4 read can outlast a 200 ms window.
		if r.System == "chronicle" {
			measured[r.Workload+"/"+r.Case] = r.Ops > 0
		}
		if r.System == "plain" && r.Ratio <= 0 && r.Ops > 0 && measured[r.Workload+"/"+r.Case] {
			t.Errorf("%s plain: no ratio", r.Workload)
		}
	}
	for _, w := range bench.Workloads {
		if !seen[w+"/chronicle"] {
			t.Errorf("no %s row", w)
		}
		if plain := slices.Contains([]string{"W1", "W2", "W3", "W4", "W5"}, w); plain && baseline != seen[w+"/plain"] {
			t.Errorf("%s: plain row present %v, want %v", w, seen[w+"/plain"], baseline)
		}
	}
}

// TestBenchRounds: a run needs at least one round; zero or fewer is a usage
// error that says so, before anything is measured.
func TestBenchRounds(t *testing.T) {
	c := newCLI(t, nil)
	for _, n := range []string{"0", "-2"} {
		_, stderr, code := c.run("bench", "--rounds", n, "--store", tempStore(t))
		if code != 2 || !strings.Contains(stderr, "--rounds must be at least 1") {
			t.Errorf("bench --rounds %s: exit %d, stderr %q, want 2 and what is wrong", n, code, stderr)
		}
	}
}

// TestBenchRoundsReport: with --rounds 2 every row holds both rounds, in
// order, and the fsync probe ran before, between and after them.
func TestBenchRoundsReport(t *testing.T) {
	out, stderr, code := newCLI(t, nil).run("bench", "--workload", "W1,W3", "--clients", "1,2", "--warmup", "0s", "--duration", "100ms",
		"--rounds", "2", "--fsync-probe", "20ms", "--json", "--store", tempStore(t))
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	if rep.Rounds != 2 || rep.Disk == nil || len(rep.Disk.Samples) != 3 {
		t.Errorf("rounds %d, disk %+v: want 2 rounds and 3 fsync samples", rep.Rounds, rep.Disk)
	}
	if len(rep.Rows) != 3 {
		t.Fatalf("%d rows, want 3 (W1 at 1 and 2 clients, W3)", len(rep.Rows))
	}
	for _, row := range rep.Rows {
		if len(row.Rounds) != 2 || row.Rounds[0].Round != 1 || row.Rounds[1].Round != 2 {
			t.Errorf("%s %d clients: rounds %+v, want rounds 1 and 2", row.Workload, row.Clients, row.Rounds)
			continue
		}
		a, b := row.Rounds[0].OpsPerSec, row.Rounds[1].OpsPerSec
		if row.Main == "events/s" {
			a, b = row.Rounds[0].EventsPerSec, row.Rounds[1].EventsPerSec
		}
		if want := (bench.Spread{Median: (a + b) / 2, Min: min(a, b), Max: max(a, b)}); row.Value != want {
			t.Errorf("%s %d clients: value %+v, want %+v from the rounds", row.Workload, row.Clients, row.Value, want)
		}
	}
	// Round 1 of every row came before round 2 of any.
	if i, j := strings.Index(stderr, "round 1/2: W3"), strings.Index(stderr, "round 2/2: W1"); i < 0 || j < 0 || i > j {
		t.Errorf("rounds not interleaved:\n%s", stderr)
	}
}
