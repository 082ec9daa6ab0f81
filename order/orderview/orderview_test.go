package orderview_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/google/go-cmp/cmp"
)

// newRunner returns a runner of the order read models over b.
func newRunner(t testing.TB, b viewtest.Backend, opts projection.Options) *projection.Runner {
	t.Helper()
	opts.Upcaster = order.NewRegistry()
	if opts.PollInterval == 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	r, err := projection.New(b, opts, orderview.Projections()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs r until the test ends (or stop is called).
func start(t testing.TB, r *projection.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// caughtUp waits until every projection of r has applied the log's head.
func caughtUp(t testing.TB, r *projection.Runner, s chronicle.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// On PostgreSQL the head can be held back by a transaction in flight (a
	// projection's own commit, a NOTIFY): wait until it settles.
	for {
		for _, name := range r.Names() {
			if err := r.WaitFor(ctx, name, head.Checkpoint); err != nil {
				st, _ := r.Status(context.Background())
				t.Fatalf("WaitFor(%s, %+v): %v; status %+v", name, head.Checkpoint, err, st)
			}
		}
		again, err := s.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Settled: unchanged, and nothing committed is held back behind a
		// transaction in flight (a projection's commit, a NOTIFY).
		if again == head && again.Committed == again.Position {
			return
		}
		if again == head {
			time.Sleep(10 * time.Millisecond)
		}
		head = again
	}
}

func mustVerify(t testing.TB, r *projection.Runner) []projection.Difference {
	t.Helper()
	d, err := r.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return d
}

// Acceptance 1: a random workload verifies equal; one corrupted cell is
// reported exactly.
func TestVerify(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		r := newRunner(t, b, projection.Options{BatchSize: 37})
		stop := start(t, r)
		w := viewtest.NewWorkload(1, "ord_")
		if err := w.Run(ctx, b, 400); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)
		stop()
		if d := mustVerify(t, r); len(d) != 0 {
			t.Fatalf("Verify after workload: %d differences, first %v", len(d), d[0])
		}
		victim := w.Orders()[3]
		db := b.SQLDB()
		if _, err := db.ExecContext(ctx, r.Dialect().Rebind(`UPDATE order_summaries SET total = total + 1 WHERE order_id = $1`), victim); err != nil {
			t.Fatal(err)
		}
		got := mustVerify(t, r)
		if len(got) != 1 {
			t.Fatalf("Verify after corrupting %s.total: got %v, want exactly one difference", victim, got)
		}
		d := got[0]
		if d.Projection != "order_summaries" || d.Table != "order_summaries" || d.Key != victim || d.Column != "total" {
			t.Errorf("difference = %+v, want order_summaries[%s].total", d, victim)
		}
		// A missing history row is one difference too.
		if _, err := db.ExecContext(ctx, r.Dialect().Rebind(`DELETE FROM order_status_history WHERE order_id = $1 AND version = 1`), w.Orders()[5]); err != nil {
			t.Fatal(err)
		}
		if got := mustVerify(t, r); len(got) != 2 || got[1].Key != w.Orders()[5]+"@v1" || got[1].Stored != projection.Missing {
			t.Errorf("Verify after deleting an interval: %v", got)
		}
	})
}

// statusAt replays the log: each order's status from its events recorded
// at or before at.
func statusAt(t *testing.T, events []chronicle.RecordedEvent, at time.Time) map[order.Status]int64 {
	t.Helper()
	states := map[string]order.State{}
	reg := order.NewRegistry()
	for _, e := range events {
		if e.RecordedAt.After(at) {
			continue
		}
		u, err := reg.Upcast(e)
		if err != nil {
			t.Fatal(err)
		}
		s, err := order.Evolve(states[e.StreamID], u)
		if err != nil {
			t.Fatal(err)
		}
		states[e.StreamID] = s
	}
	out := map[order.Status]int64{}
	for _, s := range order.Statuses() {
		out[s] = 0
	}
	for _, s := range states {
		out[s.Status]++
	}
	return out
}

