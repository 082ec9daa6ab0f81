package aggregate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/order"
	"github.com/google/go-cmp/cmp"
)

// TestOldSchemaReadsAsCurrent: a v1 OrderCreated appended raw loads in the
// current shape (currency USD), through the repository and through the
// global log.
func TestOldSchemaReadsAsCurrent(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		v1 := []chronicle.Event{{Type: order.TypeOrderCreated, SchemaVersion: 1, Data: json.RawMessage(`{"customer_id":"cust_456","total":9999}`)}}
		if _, err := b.Append(ctx, "order-old1", chronicle.NoStream, v1); err != nil {
			t.Fatal(err)
		}
		repo := newOrderRepo(b)
		l, err := repo.Load(ctx, "old1")
		if err != nil {
			t.Fatal(err)
		}
		if l.State.Currency != "USD" || l.State.Total != 9999 || l.State.Items == nil || l.State.CustomerID != "cust_456" || l.Version != 1 {
			t.Errorf("loaded %+v", l.State)
		}
		// It behaves as a current order: pay the total, in USD.
		res := handle(t, repo, "old1", order.Pay{Method: "card", Amount: 9999})
		if res.State.Status != order.StatusPaid || res.Version != 2 {
			t.Errorf("after pay: %+v", res.State)
		}

		reg := order.NewRegistry()
		all := readAllEventually(t, b, 2)
		if all[0].SchemaVersion != 1 {
			t.Fatalf("stored schema version %d: the old event was rewritten", all[0].SchemaVersion)
		}
		if all, err = reg.UpcastAll(all); err != nil {
			t.Fatal(err)
		}
		ev, err := order.Decode(all[0])
		if err != nil {
			t.Fatal(err)
		}
		want := order.OrderCreated{CustomerID: "cust_456", Currency: "USD", Items: []order.Item{}, Total: 9999}
		if diff := cmp.Diff(want, ev); diff != "" {
			t.Errorf("global log event (-want +got):\n%s", diff)
		}
	})
}

func TestUnknownSchemaVersionIsAClearError(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		v9 := []chronicle.Event{{Type: order.TypeOrderCreated, SchemaVersion: 9, Data: json.RawMessage(`{}`)}}
		if _, err := b.Append(ctx, "order-future", chronicle.NoStream, v9); err != nil {
			t.Fatal(err)
		}
		_, err := newOrderRepo(b).Load(ctx, "future")
		if err == nil || !strings.Contains(err.Error(), `stream "order-future" version 1: event OrderCreated schema v9`) {
			t.Errorf("err = %v", err)
		}
	})
}

