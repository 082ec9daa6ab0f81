package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
)

// encode turns order events into events to append, at their current
// schema versions.
func encode(evs ...order.Event) []chronicle.Event {
	out := make([]chronicle.Event, len(evs))
	for i, ev := range evs {
		data, err := json.Marshal(ev)
		if err != nil {
			panic(err) // plain structs
		}
		v, _ := order.SchemaVersion(ev.EventType())
		out[i] = chronicle.Event{Type: ev.EventType(), SchemaVersion: v, Data: data, Metadata: json.RawMessage(Metadata)}
	}
	return out
}

// W6: an order of 1,000 events (OrderCreated and 999 ItemAdded) loaded
// through the aggregate repository, with snapshots every 50 and off. With
// snapshots the order is 25 events past its last snapshot (taken at 975),
// the average in steady state, as in aggregate's BenchmarkLoad1000.
func (r *runner) w6(ctx context.Context) error {
	p, err := r.newPlace(ctx, "w6", false, 0)
	if err != nil {
		return err
	}
	events := []order.Event{order.OrderCreated{CustomerID: "cust_456", Currency: "USD", Items: []order.Item{}}}
	for i := range orderLen - 1 {
		events = append(events, order.ItemAdded{SKU: fmt.Sprintf("SKU-%d", i%10), Quantity: 1, UnitPrice: 100 + int64(i%10)})
	}
	appendAll := func(stream string, evs []order.Event) error {
		for batch := range slices.Chunk(evs, 100) {
			if _, err := p.store.Append(ctx, stream, chronicle.Any, encode(batch...)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := appendAll("order-bench_off", events); err != nil {
		return err
	}
	if err := appendAll("order-bench_snap", events[:orderLen-25]); err != nil {
		return err
	}
	reg := order.NewRegistry()
	snap := aggregate.New(p.store, p.store, reg, order.Definition(), aggregate.WithSnapshotEvery(50))
	if _, err := snap.Load(ctx, "bench_snap"); err != nil { // the snapshot at 975
		return err
	}
	if err := appendAll("order-bench_snap", events[orderLen-25:]); err != nil {
		return err
	}
	for _, c := range []struct {
		name, id string
		every    int
	}{
		{"snapshots-50", "bench_snap", 50},
		{"snapshots-off", "bench_off", 0},
	} {
		r.jobs = append(r.jobs, job{workload: "W6", place: p, run: func(ctx context.Context, _ int) (Result, error) {
			// On the store as it is open for this round.
			repo := aggregate.New(p.store, p.store, reg, order.Definition(), aggregate.WithSnapshotEvery(c.every))
			r.checkpoint(ctx, p)
			res := measure(ctx, 1, r.opts.Warmup, r.opts.Duration, func(ctx context.Context, w *worker) (int, error) {
				l, err := repo.Load(ctx, c.id)
				if err == nil && l.Version != orderLen {
					err = fmt.Errorf("loaded version %d, want %d", l.Version, orderLen)
				}
				return int(l.Version - l.SnapshotVersion), err
			}, nil)
			res.Workload, res.Case = "W6", c.name
			return res, nil
		}})
	}
	return nil
}

// lifecycle returns the events of a whole order, decided by the domain: a
// realistic mix of create, items, address, pay, ship, deliver, and a cancel
// for one order in seven (internal/viewtest's Lifecycle, which tests share).
func lifecycle(i int) (string, []chronicle.Event) {
	id := "ord_" + strconv.Itoa(i)
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
		for _, e := range encode(evs...) {
			s, err = order.Evolve(s, chronicle.RecordedEvent{StreamID: stream, Version: s.Version + 1, Type: e.Type, SchemaVersion: e.SchemaVersion, Data: e.Data})
			if err != nil {
				panic(fmt.Sprintf("lifecycle %d: %v", i, err))
			}
			out = append(out, e)
		}
	}
	return stream, out
}

// W7: rebuild order_summaries and order_status_history from position zero
// over an order history of about Events events (whole lifecycles, written
// by 64 concurrent writers, one append per order).
func (r *runner) w7(ctx context.Context) error {
	p, err := r.newPlace(ctx, "w7", false, 0)
	if err != nil {
		return err
	}
	var next, events, orders atomic.Int64
	want := int64(r.opts.Events)
	start := time.Now()
	if err := parallelDo(ctx, 64, int(want), func(ctx context.Context, _ int) error {
		if events.Load() >= want {
			return nil
		}
		stream, evs := lifecycle(int(next.Add(1)))
		if _, err := p.store.Append(ctx, stream, chronicle.NoStream, evs); err != nil {
			return err
		}
		orders.Add(1)
		d := events.Add(int64(len(evs)))
		r.prog.update("W7 data set: %d/%d events (%.0f/s)", d, want, float64(d)/time.Since(start).Seconds())
		return nil
	}); err != nil {
		return err
	}
	n := events.Load()
	r.prog.line("W7 data set: %d events in %d orders, %s", n, orders.Load(), time.Since(start).Round(time.Millisecond))
	r.vacuum(ctx, p)
	// A rebuild reads what readers can see: wait out another session's
	// transaction that holds the data set back, or the check below counts
	// fewer orders than were written.
	if err := settle(ctx, p.store); err != nil {
		return err
	}
	rebuilder := func() (*projection.Runner, error) {
		return projection.New(p.store, projection.Options{Upcaster: order.NewRegistry()}, orderview.Projections()...)
	}
	runner, err := rebuilder()
	if err != nil {
		return err
	}
	if err := runner.Setup(ctx); err != nil {
		return err
	}
	// Each read model alone, then both as a rebuild of everything does
	// it: one pass over the log, both swapped in together.
	for _, label := range append(runner.Names(), "both") {
		r.jobs = append(r.jobs, job{workload: "W7", place: p, run: func(ctx context.Context, _ int) (Result, error) {
			runner, err := rebuilder() // on the store as it is open for this round
			if err != nil {
				return Result{}, err
			}
			names := []string{label}
			if label == "both" {
				names = runner.Names()
			}
			r.checkpoint(ctx, p)
			t0 := time.Now()
			progress := func(pr projection.Progress) {
				r.prog.update("W7 rebuild %s: %d/%d (%.0f events/s)", label, pr.Position, pr.HeadPosition, pr.EventsPerSec)
			}
			if label == "both" {
				err = runner.RebuildAll(ctx, nil, progress)
			} else {
				err = runner.Rebuild(ctx, label, progress)
			}
			return w7Result(ctx, p, label, names, n, orders.Load(), time.Since(t0), err), nil
		}})
	}
	return nil
}

// w7Result is the row of one W7 rebuild, checked for a summary row per order.
func w7Result(ctx context.Context, p *place, label string, names []string, events, orders int64, el time.Duration, err error) Result {
	res := Result{Workload: "W7", Case: label, Clients: 1, Ops: 1, Total: 1, Events: events, Seconds: el.Seconds(), OpsPerSec: 1 / el.Seconds(),
		EventsPerSec: float64(events) / el.Seconds(), P50: el, P99: el}
	if err == nil {
		for _, name := range names {
			if err = checkSummaries(ctx, p, name, orders); err != nil {
				break
			}
		}
	}
	if err != nil {
		res.Ops, res.Total, res.Errors, res.FirstError = 0, 0, 1, err.Error()
	}
	return res
}

// checkSummaries checks that a rebuilt order_summaries has a row per order.
func checkSummaries(ctx context.Context, p *place, name string, orders int64) error {
	if name != orderview.SummariesName {
		return nil
	}
	var got int64
	if err := p.store.SQLDB().QueryRowContext(ctx, "SELECT count(*) FROM "+orderview.SummariesName).Scan(&got); err != nil {
		return err
	}
	if got != orders {
		return fmt.Errorf("%s has %d rows after the rebuild, want %d", name, got, orders)
	}
	return nil
}

// settle returns once readers see every event committed so far (within a
// minute): on PostgreSQL an older transaction of another session holds
// newer commits back from readers until it ends.
func settle(ctx context.Context, s chronicle.Store) error {
	deadline := time.Now().Add(time.Minute)
	for {
		head, err := s.Head(ctx)
		if err != nil {
			return err
		}
		if head.Position >= head.Committed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("readers still see position %d of %d committed after a minute", head.Position, head.Committed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