// Acceptance 5: counts at a dozen instants equal a replay up to each.
func TestStatusCountsAt(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		r := newRunner(t, b, projection.Options{BatchSize: 10})
		start(t, r)
		w := viewtest.NewWorkload(5, "o")
		if err := w.Run(ctx, b, 150); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)
		events, err := b.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		// Instants: before all, after all, and at and just before event
		// times spread over the history.
		first, last := events[0].RecordedAt, events[len(events)-1].RecordedAt
		instants := []time.Time{first.Add(-time.Second), last.Add(time.Second)}
		for i := 1; i <= 5; i++ {
			e := events[i*len(events)/6]
			instants = append(instants, e.RecordedAt, e.RecordedAt.Add(-time.Nanosecond))
		}
		reader := orderview.NewReader(b)
		for _, at := range instants {
			got, err := reader.StatusCounts(ctx, at)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(statusAt(t, events, at), got); diff != "" {
				t.Errorf("StatusCounts(%s) (-replay +read model):\n%s", at.Format(time.RFC3339Nano), diff)
			}
		}
	})
}

func TestGetAndList(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		r := newRunner(t, b, projection.Options{})
		start(t, r)
		w := viewtest.NewWorkload(9, "ord_")
		if err := w.Run(ctx, b, 120); err != nil {
			t.Fatal(err)
		}
		reader := orderview.NewReader(b)
		// Read-your-writes through the waiting primitive, no sleeps.
		id := w.Orders()[0]
		stream, _ := order.StreamID(id)
		v, err := b.StreamVersion(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := r.WaitForStream(wctx, orderview.SummariesName, stream, v); err != nil {
			t.Fatal(err)
		}
		got, err := reader.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		evs, _ := b.ReadStream(ctx, stream, chronicle.ReadStreamOptions{})
		var want order.State
		reg := order.NewRegistry()
		for _, e := range evs {
			u, _ := reg.Upcast(e)
			if want, err = order.Evolve(want, u); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Get(%s) (-fold +read model):\n%s", id, diff)
		}
		if _, err := reader.Get(ctx, "nope"); !errors.Is(err, chronicle.ErrNotFound) {
			t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
		}

		caughtUp(t, r, b)
		for _, f := range []orderview.Filter{{}, {Status: order.StatusCreated}, {CustomerID: "cust_3"}, {CustomerID: "cust_2", Status: order.StatusPaid}} {
			all, err := reader.List(ctx, orderview.Filter{Status: f.Status, CustomerID: f.CustomerID, Limit: orderview.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.IsSortedFunc(all.Items, func(a, b order.State) int { return -cmpState(a, b) }) {
				t.Errorf("List(%+v) not newest first", f)
			}
			for _, s := range all.Items {
				if (f.Status != "" && s.Status != f.Status) || (f.CustomerID != "" && s.CustomerID != f.CustomerID) {
					t.Errorf("List(%+v) returned %s (%s, %s)", f, s.OrderID, s.Status, s.CustomerID)
				}
			}
			var paged []order.State
			f.Limit = 7
			for {
				p, err := reader.List(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				paged = append(paged, p.Items...)
				if p.NextCursor == "" {
					break
				}
				f.Cursor = p.NextCursor
			}
			if len(paged) != len(all.Items) {
				t.Errorf("List(%+v) paged by 7: %d orders, want %d", f, len(paged), len(all.Items))
			}
		}
		if _, err := reader.List(ctx, orderview.Filter{Cursor: "!!"}); !errors.Is(err, orderview.ErrBadCursor) {
			t.Errorf("List(bad cursor) = %v, want ErrBadCursor", err)
		}
	})
}

func cmpState(a, b order.State) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	switch {
	case a.OrderID < b.OrderID:
		return -1
	case a.OrderID > b.OrderID:
		return 1
	}
	return 0
}

// Acceptance 6: rebuild under write load; queries answer throughout, and
// the result verifies.
func TestRebuildUnderLoad(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		r := newRunner(t, b, projection.Options{BatchSize: 50})
		start(t, r)
		if err := viewtest.NewWorkload(3, "pre").Run(ctx, b, 300); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)

		lctx, stopLoad := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var writeErr, queryErr atomic.Value
		var queries atomic.Int64
		wg.Go(func() {
			w := viewtest.NewWorkload(4, "load")
			for lctx.Err() == nil {
				if err := w.Step(lctx, b); err != nil && lctx.Err() == nil {
					writeErr.Store(err)
					return
				}
			}
		})
		reader := orderview.NewReader(b)
		ready := make(chan struct{})
		wg.Go(func() {
			defer func() {
				select {
				case <-ready:
				default:
					close(ready)
				}
			}()
			for lctx.Err() == nil {
				if _, err := reader.Get(lctx, "pre0"); err != nil && lctx.Err() == nil {
					queryErr.Store(fmt.Errorf("Get: %w", err))
					return
				}
				if _, err := reader.List(lctx, orderview.Filter{Status: order.StatusPaid, Limit: 5}); err != nil && lctx.Err() == nil {
					queryErr.Store(fmt.Errorf("List: %w", err))
					return
				}
				if _, err := reader.StatusCounts(lctx, time.Now()); err != nil && lctx.Err() == nil {
					queryErr.Store(fmt.Errorf("StatusCounts: %w", err))
					return
				}
				if queries.Add(1) == 1 {
					close(ready)
				}
			}
		})
		<-ready
		for _, name := range r.Names() {
			var last projection.Progress
			if err := r.Rebuild(ctx, name, func(p projection.Progress) { last = p }); err != nil {
				t.Fatalf("Rebuild(%s): %v", name, err)
			}
			if !last.Swapped || last.EventsDone == 0 {
				t.Errorf("Rebuild(%s): last progress %+v, want swapped after some events", name, last)
			}
		}
		// And both at once, in one pass and one swap.
		var swapped []string
		if err := r.RebuildAll(ctx, nil, func(p projection.Progress) {
			if p.Swapped {
				swapped = append(swapped, p.Projection)
			}
		}); err != nil {
			t.Fatalf("RebuildAll: %v", err)
		}
		if !slices.Equal(swapped, r.Names()) {
			t.Errorf("RebuildAll swapped %v, want %v", swapped, r.Names())
		}
		stopLoad()
		wg.Wait()
		if err, _ := writeErr.Load().(error); err != nil {
			t.Fatal(err)
		}
		if err, _ := queryErr.Load().(error); err != nil {
			t.Fatalf("a query failed during the rebuild: %v", err)
		}
		if queries.Load() == 0 {
			t.Error("no query completed during the rebuild")
		}
		caughtUp(t, r, b)
		if d := mustVerify(t, r); len(d) != 0 {
			t.Fatalf("Verify after rebuild: %d differences, first %v", len(d), d[0])
		}
	})
}

