package projection_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
)

// readCounter counts the reads of each stream.
type readCounter struct {
	testbackends.Backend
	mu    sync.Mutex
	reads map[string]int
}

func (c *readCounter) ReadStream(ctx context.Context, stream string, opts chronicle.ReadStreamOptions) ([]chronicle.RecordedEvent, error) {
	c.mu.Lock()
	c.reads[stream]++
	c.mu.Unlock()
	return c.Backend.ReadStream(ctx, stream, opts)
}

func (c *readCounter) count(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[stream]
}

// Waiters for a version of one stream not written yet cost nothing while
// other streams are written: no reads of their stream, no wake-ups; and
// they return as soon as their stream reaches the version.
func TestStreamWaitersWakeOnlyForTheirStream(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		s := &readCounter{Backend: b, reads: map[string]int{}}
		r := newRunner(t, s, projection.Options{})
		start(t, r)
		for deadline := time.Now().Add(30 * time.Second); !status(t, r, orderview.SummariesName).Held; {
			if time.Now().After(deadline) {
				t.Fatal("the runner did not take its lease within 30 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		a, _ := order.StreamID("ord_a")
		evs, _ := order.Decide(order.State{}, order.Create{CustomerID: "c1", Items: []order.Item{{SKU: "A", Quantity: 1, UnitPrice: 5}}})
		if _, err := b.Append(ctx, a, chronicle.NoStream, viewtest.Encode(evs)); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)

		const waiters = 200
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		done := make(chan error, waiters)
		for range waiters {
			go func() { done <- r.WaitForStream(wctx, orderview.SummariesName, a, 2) }()
		}
		for deadline := time.Now().Add(30 * time.Second); s.count(a) < waiters; {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d waiters looked at their stream within 30 s", s.count(a), waiters)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Every waiter has registered and looked once; nothing wakes them
		// now but their stream.
		before := s.count(a)
		w := viewtest.NewWorkload(11, "other_")
		for range 50 {
			if err := w.Step(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		caughtUp(t, r, b)
		if got := s.count(a) - before; got != 0 {
			t.Errorf("%d waiters read their stream %d times while only other streams were written, want 0", waiters, got)
		}
		select {
		case err := <-done:
			t.Fatalf("a waiter returned (%v) before its stream reached the version", err)
		default:
		}

		evs = []order.Event{order.PaymentReceived{Method: "card", Amount: 5}}
		if _, err := b.Append(ctx, a, chronicle.Exact(1), viewtest.Encode(evs)); err != nil {
			t.Fatal(err)
		}
		for range waiters {
			if err := <-done; err != nil {
				t.Fatalf("WaitForStream: %v", err)
			}
		}
		got, err := orderview.NewReader(b).Get(ctx, "ord_a")
		if err != nil || got.Version != 2 {
			t.Errorf("read model after the waits = version %d, %v; want 2", got.Version, err)
		}
	})
}

// A waiter whose version the runner did not apply itself (the checkpoint
// moved past it: a skip here; a rebuild's swap, another runner) looks
// again and returns, rather than wait for its stream's next event.
func TestStreamWaiterAfterSkip(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		s := &readCounter{Backend: b, reads: map[string]int{}}
		sum := &breakable{Projection: orderview.Summaries{}}
		failed := make(chan projection.Failure, 1)
		r := newRunner(t, s, projection.Options{MaxAttempts: 1, Hooks: projection.Hooks{
			Failing: func(_ string, f projection.Failure, final bool) {
				if final {
					failed <- f
				}
			},
		}}, sum)
		start(t, r)
		for deadline := time.Now().Add(30 * time.Second); !status(t, r, orderview.SummariesName).Held; {
			if time.Now().After(deadline) {
				t.Fatal("the runner did not take its lease within 30 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		a, _ := order.StreamID("ord_a")
		evs, _ := order.Decide(order.State{}, order.Create{CustomerID: "c1", Items: []order.Item{{SKU: "A", Quantity: 1, UnitPrice: 5}}})
		if _, err := b.Append(ctx, a, chronicle.NoStream, viewtest.Encode(evs)); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- r.WaitForStream(wctx, orderview.SummariesName, a, 2) }()
		for deadline := time.Now().Add(30 * time.Second); s.count(a) < 1; {
			if time.Now().After(deadline) {
				t.Fatal("the waiter did not look at its stream within 30 s")
			}
			time.Sleep(10 * time.Millisecond)
		}

		sum.breakOn(a)
		evs = []order.Event{order.PaymentReceived{Method: "card", Amount: 5}}
		if _, err := b.Append(ctx, a, chronicle.Exact(1), viewtest.Encode(evs)); err != nil {
			t.Fatal(err)
		}
		<-failed
		if err := r.Skip(ctx, orderview.SummariesName); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("WaitForStream after the skip: %v", err)
		}
	})
}