// TestOldSnapshotSchemaIgnoredAndReplaced: a snapshot of another schema
// version is never used; the next load past the interval replaces it.
func TestOldSnapshotSchemaIgnoredAndReplaced(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		setup := newOrderRepo(b, aggregate.WithSnapshotEvery(0))
		handle(t, setup, "short", order.Create{CustomerID: "c"})
		handle(t, setup, "long", order.Create{CustomerID: "c"})
		for i := range 59 {
			handle(t, setup, "long", order.AddItem{SKU: fmt.Sprintf("S%d", i%7), Quantity: 1, UnitPrice: int64(100 + i%7)})
		}
		bogus := json.RawMessage(`{"order_id":"x","status":"delivered","total":1}`)
		for stream, v := range map[string]int64{"order-short": 1, "order-long": 60} {
			if err := b.SaveSnapshot(ctx, chronicle.Snapshot{StreamID: stream, Version: v, SchemaVersion: 1, Data: bogus}); err != nil {
				t.Fatal(err)
			}
		}
		def := order.Definition()
		def.SnapshotSchema = 2
		var logs bytes.Buffer
		repo := aggregate.New(b, b, order.NewRegistry(), def, aggregate.WithSnapshotEvery(50),
			aggregate.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		reg := order.NewRegistry()
		for _, tc := range []struct {
			id       string
			replaced bool
		}{{"short", false}, {"long", true}} {
			l, err := repo.Load(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(replay(t, b, reg, tc.id, 0), l.State); diff != "" || l.SnapshotVersion != 0 {
				t.Errorf("%s: used the old snapshot (from v%d); (-replay +loaded):\n%s", tc.id, l.SnapshotVersion, diff)
			}
			snap, err := b.LoadSnapshot(ctx, "order-"+tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if got := snap.SchemaVersion == 2; got != tc.replaced {
				t.Errorf("%s: snapshot now schema v%d at version %d; want replaced=%v", tc.id, snap.SchemaVersion, snap.Version, tc.replaced)
			}
		}
		if st := repo.Stats(); st.SnapshotsIgnored != 2 || st.SnapshotsWritten != 1 {
			t.Errorf("stats %+v", st)
		}
		// The replacement is used from now on.
		l, err := repo.Load(ctx, "long")
		if err != nil || l.SnapshotVersion != 60 {
			t.Errorf("second load: from snapshot v%d, %v", l.SnapshotVersion, err)
		}
	})
}

// TestTimeTravel: LoadVersion(k) and LoadAsOf(T) give the state after
// exactly the events up to k, or recorded at or before T.
func TestTimeTravel(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		for _, every := range []int{0, 2} {
			repo := newOrderRepo(b, aggregate.WithSnapshotEvery(every))
			id := fmt.Sprintf("tt%d", every)
			handle(t, repo, id,
				order.Create{CustomerID: "c", Items: []order.Item{{SKU: "A", Quantity: 1, UnitPrice: 100}}},
				order.AddItem{SKU: "B", Quantity: 2, UnitPrice: 50},
				order.RemoveItem{SKU: "A"},
				order.Pay{Method: "card", Amount: 100},
				order.Ship{Carrier: "ups", Tracking: "1Z"},
				order.Deliver{SignedBy: "me"},
			)
			events, err := b.ReadStream(ctx, "order-"+id, chronicle.ReadStreamOptions{})
			if err != nil {
				t.Fatal(err)
			}
			reg := order.NewRegistry()
			for k := int64(1); k <= int64(len(events)); k++ {
				want := replay(t, b, reg, id, k)
				l, err := repo.LoadVersion(ctx, id, k)
				if err != nil {
					t.Fatalf("LoadVersion(%d): %v", k, err)
				}
				if diff := cmp.Diff(want, l.State); diff != "" || l.Version != k {
					t.Errorf("LoadVersion(%d) = v%d (-want +got):\n%s", k, l.Version, diff)
				}
				at := events[k-1].RecordedAt
				// The state at T includes every event recorded at or before T,
				// also later ones recorded in the same instant.
				last := k
				for last < int64(len(events)) && !events[last].RecordedAt.After(at) {
					last++
				}
				l, err = repo.LoadAsOf(ctx, id, at)
				if err != nil {
					t.Fatalf("LoadAsOf(%v): %v", at, err)
				}
				if diff := cmp.Diff(replay(t, b, reg, id, last), l.State); diff != "" || l.Version != last {
					t.Errorf("LoadAsOf(event %d's time) = v%d (-want +got):\n%s", k, l.Version, diff)
				}
			}
			for _, v := range []int64{0, -1, int64(len(events)) + 1} {
				if _, err := repo.LoadVersion(ctx, id, v); !errors.Is(err, aggregate.ErrNotFound) {
					t.Errorf("LoadVersion(%d) err = %v, want not found", v, err)
				}
			}
			before := events[0].RecordedAt.Add(-time.Microsecond)
			if _, err := repo.LoadAsOf(ctx, id, before); !errors.Is(err, aggregate.ErrNotFound) {
				t.Errorf("LoadAsOf(before the first event) err = %v, want not found", err)
			}
			for name, f := range map[string]func() error{
				"Load":        func() error { _, err := repo.Load(ctx, "nope"); return err },
				"LoadVersion": func() error { _, err := repo.LoadVersion(ctx, "nope", 1); return err },
				"LoadAsOf":    func() error { _, err := repo.LoadAsOf(ctx, "nope", time.Now()); return err },
			} {
				if err := f(); !errors.Is(err, aggregate.ErrNotFound) || !errors.Is(err, chronicle.ErrStreamNotFound) {
					t.Errorf("%s of a missing order: err = %v, want not found", name, err)
				}
			}
		}
	})
}

