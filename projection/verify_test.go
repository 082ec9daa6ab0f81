package projection_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
)

// loadHook is a projection whose Load first runs before: what happens
// elsewhere while Verify reads the stored rows.
type loadHook struct {
	projection.Projection
	before func()
}

func (h loadHook) Load(ctx context.Context, q projection.Querier, d projection.Dialect, t projection.Tables) (projection.Rows, error) {
	h.before()
	return h.Projection.Load(ctx, q, d, t)
}

// liveWriter appends one whole order after another until stopped, and
// says how far it got.
type liveWriter struct {
	mu      sync.Mutex
	n       int // orders appended
	stream  string
	version int64 // of the last event appended to stream
	err     error // the append that failed; the writer stops there
}

func (w *liveWriter) run(ctx context.Context, s chronicle.Store) {
	for i := 0; ctx.Err() == nil; i++ {
		evs := viewtest.Lifecycle(i)
		stream := fmt.Sprintf("order-ord_%d", i)
		_, err := s.Append(ctx, stream, chronicle.NoStream, evs)
		w.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				w.err = err
			}
			w.mu.Unlock()
			return
		}
		w.n, w.stream, w.version = w.n+1, stream, int64(len(evs))
		w.mu.Unlock()
	}
}

func (w *liveWriter) state() (n int, stream string, version int64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.stream, w.version, w.err
}

// TestVerifyWhileWriting: Verify runs on a store that another process keeps
// appending to while its live projections apply those events. No append
// may wait for Verify (on SQLite: Verify must not hold the database's one
// write lock while it loads the stored rows), and Verify still compares
// rows and checkpoint from one snapshot: no difference.
func TestVerifyWhileWriting(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// a is Verify's; b is the other process: a writer and a live runner.
			a, b := viewtest.Pair(t, backend)
			if err := viewtest.NewWorkload(11, "w_").Run(ctx, a, 1000); err != nil {
				t.Fatal(err)
			}
			live := newRunner(t, b, projection.Options{})
			start(t, live)
			caughtUp(t, live, b)
			var writer liveWriter
			wctx, stopWriter := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() { writer.run(wctx, b) })
			defer wg.Wait()
			defer stopWriter()

			loads := 0
			var ps []projection.Projection
			for _, p := range orderview.Projections() {
				ps = append(ps, loadHook{Projection: p, before: func() {
					loads++
					// Verify's snapshot is taken: appends go on and the live
					// projections apply them, changing the stored rows.
					from, _, _, _ := writer.state()
					for {
						n, stream, version, err := writer.state()
						if err != nil {
							t.Fatalf("append while Verify reads %s: %v", p.Name(), err)
						}
						if n >= from+3 {
							for _, name := range live.Names() {
								if err := live.WaitForStream(ctx, name, stream, version); err != nil {
									t.Fatalf("live projection %s while Verify reads %s: %v", name, p.Name(), err)
								}
							}
							return
						}
						if ctx.Err() != nil {
							t.Fatalf("while Verify reads %s: %d appends in %v", p.Name(), n-from, ctx.Err())
						}
						time.Sleep(5 * time.Millisecond)
					}
				}})
			}
			verifyEqual(t, newRunner(t, a, projection.Options{}, ps...))
			if loads != len(ps) {
				t.Fatalf("Verify loaded %d read models, want %d", loads, len(ps))
			}
			stopWriter()
			wg.Wait()
			if n, _, _, err := writer.state(); err != nil || n == 0 {
				t.Fatalf("writer: %d orders appended, %v", n, err)
			}
			verifyEqual(t, newRunner(t, a, projection.Options{}))
		})
	}
}
