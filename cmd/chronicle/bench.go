package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/storeurl"
)

// The payload and metadata of WORKLOADS.md, exactly.
const (
	benchPayload  = `{"customer_id":"cust_456","total":9999,"currency":"USD","items":[{"sku":"SKU-1001","name":"Widget","qty":2,"price":2500},{"sku":"SKU-2002","name":"Gadget","qty":1,"price":4999}],"shipping":"standard"}`
	benchMetadata = `{"correlation_id":"corr-00000000","source":"bench"}`
)

func (m *Main) benchCommand() *cobra.Command {
	var (
		workload         string
		clients          []int
		duration, warmup time.Duration
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure the store with the workloads of WORKLOADS.md",
		Long: `Run a workload of WORKLOADS.md against a store and print its figures.

Available now: W1 (create: each operation appends one OrderCreated to a new
stream with expected version "no stream"). Each client is one goroutine with
one operation in flight; after the warm-up, operations that start and end
inside the measured window count. Prints ops/s, p50 and p99 latency.

Without --store or $CHRONICLE_STORE, bench uses a temporary SQLite file that
it deletes afterwards, never the default data file.`,
		Example: `  chronicle bench --clients 1,8,32
  chronicle bench --store 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&schema=bench' --duration 10s`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if !strings.EqualFold(workload, "w1") {
				return usagef("bench: unknown workload %q (available: w1)", workload)
			}
			if duration <= 0 || warmup < 0 || len(clients) == 0 {
				return usagef("bench: --duration must be positive, --warmup not negative, --clients given")
			}
			for _, n := range clients {
				if n < 1 {
					return usagef("bench: --clients must be at least 1")
				}
			}
			raw := m.storeURL(c)
			if raw == "" {
				dir, err := os.MkdirTemp("", "chronicle-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				raw = "sqlite://" + filepath.Join(dir, "bench.db")
			}
			loc, err := storeurl.Parse(raw)
			if err != nil {
				return &usageError{err}
			}
			store, err := storeurl.Open(c.Context(), loc, storeurl.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return err
			}
			defer store.Close()
			fmt.Fprintf(m.Stdout, "W1 create on %s: %s warm-up, %s measured\n", loc, warmup, duration)
			fmt.Fprintf(m.Stdout, "%-8s %10s %12s %10s %10s %8s\n", "clients", "ops", "ops/s", "p50", "p99", "errors")
			for _, n := range clients {
				r, err := benchW1(c.Context(), store, n, warmup, duration)
				if err != nil {
					return err
				}
				fmt.Fprintf(m.Stdout, "%-8d %10d %12.1f %10s %10s %8d\n", n, r.ops, r.opsPerSec, fmtDur(r.p50), fmtDur(r.p99), r.errors)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&workload, "workload", "w1", "workload to run (w1)")
	f.IntSliceVar(&clients, "clients", []int{1, 8, 32}, "concurrent clients; a run per value")
	f.DurationVar(&duration, "duration", 10*time.Second, "measured window")
	f.DurationVar(&warmup, "warmup", 2*time.Second, "warm-up before the measured window")
	return c
}

type benchResult struct {
	ops, errors int
	opsPerSec   float64
	p50, p99    time.Duration
}

// benchW1 runs W1 with n clients. Each client keeps its own latencies, so
// no lock sits in the measured path.
func benchW1(ctx context.Context, store chronicle.Store, n int, warmup, window time.Duration) (benchResult, error) {
	start := time.Now()
	from, to := start.Add(warmup), start.Add(warmup+window)
	lat := make([][]time.Duration, n)
	errs := make([]int, n)
	g, ctx := errgroup.WithContext(ctx)
	for i := range n {
		g.Go(func() error {
			ev := []chronicle.Event{{Type: "OrderCreated", Data: []byte(benchPayload), Metadata: []byte(benchMetadata)}}
			for {
				t0 := time.Now()
				if !t0.Before(to) || ctx.Err() != nil {
					return ctx.Err()
				}
				ev[0].ID = "" // a new event id per append
				_, err := store.Append(ctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, ev)
				t1 := time.Now()
				if !t0.Before(from) && !t1.After(to) {
					if err != nil {
						errs[i]++
					} else {
						lat[i] = append(lat[i], t1.Sub(t0))
					}
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return benchResult{}, err
	}
	var all []time.Duration
	r := benchResult{}
	for i := range n {
		all = append(all, lat[i]...)
		r.errors += errs[i]
	}
	slices.Sort(all)
	r.ops = len(all)
	r.opsPerSec = float64(len(all)) / window.Seconds()
	if len(all) > 0 {
		r.p50 = all[len(all)*50/100]
		r.p99 = all[min(len(all)*99/100, len(all)-1)]
	}
	return r, nil
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