// TestRacingCommands: 20 concurrent item adds to one order all land, with
// contiguous versions; with an exact expected version exactly one does.
func TestRacingCommands(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		repo := newOrderRepo(b, aggregate.WithSnapshotEvery(5))
		handle(t, repo, "race", order.Create{CustomerID: "c"})
		const n = 20
		run := func(opts ...aggregate.CommandOption) []error {
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					_, errs[i] = repo.Handle(ctx, "race", order.AddItem{SKU: fmt.Sprintf("S%d", i), Quantity: 1, UnitPrice: 10}, opts...)
				})
			}
			wg.Wait()
			return errs
		}
		for i, err := range run() {
			if err != nil {
				t.Errorf("add %d: %v", i, err)
			}
		}
		events, err := b.ReadStream(ctx, "order-race", chronicle.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != n+1 {
			t.Fatalf("%d events, want %d", len(events), n+1)
		}
		for i, e := range events {
			if e.Version != int64(i+1) {
				t.Fatalf("event %d has version %d", i, e.Version)
			}
		}
		l, err := repo.Load(ctx, "race")
		if err != nil || len(l.State.Items) != n || l.State.Total != n*10 {
			t.Fatalf("state %+v, %v", l.State, err)
		}

		landed := 0
		for _, err := range run(aggregate.ExpectVersion(n + 1)) {
			switch {
			case err == nil:
				landed++
			case !errors.Is(err, chronicle.ErrWrongVersion):
				t.Errorf("unexpected error %v", err)
			}
		}
		if landed != 1 {
			t.Errorf("%d commands with the same expected version landed, want 1", landed)
		}
		if v, _ := b.StreamVersion(ctx, "order-race"); v != n+2 {
			t.Errorf("version %d, want %d", v, n+2)
		}
	})
}

// TestExpectVersion: a stale expected version is a conflict, checked before
// the business rules, and never retried.
func TestExpectVersion(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		repo := newOrderRepo(b)
		handle(t, repo, "ev", order.Create{CustomerID: "c", Total: new(int64(500))}, order.Cancel{})
		// Paying a cancelled order breaks a rule, but the version is checked first.
		_, err := repo.Handle(ctx, "ev", order.Pay{Method: "card", Amount: 500}, aggregate.ExpectVersion(1))
		var ce *chronicle.ConflictError
		if !errors.As(err, &ce) || ce.Actual != 2 || ce.Expected != chronicle.Exact(1) {
			t.Errorf("stale: err = %v, want a conflict at version 2", err)
		}
		_, err = repo.Handle(ctx, "ev", order.Pay{Method: "card", Amount: 500}, aggregate.ExpectVersion(2))
		if !errors.Is(err, &order.RuleError{Status: order.StatusCancelled}) {
			t.Errorf("current: err = %v, want the rule violation", err)
		}
		_, err = repo.Handle(ctx, "missing", order.Cancel{}, aggregate.ExpectVersion(3))
		if !errors.As(err, &ce) || ce.Actual != 0 {
			t.Errorf("missing: err = %v, want a conflict at version 0", err)
		}
		res, err := repo.Handle(ctx, "new", order.Create{CustomerID: "c"}, aggregate.ExpectVersion(0))
		if err != nil || res.Version != 1 {
			t.Errorf("create with version 0: %+v, %v", res, err)
		}
		if _, err := repo.Handle(ctx, "new", order.Create{CustomerID: "c"}); !errors.Is(err, order.ErrAlreadyExists) {
			t.Errorf("create again: err = %v", err)
		}
		if _, err := repo.Handle(ctx, "bad id", order.Create{CustomerID: "c"}); !errors.Is(err, &order.InvalidError{Field: "order_id"}) {
			t.Errorf("bad id: err = %v", err)
		}
	})
}

