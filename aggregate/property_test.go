package aggregate_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/order"
	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// validCommand draws a command that Decide accepts in state s.
func validCommand(t *rapid.T, s order.State) order.Command {
	sku := rapid.SampledFrom([]string{"A", "B", "C", "D"}).Draw(t, "sku")
	var price int64 = 100 + int64(sku[0]-'A') // one price per SKU
	choices := []order.Command{}
	switch s.Status {
	case order.StatusCreated:
		choices = append(choices, order.AddItem{SKU: sku, Quantity: rapid.Int64Range(1, 5).Draw(t, "qty"), UnitPrice: price})
		if len(s.Items) > 0 {
			choices = append(choices, order.RemoveItem{SKU: s.Items[rapid.IntRange(0, len(s.Items)-1).Draw(t, "item")].SKU})
		}
		if s.Total > 0 {
			choices = append(choices, order.Pay{Method: "card", Amount: s.Total})
		}
		choices = append(choices, order.Cancel{Reason: "r"})
		fallthrough
	case order.StatusPaid:
		choices = append(choices, order.ChangeShippingAddress{Address: order.Address{
			Name: rapid.StringMatching(`[a-z]{1,8}`).Draw(t, "name"), Line1: "1 St", City: "X", PostalCode: "1", Country: "US"}})
		if s.Status == order.StatusPaid {
			choices = append(choices, order.Ship{Carrier: "ups", Tracking: "1Z"}, order.Cancel{})
		}
	case order.StatusShipped:
		choices = append(choices, order.Deliver{SignedBy: "me"})
	}
	if len(choices) == 0 {
		return nil
	}
	// Weight towards item changes so streams grow past the snapshot intervals.
	if s.Status == order.StatusCreated && rapid.IntRange(0, 9).Draw(t, "bias") < 8 {
		return choices[0]
	}
	return rapid.SampledFrom(choices).Draw(t, "command")
}

// TestSnapshotsAreOnlyACache: for random valid command sequences, the state
// loaded from snapshot + tail equals a full replay and a load after every
// snapshot was deleted, whatever the snapshot interval.
func TestSnapshotsAreOnlyACache(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		reg := order.NewRegistry()
		full := newOrderRepo(b, aggregate.WithSnapshotEvery(0))
		repos := map[int]*orderRepo{}
		for _, n := range []int{0, 1, 3, 50} {
			repos[n] = newOrderRepo(b, aggregate.WithSnapshotEvery(n))
		}
		run := 0
		rapid.Check(t, func(t *rapid.T) {
			run++
			every := rapid.SampledFrom([]int{0, 1, 3, 50}).Draw(t, "every")
			repo := repos[every]
			id := fmt.Sprintf("p%d", run)
			res, err := repo.Handle(ctx, id, order.Create{CustomerID: "c", Currency: rapid.SampledFrom([]string{"", "EUR"}).Draw(t, "currency")})
			if err != nil {
				t.Fatal(err)
			}
			steps := rapid.IntRange(0, 70).Draw(t, "steps")
			for range steps {
				cmd := validCommand(t, res.State)
				if cmd == nil {
					break
				}
				if res, err = repo.Handle(ctx, id, cmd); err != nil {
					t.Fatalf("%#v: %v", cmd, err)
				}
			}
			cached, err := repo.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			replayed, err := full.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if every > 0 && cached.Version >= int64(every) && cached.SnapshotVersion == 0 {
				t.Fatalf("interval %d, version %d: no snapshot used", every, cached.Version)
			}
			if err := b.DeleteAllSnapshots(ctx); err != nil {
				t.Fatal(err)
			}
			deleted, err := repo.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string]aggregate.Loaded[order.State]{"snapshot+tail": cached, "after deleting snapshots": deleted, "command result": res.Loaded} {
				if diff := cmp.Diff(replayed.State, got.State); diff != "" || got.Version != replayed.Version {
					t.Fatalf("%s differs from a full replay (v%d vs v%d) (-replay +got):\n%s", name, got.Version, replayed.Version, diff)
				}
			}
			if diff := cmp.Diff(replay(t, b, reg, id, 0), replayed.State); diff != "" {
				t.Fatalf("repository replay differs from a hand fold:\n%s", diff)
			}
		})
	})
}
