package aggregate_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
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

// TestStateCacheByteBudget: large states are kept only as far as the byte
// budget allows, however many the count bound would take; small ones still
// fill the cache; every result stays right.
func TestStateCacheByteBudget(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		const budget = 300_000
		r := newOrderRepo(b, aggregate.WithStateCache(1000), aggregate.WithStateCacheBytes(budget))
		big := make([]order.Item, order.MaxItems-1)
		for i := range big {
			big[i] = order.Item{SKU: fmt.Sprintf("SKU-%05d-%s", i, strings.Repeat("x", 40)), Quantity: 1, UnitPrice: 1}
		}
		smallest := math.MaxInt
		for i := range 20 {
			res := handle(t, r, fmt.Sprintf("big%d", i), order.Create{CustomerID: "c", Items: big})
			smallest = min(smallest, res.State.Size())
			st := r.Stats()
			if st.CachedBytes > budget || st.CachedStates*smallest > budget {
				t.Fatalf("after %d large orders the cache keeps %d states (%d bytes each at least), %d bytes by its count; budget %d",
					i+1, st.CachedStates, smallest, st.CachedBytes, budget)
			}
			if st.CachedStates == 0 {
				t.Fatalf("after %d large orders the cache keeps none: it should keep what fits", i+1)
			}
		}
		if smallest*4 < budget/2 {
			t.Fatalf("states of %d bytes are not large for a budget of %d: the test proves nothing", smallest, budget)
		}
		small := newOrderRepo(b, aggregate.WithStateCache(1000), aggregate.WithStateCacheBytes(budget))
		for i := range 200 {
			handle(t, small, fmt.Sprintf("small%d", i), order.Create{CustomerID: "c"})
		}
		if st := small.Stats(); st.CachedStates != 200 || st.CachedBytes > budget {
			t.Errorf("after 200 small orders: %d states, %d bytes; want all 200 within %d", st.CachedStates, st.CachedBytes, budget)
		}
		// A kept large state still decides right.
		res := handle(t, r, "big19", order.AddItem{SKU: "NEW", Quantity: 1, UnitPrice: 1})
		if diff := cmp.Diff(replay(t, b, order.NewRegistry(), "big19", res.Version), res.State); diff != "" {
			t.Fatalf("(-replay +result):\n%s", diff)
		}
	})
}