// TestIdempotentCommands: a command retried with the same idempotency key or
// event ids appends nothing and returns the first result again.
func TestIdempotentCommands(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		repo := newOrderRepo(b, aggregate.WithSnapshotEvery(1))
		key := aggregate.IdempotencyKey("req-1")
		first, err := repo.Handle(ctx, "idem", order.Create{CustomerID: "c"}, key)
		if err != nil {
			t.Fatal(err)
		}
		handle(t, repo, "idem", order.AddItem{SKU: "A", Quantity: 1, UnitPrice: 5})
		again, err := repo.Handle(ctx, "idem", order.Create{CustomerID: "c"}, key)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if !again.Replayed || again.Version != 1 || len(again.Events) != 1 || again.Events[0].ID != first.Events[0].ID {
			t.Errorf("retry: replayed=%v version=%d events=%d", again.Replayed, again.Version, len(again.Events))
		}
		if diff := cmp.Diff(first.State, again.State); diff != "" {
			t.Errorf("retry state (-first +again):\n%s", diff)
		}
		if first.Events[0].ID != aggregate.IdempotentEventID("order-idem", "req-1", 0) {
			t.Errorf("event id %s not derived from the key", first.Events[0].ID)
		}

		id := strings.ToUpper(chronicle.NewEventID()) // ids are canonicalised
		pay := order.Pay{Method: "card", Amount: 5}
		if _, err := repo.Handle(ctx, "idem", pay, aggregate.EventIDs(id)); err != nil {
			t.Fatal(err)
		}
		again, err = repo.Handle(ctx, "idem", pay, aggregate.EventIDs(id))
		if err != nil || !again.Replayed || again.Version != 3 || again.State.Status != order.StatusPaid {
			t.Errorf("pay retry: %+v, %v", again, err)
		}
		if v, _ := b.StreamVersion(ctx, "order-idem"); v != 3 {
			t.Errorf("version %d, want 3", v)
		}
		if _, err := repo.Handle(ctx, "idem", order.Cancel{}, aggregate.EventIDs("not-a-uuid")); !errors.Is(err, chronicle.ErrInvalid) {
			t.Errorf("bad event id: err = %v", err)
		}
	})
}

// TestEventIDsRetryAfterLaterEvents: a command retried with its event ids
// after other commands changed the aggregate gets its own first result
// again (the state right after its events, at their version), whether it
// was given just enough ids or spare ones, and whether its events were the
// stream's first or came later.
func TestEventIDsRetryAfterLaterEvents(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		for _, spare := range []int{0, 3} {
			for _, cached := range []bool{false, true} {
				id := fmt.Sprintf("later-%d-%v", spare, cached)
				var opts []aggregate.Option
				if cached {
					opts = append(opts, aggregate.WithStateCache(16))
				}
				repo := newOrderRepo(b, opts...)
				ids := func() aggregate.CommandOption {
					out := make([]string, 1+spare)
					for i := range out {
						out[i] = chronicle.NewEventID()
					}
					return aggregate.EventIDs(out...)
				}
				create, add := ids(), ids()
				cmds := []struct {
					cmd order.Command
					opt aggregate.CommandOption
				}{
					{order.Create{CustomerID: "c"}, create},
					{order.AddItem{SKU: "A", Quantity: 1, UnitPrice: 5}, add},
				}
				var firsts []aggregate.Result[order.State]
				for _, c := range cmds {
					res, err := repo.Handle(ctx, id, c.cmd, c.opt)
					if err != nil {
						t.Fatalf("%s: %T: %v", id, c.cmd, err)
					}
					firsts = append(firsts, res)
				}
				// More later events than the command has ids, spare ones included.
				const later = 5
				for i := range later {
					handle(t, repo, id, order.AddItem{SKU: fmt.Sprintf("B%d", i), Quantity: 2, UnitPrice: 7})
				}
				for i, c := range cmds {
					again, err := repo.Handle(ctx, id, c.cmd, c.opt)
					if err != nil {
						t.Errorf("%s: retry of %T: %v", id, c.cmd, err)
						continue
					}
					first := firsts[i]
					if !again.Replayed || again.Version != first.Version || len(again.Events) != 1 || again.Events[0].ID != first.Events[0].ID {
						t.Errorf("%s: retry of %T: replayed=%v version=%d events=%d, want replayed at version %d with its event",
							id, c.cmd, again.Replayed, again.Version, len(again.Events), first.Version)
					}
					if diff := cmp.Diff(first.State, again.State); diff != "" {
						t.Errorf("%s: retry of %T: state (-first +again):\n%s", id, c.cmd, diff)
					}
				}
				if v, _ := b.StreamVersion(ctx, "order-"+id); v != int64(len(cmds)+later) {
					t.Errorf("%s: version %d after the retries, want %d", id, v, len(cmds)+later)
				}
			}
		}
	})
}

