package viewtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// Backend is a store with a SQL database for read models.
type Backend = testbackends.Backend

// Encode turns order events into events to append, at their current
// schema versions.
func Encode(evs []order.Event) []chronicle.Event {
	out := make([]chronicle.Event, len(evs))
	for i, ev := range evs {
		data, err := json.Marshal(ev)
		if err != nil {
			panic(err) // plain structs
		}
		v, _ := order.SchemaVersion(ev.EventType())
		out[i] = chronicle.Event{ID: chronicle.NewEventID(), Type: ev.EventType(), SchemaVersion: v, Data: data}
	}
	return out
}

// Workload issues random valid order commands. Not safe for concurrent use;
// give each goroutine its own, with distinct prefixes.
type Workload struct {
	rng    *rand.Rand
	prefix string
	ids    []string
	states map[string]order.State
}

// NewWorkload returns a workload whose order ids start with prefix.
func NewWorkload(seed uint64, prefix string) *Workload {
	return &Workload{rng: rand.New(rand.NewPCG(seed, 7)), prefix: prefix, states: map[string]order.State{}}
}

// Orders returns the ids of the orders created so far.
func (w *Workload) Orders() []string { return w.ids }

// Step issues one command: a new order about a third of the time, else a
// command that the order's status allows. Refused commands are skipped.
func (w *Workload) Step(ctx context.Context, s chronicle.Store) error {
	var id string
	var st order.State
	if len(w.ids) == 0 || w.rng.IntN(3) == 0 {
		id = fmt.Sprintf("%s%d", w.prefix, len(w.ids))
	} else {
		id = w.ids[w.rng.IntN(len(w.ids))]
		st = w.states[id]
	}
	cmd := w.command(st)
	if cmd == nil {
		return nil
	}
	evs, err := order.Decide(st, cmd)
	if err != nil {
		var rule *order.RuleError
		if errors.As(err, &rule) {
			return nil
		}
		return fmt.Errorf("decide %T on %s: %w", cmd, id, err)
	}
	stream, _ := order.StreamID(id)
	res, err := s.Append(ctx, stream, chronicle.Exact(st.Version), Encode(evs))
	if err != nil {
		return fmt.Errorf("append to %s: %w", stream, err)
	}
	recorded, err := s.ReadStream(ctx, stream, chronicle.ReadStreamOptions{From: res.FirstVersion})
	if err != nil {
		return err
	}
	for _, e := range recorded {
		if st, err = order.Evolve(st, e); err != nil {
			return err
		}
	}
	if w.states[id].Version == 0 {
		w.ids = append(w.ids, id)
	}
	w.states[id] = st
	return nil
}

// Run issues n commands.
func (w *Workload) Run(ctx context.Context, s chronicle.Store, n int) error {
	for range n {
		if err := w.Step(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func (w *Workload) command(s order.State) order.Command {
	r := w.rng
	sku := fmt.Sprintf("SKU-%d", r.IntN(5))
	switch s.Status {
	case "":
		return order.Create{CustomerID: fmt.Sprintf("cust_%d", r.IntN(7)),
			Items: []order.Item{{SKU: sku, Quantity: int64(1 + r.IntN(3)), UnitPrice: int64(100 + r.IntN(5000))}}}
	case order.StatusCreated:
		switch r.IntN(6) {
		case 0, 1:
			return order.AddItem{SKU: sku, Quantity: int64(1 + r.IntN(3)), UnitPrice: int64(100 + r.IntN(5000))}
		case 2:
			if len(s.Items) > 1 {
				return order.RemoveItem{SKU: s.Items[r.IntN(len(s.Items))].SKU}
			}
			return order.ChangeShippingAddress{Address: order.Address{Name: "A. Person", Line1: fmt.Sprintf("%d Main St", r.IntN(100)), City: "Springfield", PostalCode: "12345", Country: "US"}}
		case 3:
			return order.Cancel{Reason: "changed mind"}
		default:
			return order.Pay{Method: "card", Amount: s.Total}
		}
	case order.StatusPaid:
		if r.IntN(8) == 0 {
			return order.Cancel{Reason: "out of stock"}
		}
		return order.Ship{Carrier: "fedex", Tracking: fmt.Sprintf("FX%d", r.IntN(1e6))}
	case order.StatusShipped:
		return order.Deliver{SignedBy: "J. Smith"}
	}
	return nil
}

// Pair opens two stores on one fresh database of backend name ("sqlite" or
// "postgres"), as two processes would: separate pools, separate
// notifications. PostgreSQL is skipped when its URL is unset.
func Pair(tb testing.TB, name string) (Backend, Backend) {
	tb.Helper()
	ctx := context.Background()
	switch name {
	case "sqlite":
		path := filepath.Join(tb.TempDir(), "chronicle.db")
		a := openSQLite(tb, path)
		return a, openSQLite(tb, path)
	case "postgres":
		a := testbackends.Postgres(tb, testbackends.Options{})
		b, err := pgstore.Open(ctx, testbackends.PostgresURL(tb), pgstore.Options{Schema: a.(*pgstore.Store).Schema()})
		if err != nil {
			tb.Fatalf("pgstore.Open: %v", err)
		}
		tb.Cleanup(func() { b.Close() })
		return a, b
	}
	tb.Fatalf("unknown backend %q", name)
	return nil, nil
}

// OpenPostgresSchema opens a store on an existing schema of the test server.
func OpenPostgresSchema(tb testing.TB, schema string) Backend {
	tb.Helper()
	s, err := pgstore.Open(context.Background(), testbackends.PostgresURL(tb), pgstore.Options{Schema: schema})
	if err != nil {
		tb.Fatalf("pgstore.Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func openSQLite(tb testing.TB, path string) Backend {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		tb.Fatalf("sqlitestore.Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// Lifecycle returns the events of a whole order, decided by the domain: a
// realistic mix of create, items, address, pay, ship, deliver, and a cancel
// for one order in seven.
func Lifecycle(i int) []chronicle.Event {
	id := fmt.Sprintf("ord_%d", i)
	stream, _ := order.StreamID(id)
	cmds := []order.Command{
		order.Create{CustomerID: fmt.Sprintf("cust_%d", i%97), Items: []order.Item{{SKU: "SKU-1", Quantity: 2, UnitPrice: 2500}}},
		order.AddItem{SKU: "SKU-2", Quantity: 1, UnitPrice: 4999},
		order.ChangeShippingAddress{Address: order.Address{Name: "J. Smith", Line1: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "US"}},
	}
	if i%7 == 3 {
		cmds = append(cmds, order.Cancel{Reason: "changed mind"})
	} else {
		cmds = append(cmds, order.Pay{Method: "card", Amount: 2*2500 + 4999}, order.Ship{Carrier: "fedex", Tracking: "FX123"}, order.Deliver{SignedBy: "J. Smith"})
	}
	var s order.State
	var out []chronicle.Event
	for _, c := range cmds {
		evs, err := order.Decide(s, c)
		if err != nil {
			panic(fmt.Sprintf("lifecycle %d: %v", i, err))
		}
		for _, e := range Encode(evs) {
			s, err = order.Evolve(s, chronicle.RecordedEvent{StreamID: stream, Version: s.Version + 1, Type: e.Type, SchemaVersion: e.SchemaVersion, Data: e.Data})
			if err != nil {
				panic(fmt.Sprintf("lifecycle %d: %v", i, err))
			}
			out = append(out, e)
		}
	}
	return out
}