// plain hides the optional interfaces of a projection, so that Rebuild
// takes the generic path: Create, then Apply per page.
type plain struct{ projection.Projection }

// Rebuilds over many small pages, through Builder and Indexer and through
// the generic path, verify equal, as do the live read models they replace.
func TestRebuildPaged(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		// Several workloads interleave orders across pages and flushes.
		for i := range 3 {
			if err := viewtest.NewWorkload(uint64(20+i), fmt.Sprintf("w%d_", i)).Run(ctx, b, 150); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name string
			ps   []projection.Projection
		}{
			{"builder", orderview.Projections()},
			{"generic", []projection.Projection{plain{orderview.Summaries{}}, plain{orderview.StatusHistory{}}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, err := projection.New(b, projection.Options{Upcaster: order.NewRegistry(), RebuildBatchSize: 7}, tc.ps...)
				if err != nil {
					t.Fatal(err)
				}
				pages := map[string]int{}
				count := func(p projection.Progress) { pages[p.Projection]++ }
				if tc.name == "builder" {
					// Both in one pass.
					if err := r.RebuildAll(ctx, nil, count); err != nil {
						t.Fatalf("RebuildAll: %v", err)
					}
				} else {
					for _, name := range r.Names() {
						if err := r.Rebuild(ctx, name, count); err != nil {
							t.Fatalf("Rebuild(%s): %v", name, err)
						}
					}
				}
				for _, name := range r.Names() {
					if pages[name] < 10 {
						t.Errorf("rebuild of %s: %d progress reports, want many pages", name, pages[name])
					}
				}
				if d := mustVerify(t, r); len(d) != 0 {
					t.Fatalf("Verify after rebuild: %d differences, first %v", len(d), d[0])
				}
			})
		}
		// The rebuilt tables serve the queries: their indexes exist.
		reader := orderview.NewReader(b)
		if _, err := reader.List(ctx, orderview.Filter{Status: order.StatusPaid}); err != nil {
			t.Fatal(err)
		}
	})
}