func TestMetadata(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		res, err := newOrderRepo(b).Handle(ctx, "meta", order.Create{CustomerID: "c"},
			aggregate.Correlation("corr-1", "cause-1"), aggregate.Metadata(map[string]string{"request_hash": "abc", "empty": ""}))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		if err := json.Unmarshal(res.Events[0].Metadata, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"correlation_id": "corr-1", "causation_id": "cause-1", "request_hash": "abc"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("metadata (-want +got):\n%s", diff)
		}
	})
}

// failingSnapshots is a snapshot store whose every call fails.
type failingSnapshots struct{ chronicle.SnapshotStore }

var errDiskFull = errors.New("disk full")

func (failingSnapshots) SaveSnapshot(context.Context, chronicle.Snapshot) error { return errDiskFull }
func (failingSnapshots) LoadSnapshot(context.Context, string) (chronicle.Snapshot, error) {
	return chronicle.Snapshot{}, errDiskFull
}

// TestSnapshotFailuresNeverFailCommands: snapshots are best effort; their
// failures are logged and counted.
func TestSnapshotFailuresNeverFailCommands(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		var logs bytes.Buffer
		repo := aggregate.New(b, failingSnapshots{b}, order.NewRegistry(), order.Definition(),
			aggregate.WithSnapshotEvery(1), aggregate.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		res := handle(t, repo, "snapfail", order.Create{CustomerID: "c"}, order.AddItem{SKU: "A", Quantity: 1, UnitPrice: 1})
		if res.Version != 2 {
			t.Errorf("version %d", res.Version)
		}
		if st := repo.Stats(); st.SnapshotFailures < 2 || st.SnapshotsWritten != 0 {
			t.Errorf("stats %+v", st)
		}
		if !strings.Contains(logs.String(), "snapshot write failed") || !strings.Contains(logs.String(), "disk full") {
			t.Errorf("logs: %s", logs.String())
		}
	})
}

// readAllEventually reads the global log until it holds n events. On
// PostgreSQL a committed event becomes readable only once every older
// transaction of the cluster has ended (DESIGN.md invariant 4), and other
// tests share the server, so the read waits for that rather than assuming it.
func readAllEventually(t *testing.T, b testbackends.Backend, n int) []chronicle.RecordedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	notify := b.Notify(ctx)
	poll := time.NewTicker(10 * time.Millisecond) // xmin also moves on other schemas' commits, which do not notify us
	defer poll.Stop()
	for {
		all, err := b.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) >= n {
			return all
		}
		select {
		case <-ctx.Done():
			t.Fatalf("global log has %d events, want %d", len(all), n)
		case <-notify:
		case <-poll.C:
		}
	}
}
