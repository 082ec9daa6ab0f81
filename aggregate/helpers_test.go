package aggregate_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/upcast"
)

type orderRepo = aggregate.Repository[order.State, order.Command, order.Event]

// store is what these tests need of a backend.
type store interface {
	chronicle.Store
	chronicle.SnapshotStore
}

func newOrderRepo(s store, opts ...aggregate.Option) *orderRepo {
	return aggregate.New(s, s, order.NewRegistry(), order.Definition(), opts...)
}

func handle(t testing.TB, r *orderRepo, id string, cmds ...order.Command) aggregate.Result[order.State] {
	t.Helper()
	var res aggregate.Result[order.State]
	for _, c := range cmds {
		var err error
		if res, err = r.Handle(context.Background(), id, c); err != nil {
			t.Fatalf("%s: %T: %v", id, c, err)
		}
	}
	return res
}

// replay folds the stored events 1..upTo of an order by hand: the truth the
// repository's loads are compared with.
func replay(t interface {
	Helper()
	Fatal(...any)
}, s chronicle.Store, reg *upcast.Registry, id string, upTo int64) order.State {
	t.Helper()
	events, err := s.ReadStream(context.Background(), "order-"+id, chronicle.ReadStreamOptions{To: upTo})
	if err != nil {
		t.Fatal(err)
	}
	var st order.State
	for _, e := range events {
		if e, err = reg.Upcast(e); err != nil {
			t.Fatal(err)
		}
		if st, err = order.Evolve(st, e); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func encode(t testing.TB, events ...order.Event) []chronicle.Event {
	t.Helper()
	out := make([]chronicle.Event, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := order.SchemaVersion(e.EventType())
		out[i] = chronicle.Event{Type: e.EventType(), SchemaVersion: v, Data: data}
	}
	return out
}
