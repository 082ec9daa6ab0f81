package orderview_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

var (
	benchEvents = flag.Int("orderview.events", 20000, "events in the history BenchmarkRebuild rebuilds (BENCHMARKS.md W7: 1000000)")
	benchReuse  = flag.String("orderview.reuse", "", "directory keeping BenchmarkRebuild's loaded histories between runs "+
		"(SQLite files there; PostgreSQL schemas named after the size), so that a 1M-event history is loaded once")
)

// BenchmarkRebuild is BENCHMARKS.md W7: rebuild order_summaries and
// order_status_history from position zero over an order history of
// -orderview.events events; it reports events/s per read model, for both
// rebuilt one after the other (Rebuild), and for both in one pass
// (RebuildAll).
func BenchmarkRebuild(b *testing.B) {
	for _, o := range testbackends.All() {
		b.Run(o.Name, func(b *testing.B) {
			ctx := context.Background()
			s, n := history(b, o, *benchEvents)
			r, err := projection.New(s, projection.Options{Upcaster: order.NewRegistry()}, orderview.Projections()...)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Setup(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var per = map[string]time.Duration{}
			var seq, all time.Duration
			for b.Loop() {
				for _, name := range r.Names() {
					t0 := time.Now()
					if err := r.Rebuild(ctx, name, nil); err != nil {
						b.Fatal(err)
					}
					d := time.Since(t0)
					per[name] += d
					seq += d
				}
				t0 := time.Now()
				if err := r.RebuildAll(ctx, nil, nil); err != nil {
					b.Fatal(err)
				}
				all += time.Since(t0)
			}
			b.StopTimer()
			rate := func(d time.Duration) float64 { return float64(n) * float64(b.N) / d.Seconds() }
			for name, d := range per {
				b.ReportMetric(rate(d), name+"_events/s")
			}
			// Both read models: one after the other, and in one pass.
			b.ReportMetric(rate(seq), "both_events/s")
			b.ReportMetric(rate(all), "both_one_pass_events/s")
		})
	}
}

// history returns a store holding an order history of at least n events,
// and its size: a fresh one, or with -orderview.reuse one loaded by an
// earlier run.
func history(b *testing.B, o testbackends.Opener, n int) (testbackends.Backend, int) {
	b.Helper()
	if *benchReuse == "" {
		s := o.Open(b, testbackends.Options{})
		return s, load(b, s, n)
	}
	ctx := context.Background()
	var s testbackends.Backend
	switch o.Name {
	case "sqlite":
		st, err := sqlitestore.Open(ctx, filepath.Join(*benchReuse, fmt.Sprintf("w7_%d.db", n)), sqlitestore.Options{Synchronous: "NORMAL"})
		if err != nil {
			b.Fatal(err)
		}
		s = st
	default:
		url := testbackends.PostgresURL(b)
		st, err := pgstore.Open(ctx, url, pgstore.Options{Schema: fmt.Sprintf("w7_%d", n)})
		if err != nil {
			b.Fatal(err)
		}
		s = st
	}
	b.Cleanup(func() { s.Close() })
	marker := filepath.Join(*benchReuse, fmt.Sprintf("w7_%d.%s.events", n, o.Name))
	if got, err := os.ReadFile(marker); err == nil {
		if k, err := strconv.Atoi(string(got)); err == nil {
			return s, k
		}
	}
	k := load(b, s, n)
	if err := os.WriteFile(marker, []byte(strconv.Itoa(k)), 0o644); err != nil {
		b.Fatal(err)
	}
	return s, k
}

// load appends whole order lifecycles until the log holds at least n
// events, from 4 writers; it returns the number of events.
func load(b *testing.B, s chronicle.Store, n int) int {
	b.Helper()
	var next, total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for total.Load() < int64(n) {
				i := int(next.Add(1))
				evs := viewtest.Lifecycle(i)
				stream, _ := order.StreamID(fmt.Sprintf("ord_%d", i))
				if _, err := s.Append(context.Background(), stream, chronicle.NoStream, evs); err != nil {
					errs <- err
					return
				}
				total.Add(int64(len(evs)))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return int(total.Load())
}

// BenchmarkReadLog reads the history of BenchmarkRebuild as a rebuild
// does (order streams, pages of 5000), decoding nothing more: the ceiling
// of a rebuild's speed.
func BenchmarkReadLog(b *testing.B) {
	for _, o := range testbackends.All() {
		b.Run(o.Name, func(b *testing.B) {
			ctx := context.Background()
			s, n := history(b, o, *benchEvents)
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				var from chronicle.Checkpoint
				for {
					evs, err := s.ReadAll(ctx, from, chronicle.ReadAllOptions{StreamTypes: []string{order.StreamType}, Limit: 5000})
					if err != nil {
						b.Fatal(err)
					}
					if len(evs) == 0 {
						break
					}
					from = evs[len(evs)-1].Checkpoint()
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
