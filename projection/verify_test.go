package projection_test

import (
	"context"
	"testing"

	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
)

// loadHook is a projection whose Load first runs before: what another
// process does while Verify reads the stored rows.
type loadHook struct {
	projection.Projection
	before func()
}

func (h loadHook) Load(ctx context.Context, q projection.Querier, d projection.Dialect, t projection.Tables) (projection.Rows, error) {
	h.before()
	return h.Projection.Load(ctx, q, d, t)
}

// TestVerifyWhileWriting: while Verify reads a read model, another process
// appends and its projections apply those events. Verify must hold no lock
// that stops them (on SQLite, the database's one write lock), and must still
// compare rows and checkpoint from one snapshot: no difference.
func TestVerifyWhileWriting(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			a, b := viewtest.Pair(t, backend)
			w := viewtest.NewWorkload(11, "ord_")
			if err := w.Run(ctx, a, 300); err != nil {
				t.Fatal(err)
			}
			// The other process: a writer and a live runner, on handle b.
			project := func() {
				r := newRunner(t, b, projection.Options{})
				stop := start(t, r)
				caughtUp(t, r, b)
				stop()
			}
			project()

			loads := 0
			var ps []projection.Projection
			for _, p := range orderview.Projections() {
				ps = append(ps, loadHook{Projection: p, before: func() {
					loads++
					if err := w.Run(ctx, b, 20); err != nil {
						t.Fatalf("append while verify reads %s: %v", p.Name(), err)
					}
					project()
				}})
			}
			verifyEqual(t, newRunner(t, a, projection.Options{}, ps...))
			if loads != len(ps) {
				t.Fatalf("Verify loaded %d read models, want %d", loads, len(ps))
			}
			// What was appended during Verify is projected and verifies too.
			verifyEqual(t, newRunner(t, a, projection.Options{}))
		})
	}
}
