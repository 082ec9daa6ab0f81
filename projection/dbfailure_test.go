package projection_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// killing terminates the database connection of its first n applies, from
// inside their transaction: a real connection loss at the worst moment.
type killing struct {
	breakable
	n atomic.Int32
}

func (p *killing) Apply(ctx context.Context, tx *projection.Tx, d projection.Dialect, t projection.Tables, events []chronicle.RecordedEvent) error {
	if p.n.Add(-1) >= 0 {
		_, err := tx.ExecContext(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
		return fmt.Errorf("apply: connection terminated: %w", err)
	}
	return p.breakable.Apply(ctx, tx, d, t, events)
}

// Failures of the database (a connection killed mid-apply, the write lock
// held by another process) are retried for as long as they last: no event
// is marked failed or skipped for them, and the projection catches up once
// the database is fine. An event that its projection cannot apply still
// stops it after MaxAttempts.
func TestDatabaseFailureIsNotPoison(t *testing.T) {
	const attempts = 2
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "chronicle.db")
		open := func() *sqlitestore.Store {
			// A short busy timeout, so each attempt meets SQLITE_BUSY soon.
			s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{BusyTimeout: 1000, Synchronous: "NORMAL"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		s, other := open(), open() // other: a second process on the file
		sum := &killing{breakable: breakable{Projection: orderview.Summaries{}}}
		dbFailureIsNotPoison(t, s, sum, attempts, func(ctx context.Context) func() {
			// BEGIN IMMEDIATE: the other process holds the write lock.
			tx, err := other.SQLDB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Released once the runner's attempts have failed busy (the
			// batch at 1 s, then each of the single event's attempts 1 s
			// later), while the failure's record waits for the lock: before
			// the fix, the event was then marked failed.
			done := make(chan struct{})
			timer := time.AfterFunc(3500*time.Millisecond, func() { tx.Rollback(); close(done) })
			return func() {
				if timer.Stop() {
					tx.Rollback()
					return
				}
				<-done
			}
		})
	})
	t.Run("postgres", func(t *testing.T) {
		b := testbackends.Postgres(t, testbackends.Options{})
		sum := &killing{breakable: breakable{Projection: orderview.Summaries{}}}
		dbFailureIsNotPoison(t, b, sum, attempts, func(context.Context) func() {
			sum.n.Store(3 * attempts)
			return func() {}
		})
	})
}

func dbFailureIsNotPoison(t *testing.T, b testbackends.Backend, sum *killing, attempts int, inject func(context.Context) (release func())) {
	ctx := context.Background()
	if err := viewtest.NewWorkload(9, "ord_").Run(ctx, b, 40); err != nil {
		t.Fatal(err)
	}
	failed := make(chan projection.Failure, 10)
	r := newRunner(t, b, projection.Options{
		BatchSize: 10, MaxAttempts: attempts, Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Hooks: projection.Hooks{Failing: func(_ string, f projection.Failure, final bool) {
			if final {
				failed <- f
			}
		}},
	}, sum)

	release := inject(ctx)
	start(t, r)
	caught := make(chan error, 1)
	go func() { caught <- waitHead(t, r, b, 60*time.Second) }()
	select {
	case f := <-failed:
		t.Fatalf("projection stopped at %s v%d after %d attempts although the failures were the database's: %s",
			f.StreamID, f.Version, f.Attempts, f.Error)
	case err := <-caught:
		if err != nil {
			t.Fatalf("not caught up after the database recovered: %v; status %+v", err, mustStatus(t, r))
		}
	}
	release()
	if sum.n.Load() >= 0 {
		t.Fatalf("%d connection kills not used: the test injected less than it meant to", sum.n.Load())
	}
	for _, st := range mustStatus(t, r) {
		if st.Status != projection.StatusRunning || st.Failure != nil {
			t.Errorf("status %+v, want running", st)
		}
		skipped, err := r.SkippedEvents(ctx, st.Name)
		if err != nil || len(skipped) != 0 {
			t.Errorf("%s: skipped events %+v, %v; want none", st.Name, skipped, err)
		}
	}
	verifyEqual(t, r)

	// A real poison event still stops the projection after the attempts.
	poison, _ := order.StreamID("poison")
	sum.breakOn(poison)
	res, err := b.Append(ctx, poison, chronicle.NoStream, viewtest.Encode([]order.Event{order.OrderCreated{CustomerID: "c", Currency: "USD", Items: []order.Item{}, Total: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-failed:
		if f.StreamID != poison || f.Position != res.FirstPosition || f.Attempts != attempts {
			t.Errorf("failure = %+v, want %s v1 after %d attempts", f, poison, attempts)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the poison event did not stop the projection; status %+v", mustStatus(t, r))
	}
	if err := r.Skip(ctx, orderview.SummariesName); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, r, b)
	verifyEqual(t, r)
}
