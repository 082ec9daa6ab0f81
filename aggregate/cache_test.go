package aggregate_test

import (
	"context"
	"errors"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/sqlitestore"
	"github.com/google/go-cmp/cmp"
)

var _ aggregate.AppendRecorder = (*sqlitestore.Store)(nil)

// TestStateCacheChangesNoResult: two repositories with state caches on one
// store play two processes whose caches go stale under each other; every
// command's result equals a replay of the log, stale guesses are not
// counted as conflicts, and refusals are the same as without a cache.
func TestStateCacheChangesNoResult(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		reg := order.NewRegistry()
		a := newOrderRepo(b, aggregate.WithStateCache(10))
		c := newOrderRepo(b, aggregate.WithStateCache(10), aggregate.WithSnapshotEvery(2))
		check := func(res aggregate.Result[order.State], id string, version int64) {
			t.Helper()
			if res.Version != version {
				t.Fatalf("%s: version %d, want %d", id, res.Version, version)
			}
			if diff := cmp.Diff(replay(t, b, reg, id, version), res.State); diff != "" {
				t.Fatalf("%s: state differs from a replay (-replay +result):\n%s", id, diff)
			}
		}
		check(handle(t, a, "o1", order.Create{CustomerID: "c"}), "o1", 1)                       // unknown: guessed empty
		check(handle(t, c, "o1", order.AddItem{SKU: "s1", Quantity: 1, UnitPrice: 5}), "o1", 2) // unknown to c: refused on the guess, loaded
		check(handle(t, a, "o1", order.AddItem{SKU: "s2", Quantity: 2, UnitPrice: 7}), "o1", 3) // a's state is stale: conflict, loaded
		check(handle(t, c, "o1", order.AddItem{SKU: "s3", Quantity: 1, UnitPrice: 1}), "o1", 4) // c's too
		check(handle(t, c, "o1", order.Pay{Method: "card", Amount: 20}), "o1", 5)               // c's is current
		if st := a.Stats(); st.Conflicts != 0 || st.Commands != 2 {
			t.Errorf("a: %+v, want 2 commands and no conflicts", st)
		}

		// Create on an existing order: refused as without a cache.
		_, err := newOrderRepo(b, aggregate.WithStateCache(10)).Handle(ctx, "o1", order.Create{CustomerID: "c"})
		var ae *order.AlreadyExistsError
		if !errors.As(err, &ae) {
			t.Errorf("create of an existing order: %v, want *order.AlreadyExistsError", err)
		}
		// A stale cache does not turn a stale If-Match into a success.
		_, err = a.Handle(ctx, "o1", order.Ship{Carrier: "x", Tracking: "y"}, aggregate.ExpectVersion(3))
		var ce *chronicle.ConflictError
		if !errors.As(err, &ce) || ce.Actual != 5 {
			t.Errorf("If-Match 3 on version 5: %v, want a conflict at actual 5", err)
		}
		// A command that causes nothing on a stale state reports the current one.
		res, err := a.Handle(ctx, "o1", order.RemoveItem{SKU: "none"})
		if err == nil && res.Version != 5 {
			t.Errorf("no-op on version 5 reported version %d", res.Version)
		}
	})
}

// TestStateCacheEvicts: a cache of one still runs every command right.
func TestStateCacheEvicts(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		reg := order.NewRegistry()
		r := newOrderRepo(b, aggregate.WithStateCache(1))
		for _, id := range []string{"e1", "e2", "e3"} {
			handle(t, r, id, order.Create{CustomerID: "c"})
		}
		for _, id := range []string{"e1", "e2", "e3", "e1"} {
			res := handle(t, r, id, order.AddItem{SKU: "s-" + id + "-" + string(rune('a'+int(r.Stats().Commands))), Quantity: 1, UnitPrice: 1})
			if diff := cmp.Diff(replay(t, b, reg, id, res.Version), res.State); diff != "" {
				t.Fatalf("%s: (-replay +result):\n%s", id, diff)
			}
		}
	})
}
