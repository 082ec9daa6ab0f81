package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-es/chronicle/internal/bench"
	"github.com/chronicle-es/chronicle/relay"
)

func (m *Main) benchCommand() *cobra.Command {
	var (
		workloads        []string
		clients          []int
		duration, warmup time.Duration
		w5Limit          time.Duration
		events           int
		scale            float64
		baseline, keep   bool
		asJSON           bool
		rounds           int
		fsyncProbe       time.Duration
		fsyncDir         string
		serveMode        string
		cpuProfile       string
		natsURL          string
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure the store with the workloads of BENCHMARKS.md",
		Long: `Run the workloads of BENCHMARKS.md against a backend and print, per workload
and client count: ops/s, events/s, p50 and p99 latency, errors and conflicts,
each the median of --rounds rounds (default 3) with min-max beside it.

  W1 create   one OrderCreated to a new stream, expected "no stream"
  W2 command  read a random stream's version, append one ItemAdded at it
              (10,000 streams set up first; conflicts counted, not retried)
  W3 batch    one append of 100 events to a new stream
  W4 load     read a random 1,000-event stream whole, decoding the JSON
  W5 catch-up page the global log from the start, 1,000 events a page
  W6 load     an order of 1,000 events through the aggregate repository,
              snapshots every 50 and off
  W7 rebuild  rebuild order_summaries and order_status_history
  W8 HTTP     create -> pay -> ship over HTTP against chronicle serve
  W9 feed     50 subscribers of GET /events (Server-Sent Events) while
              clients create orders over HTTP; every subscriber must get
              every event; p50/p99 from a POST's response to delivery
  W10 relay   relay 200,000 stored events into a fresh JetStream stream
              (file storage) on the NATS server of --nats (skipped without)

Rounds are interleaved: every workload and client count is set up first,
then measured once in round 1, then again in round 2, and so on, so that a
machine whose speed drifts slows every row alike. A line per row and round
goes to stderr as it is measured; the table (or --json, which also holds
every round's figures) comes at the end.

The disk's fsync rate is measured in the same run, before, between and after
the rounds (--fsync-probe long each): one 8 KiB block written and flushed
with fdatasync, again and again, in a temporary file beside the SQLite files
(on PostgreSQL in the system's temporary directory: give the server's data
directory with --fsync-dir when it is on this machine). It bounds serial
durable commits, and with them what group commit can win: the report names
the regime (slow, medium, fast). With --baseline, the plain INSERT from one
client (W1) gives the backend's own commit rate beside it (PostgreSQL's on
its disk; SQLite's serial durable commits at the run's synchronous level).

On Linux each row also says what the whole machine's CPU spent per
operation (per event for W3, W5, W7, W10) during the window, from
/proc/stat: bench, and the PostgreSQL server when it runs on this machine
(and anything else running: measure on a quiet machine). Beside it, bench's
own share, the average busy cores, and the ceiling: the rate all the cores
would give at that CPU per operation. A row far below its ceiling waits (on
the disk, on round trips, on batches); a row near it needs less work per
operation to go faster, whatever the client count.

Each client is one goroutine with one operation in flight; after the
warm-up, operations that start and end inside the measured window count.
--clients applies to W1, W2, W8 and W9 (default: 1,8,32 for W1, 8,32 for W2,
32 for W8, 8 for W9); the others have one client by definition.

Where it runs: bench never writes to an existing store. With a postgres://
URL it creates a fresh schema per workload (bench_<run>_<workload>) in that
database and drops it at the end; with a sqlite URL it creates fresh files
in a temporary directory next to the named file (same disk; the file itself
is never opened), keeping its ?synchronous= level (default FULL) and its
?mmap_size=; with no URL, in a temporary directory. --keep leaves them for
inspection.

Data sets: W4 and W5 share --events events (default 1,000,000) in streams
of 1,000, written interleaved by one writer per stream at once (group
commit packs one event of many streams into each transaction); W7 writes
order lifecycles until it has --events events. --scale shrinks the data
sets (W2's streams, and the default --events) for quick runs.

--baseline runs W1-W5 against the seed's plain table too, on the same
backend, in the same run, each right after chronicle's in every round, and
prints the ratio chronicle / plain of the row's main figure (ops/s,
events/s, or p50 for W4), taken in each round, then its median (min-max)
over the rounds. On PostgreSQL the table is in the workload's schema; on
SQLite it is a file of its own beside the workload's (same driver, WAL, the
same synchronous level), written through one connection (SQLite takes one
writer at a time), read through a pool; W5's plain reader pages by ctid on
PostgreSQL, by rowid on SQLite.

W8 and W9 start "chronicle serve" as a child process on loopback (--serve
process), so that the peak RSS reported is the server's alone; --serve
inprocess runs it inside bench (RSS then includes the clients). Each round
starts its own server on a fresh store.

W10 needs a NATS server with JetStream (nats-server -js): bench does not start
one. It creates a stream BENCH_<run> (subjects bench_<run>.>) and deletes it
at the end unless --keep.`,
		Example: `  chronicle bench --workload W1 --clients 1,8,32
  chronicle bench --workload all --scale 0.01 --duration 1s --warmup 200ms --rounds 1
  chronicle bench --store 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' --workload all --baseline
  chronicle bench --store sqlite:///var/tmp/bench.db --workload W4,W5 --events 100000 --baseline --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if scale <= 0 {
				return usagef("bench: --scale must be positive")
			}
			if duration <= 0 || warmup < 0 {
				return usagef("bench: --duration must be positive and --warmup not negative")
			}
			if rounds < 1 {
				return usagef("bench: --rounds must be at least 1")
			}
			if fsyncProbe < 0 {
				return usagef("bench: --fsync-probe must not be negative")
			}
			for _, n := range clients {
				if n < 1 {
					return usagef("bench: --clients must be at least 1")
				}
			}
			opts := bench.Options{
				Store:      m.storeURL(c),
				Workloads:  workloads,
				Warmup:     warmup,
				Duration:   duration,
				Events:     events,
				Streams:    max(int(float64(bench.DefaultStreams)*scale), 10),
				W5Limit:    w5Limit,
				Baseline:   baseline,
				Keep:       keep,
				Rounds:     rounds,
				FsyncProbe: fsyncProbe,
				FsyncDir:   fsyncDir,
				Progress:   m.Stderr,
				TTY:        m.isTerminal(m.Stderr),
			}
			if !c.Flags().Changed("events") {
				opts.Events = max(int(float64(bench.DefaultEvents)*scale), 1)
			}
			opts.W10Events = max(int(float64(bench.DefaultW10Events)*scale), 1)
			if natsURL != "" {
				if err := (relay.Options{URL: natsURL}).Check(); err != nil {
					return usagef("bench: --nats: %v", err)
				}
				opts.NATS = natsURL
			}
			if c.Flags().Changed("clients") {
				opts.Clients = clients
			}
			switch serveMode {
			case "process":
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("bench: find the chronicle binary for W8: %w", err)
				}
				opts.Serve = bench.ChildServe(exe)
			case "inprocess":
				opts.Serve = m.serveInProcess
			default:
				return usagef("bench: --serve %q: want process or inprocess", serveMode)
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if !asJSON {
				r := "1 round"
				if rounds > 1 {
					r = fmt.Sprintf("%d rounds, interleaved,", rounds)
				}
				fmt.Fprintf(m.Stdout, "chronicle bench: %s of %s warm-up + %s measured; W4/W5/W7 data sets of %d events\n",
					r, warmup, duration, opts.Events)
			}
			rep, err := bench.Run(c.Context(), opts)
			switch {
			case rep == nil:
			case asJSON:
				enc := json.NewEncoder(m.Stdout)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(rep); jerr != nil && err == nil {
					err = jerr
				}
			default:
				bench.WriteText(m.Stdout, rep)
			}
			if err != nil && strings.HasPrefix(err.Error(), "bench: unknown workload") {
				return &usageError{err}
			}
			return err
		},
	}
	f := c.Flags()
	f.StringSliceVar(&workloads, "workload", []string{"W1"}, "workloads to run: W1..W10, comma-separated, or all")
	f.IntSliceVar(&clients, "clients", []int{1, 8, 32}, "client counts for W1, W2, W8 and W9: a run per value")
	f.DurationVar(&duration, "duration", 10*time.Second, "measured window")
	f.DurationVar(&warmup, "warmup", 2*time.Second, "warm-up before the measured window")
	f.IntVar(&events, "events", bench.DefaultEvents, "events in the W4/W5 and W7 data sets")
	f.Float64Var(&scale, "scale", 1, "multiply the default data set sizes (W2 streams, W4/W5/W7 events) for quick runs")
	f.DurationVar(&w5Limit, "w5-limit", bench.DefaultW5Limit, "stop the W5 reader after this long")
	f.BoolVar(&baseline, "baseline", false, "also run W1-W5 on the seed's plain table, same backend, and print ratios")
	f.BoolVar(&keep, "keep", false, "keep the schemas or files the run created")
	f.BoolVar(&asJSON, "json", false, "print the results as JSON, every round's figures included")
	f.IntVar(&rounds, "rounds", bench.DefaultRounds, "measure every row this many times, interleaved, and print the median (min-max)")
	f.DurationVar(&fsyncProbe, "fsync-probe", time.Second, "how long each probe of the disk's fsync rate runs (before, between and after the rounds); 0 skips it")
	f.StringVar(&fsyncDir, "fsync-dir", "", "where the fsync probe writes (default: beside the SQLite files, or the temporary directory on PostgreSQL)")
	f.StringVar(&serveMode, "serve", "process", "how W8 and W9 run the server: process (a child chronicle serve) or inprocess")
	f.StringVar(&natsURL, "nats", "", "W10: the NATS server (with JetStream) to relay to, nats://HOST:PORT")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write bench's own CPU profile (clients and store code) to this file")
	return c
}

// serveInProcess runs serve inside this process for W8, with the same
// wiring as the serve command (it is the serve command).
func (m *Main) serveInProcess(ctx context.Context, storeURL string) (*bench.Server, error) {
	key, removeKey, err := bench.TempMasterKey()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	addrc := make(chan string, 1)
	sm := &Main{Stdout: io.Discard, Stderr: m.Stderr, Getenv: func(string) string { return "" },
		Ready: func(addr string) { addrc <- addr }}
	done := make(chan error, 1)
	go func() {
		done <- sm.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--store", storeURL, "--master-key", key, "--log-level", "error"})
	}()
	select {
	case addr := <-addrc:
		return &bench.Server{
			Base:      "http://" + addr,
			InProcess: true,
			PeakRSS:   func() (int64, error) { return bench.PeakRSS("/proc/self/status") },
			Stop:      func() error { defer removeKey(); cancel(); return <-done },
		}, nil
	case err := <-done:
		cancel()
		removeKey()
		return nil, fmt.Errorf("serve exited before listening: %w", err)
	}
}
