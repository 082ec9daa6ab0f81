package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-es/chronicle"
)

func ev(typ, data string) chronicle.Event {
	return chronicle.Event{Type: typ, Data: json.RawMessage(data)}
}

func TestAppendAndRead(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	// Byte-identical round trip: key order, spacing, escapes and big numbers
	// are kept as appended (json, not jsonb).
	data := `{"z":1, "a":[1,2,  3],"u":"\u00e9\ud83d\ude00","n":123456789012345678901234567890}`
	meta := `{"correlation_id":"c1",  "causation_id":"c0"}`
	res, err := s.Append(ctx, "order-1", chronicle.NoStream, []chronicle.Event{
		{Type: "OrderCreated", Data: json.RawMessage(data), Metadata: json.RawMessage(meta)},
		ev("ItemAdded", `{"sku":"a"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstVersion != 1 || res.LastVersion != 2 || res.LastPosition <= res.FirstPosition {
		t.Fatalf("result = %+v", res)
	}
	got, err := s.ReadStream(ctx, "order-1", chronicle.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2", len(got))
	}
	if string(got[0].Data) != data || string(got[0].Metadata) != meta || got[1].Metadata != nil {
		t.Errorf("round trip: data %s meta %s / %s", got[0].Data, got[0].Metadata, got[1].Metadata)
	}
	if got[0].StreamType != "order" || got[0].SchemaVersion != 1 || got[0].Position != res.FirstPosition || got[1].Position != res.LastPosition {
		t.Errorf("recorded = %+v", got[0])
	}
	if got[0].RecordedAt.After(got[1].RecordedAt) || got[0].RecordedAt.Location() != got[0].RecordedAt.UTC().Location() {
		t.Errorf("recorded at %v then %v", got[0].RecordedAt, got[1].RecordedAt)
	}
	settled(t, s) // another session's transaction may hold readers back
	all, err := s.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != got[0].ID || all[1].ID != got[1].ID {
		t.Fatalf("read all = %+v", all)
	}
	h, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Checkpoint != all[1].Checkpoint() || h.Position != res.LastPosition {
		t.Errorf("head = %+v, want %+v", h, all[1].Checkpoint())
	}
	e, err := s.EventByID(ctx, strings.ToUpper(got[1].ID))
	if err != nil || e.ID != got[1].ID {
		t.Errorf("EventByID = %+v, %v", e, err)
	}
	if _, err := s.ReadStream(ctx, "order-none", chronicle.ReadStreamOptions{}); !errors.Is(err, chronicle.ErrStreamNotFound) {
		t.Errorf("missing stream: err = %v, want ErrStreamNotFound", err)
	}
	_, err = s.Append(ctx, "order-1", chronicle.ExpectedVersion(1), []chronicle.Event{ev("X", `{}`)})
	var ce *chronicle.ConflictError
	if !errors.As(err, &ce) || ce.Actual != 2 || ce.Expected != chronicle.ExpectedVersion(1) || !errors.Is(err, chronicle.ErrWrongVersion) {
		t.Errorf("conflict: err = %v", err)
	}
}

func TestIdempotentRetry(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	evs := []chronicle.Event{ev("A", `{"a":1}`), ev("B", `{"b":2}`)}
	evs[0].ID, evs[1].ID = chronicle.NewEventID(), chronicle.NewEventID()
	first, err := s.Append(ctx, "s-1", chronicle.NoStream, evs)
	if err != nil {
		t.Fatal(err)
	}
	for _, exp := range []chronicle.ExpectedVersion{chronicle.NoStream, chronicle.Any} {
		again, err := s.Append(ctx, "s-1", exp, evs)
		if err != nil || again != first {
			t.Errorf("retry with %s = %+v, %v; want %+v", exp, again, err, first)
		}
	}
	if v, _ := s.StreamVersion(ctx, "s-1"); v != 2 {
		t.Errorf("version after retries = %d, want 2", v)
	}
	other := []chronicle.Event{evs[0], evs[1]}
	other[1].Data = json.RawMessage(`{"b":3}`)
	for name, tc := range map[string]struct {
		stream string
		exp    chronicle.ExpectedVersion
		evs    []chronicle.Event
	}{
		"other content": {"s-1", chronicle.NoStream, other},
		"partial":       {"s-1", chronicle.Exact(2), []chronicle.Event{evs[0]}},
		"overlap":       {"s-1", chronicle.Exact(2), []chronicle.Event{evs[1], ev("C", `{}`)}},
		"other stream":  {"s-2", chronicle.NoStream, evs},
		"other place":   {"s-1", chronicle.ExpectedVersion(1), evs},
	} {
		if _, err := s.Append(ctx, tc.stream, tc.exp, tc.evs); !errors.Is(err, chronicle.ErrDuplicateEvent) {
			t.Errorf("%s: err = %v, want ErrDuplicateEvent", name, err)
		}
	}
	if v, _ := s.StreamVersion(ctx, "s-1"); v != 2 {
		t.Errorf("version = %d, want 2", v)
	}
}

// TestGroupCommitIsolation sends appends with every outcome at once, so that
// they share batches: each must get its own answer, and a failing one must
// not take others down with it.
func TestGroupCommitIsolation(t *testing.T) {
	for _, hook := range []bool{false, true} {
		t.Run(fmt.Sprintf("hook=%v", hook), func(t *testing.T) {
			opts := Options{}
			if hook {
				opts.BeforeCommit = func(stream string, _ []chronicle.Event) error {
					if strings.HasPrefix(stream, "fail-") {
						return errors.New("injected")
					}
					return nil
				}
			}
			s := openTest(t, opts)
			ctx := context.Background()
			if _, err := s.Append(ctx, "old-1", chronicle.NoStream, []chronicle.Event{ev("A", `{}`)}); err != nil {
				t.Fatal(err)
			}
			shared := chronicle.NewEventID()
			const n = 64
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					var err error
					switch i % 4 {
					case 0: // new stream: succeeds
						_, err = s.Append(ctx, fmt.Sprintf("new-%d", i), chronicle.NoStream, []chronicle.Event{ev("A", `{}`), ev("B", `{}`)})
					case 1: // conflict
						_, err = s.Append(ctx, "old-1", chronicle.NoStream, []chronicle.Event{ev("A", `{}`)})
					case 2: // same event id into different streams: one wins
						e := ev("A", `{}`)
						e.ID = shared
						_, err = s.Append(ctx, fmt.Sprintf("dup-%d", i), chronicle.NoStream, []chronicle.Event{e})
					case 3: // injected failure when hooked, else success
						_, err = s.Append(ctx, fmt.Sprintf("fail-%d", i), chronicle.Any, []chronicle.Event{ev("A", `{}`)})
					}
					errs[i] = err
				})
			}
			wg.Wait()
			dupWins := 0
			for i, err := range errs {
				switch i % 4 {
				case 0:
					if err != nil {
						t.Errorf("append %d: %v", i, err)
					}
				case 1:
					var ce *chronicle.ConflictError
					if !errors.As(err, &ce) || ce.Actual != 1 {
						t.Errorf("append %d: err = %v, want conflict at 1", i, err)
					}
				case 2:
					if err == nil {
						dupWins++
					} else if !errors.Is(err, chronicle.ErrDuplicateEvent) {
						t.Errorf("append %d: err = %v, want ErrDuplicateEvent", i, err)
					}
				case 3:
					if hook != (err != nil) {
						t.Errorf("append %d: err = %v", i, err)
					}
				}
			}
			if dupWins != 1 {
				t.Errorf("%d appends of the shared id succeeded, want 1", dupWins)
			}
			want := 1 + 16*2 + 1
			if !hook {
				want += 16
			}
			// Another session's transaction anywhere in the cluster (a
			// parallel test package) may hold the gap-safe horizon for a
			// moment: wait for the log to show what committed.
			var all []chronicle.RecordedEvent
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				var err error
				if all, err = s.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 1000}); err != nil {
					t.Fatal(err)
				}
				if len(all) >= want || time.Now().After(deadline) {
					break
				}
			}
			if len(all) != want {
				t.Errorf("log has %d events, want %d", len(all), want)
			}
			for i := 1; i < len(all); i++ {
				if !all[i-1].Checkpoint().Before(all[i].Checkpoint()) {
					t.Fatalf("log out of order at %d", i)
				}
				if all[i].StreamID == all[i-1].StreamID && all[i].Version != all[i-1].Version+1 && all[i].TxID == all[i-1].TxID {
					t.Errorf("versions within one append out of position order: %+v", all[i-1:i+1])
				}
			}
		})
	}
}

// TestOutOfOrderCommit is issue 2 acceptance item 5 on PostgreSQL: append A
// takes a lower position and stays open while B commits; a reader of the
// global log sees nothing past A's place until A ends, then A and B once
// each in order, or just B at once when A rolls back.
func TestOutOfOrderCommit(t *testing.T) {
	for _, commitA := range []bool{true, false} {
		t.Run(fmt.Sprintf("commitA=%v", commitA), func(t *testing.T) {
			entered := make(chan struct{})
			release := make(chan error)
			s := openTest(t, Options{BeforeCommit: func(stream string, _ []chronicle.Event) error {
				if stream != "a-1" {
					return nil
				}
				close(entered)
				return <-release
			}})
			ctx := context.Background()
			if _, err := s.Append(ctx, "before-1", chronicle.NoStream, []chronicle.Event{ev("X", `{}`)}); err != nil {
				t.Fatal(err)
			}
			// Another session's transaction anywhere in the cluster (a
			// parallel test package) may hold the gap-safe horizon for a
			// moment: wait until the event shows.
			var seen []chronicle.RecordedEvent
			var err error
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				seen, err = s.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{})
				if err != nil || len(seen) == 1 || time.Now().After(deadline) {
					break
				}
			}
			if err != nil || len(seen) != 1 {
				t.Fatalf("first read = %v, %v", seen, err)
			}
			cp := seen[0].Checkpoint()

			type result struct {
				res chronicle.AppendResult
				err error
			}
			aDone := make(chan result, 1)
			go func() {
				res, err := s.Append(ctx, "a-1", chronicle.NoStream, []chronicle.Event{ev("A", `{}`)})
				aDone <- result{res, err}
			}()
			<-entered // A has its position and is still open; B goes through another committer
			b, err := s.Append(ctx, "b-1", chronicle.NoStream, []chronicle.Event{ev("B", `{}`)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.ReadAll(ctx, cp, chronicle.ReadAllOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 0 {
				t.Fatalf("while A is open the reader got %d events past it: %+v", len(got), got)
			}
			if h, err := s.Head(ctx); err != nil || h.Checkpoint != cp {
				t.Errorf("head while A is open = %+v, %v; want %+v", h, err, cp)
			}

			if commitA {
				release <- nil
			} else {
				release <- errors.New("injected rollback")
			}
			a := <-aDone
			if commitA != (a.err == nil) {
				t.Fatalf("A: %v", a.err)
			}
			want := "a-1,b-1"
			if !commitA {
				want = "b-1"
			}
			// Wait out any other session's transaction holding the horizon
			// (see above): one that began between A and B shows A alone for
			// a moment. What shows must always be a prefix of want, in order.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				got, err = s.ReadAll(ctx, cp, chronicle.ReadAllOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, e := range got {
					ids = append(ids, e.StreamID)
				}
				shown := strings.Join(ids, ",")
				if shown == want {
					break
				}
				if !strings.HasPrefix(want, shown) || time.Now().After(deadline) {
					t.Fatalf("after A ended the reader got %v, want %s (or, for a moment, a prefix of it)", ids, want)
				}
			}
			if commitA && !(a.res.LastPosition < b.FirstPosition) {
				t.Errorf("A's position %d is not below B's %d: the test did not commit out of order", a.res.LastPosition, b.FirstPosition)
			}
		})
	}
}

// TestNotifyAcrossStores proves LISTEN/NOTIFY: a commit through one store
// wakes the subscribers of another store on the same schema.
func TestNotifyAcrossStores(t *testing.T) {
	s1 := openTest(t, Options{})
	s2 := openTest(t, Options{Schema: s1.Schema()})
	ctx, cancel := context.WithCancel(context.Background())
	ch := s2.Notify(ctx)
	if _, err := s1.Append(ctx, "n-1", chronicle.NoStream, []chronicle.Event{ev("A", `{}`)}); err != nil {
		t.Fatal(err)
	}
	<-ch
	cancel()
	for range ch { // closed once ctx ends
	}
}

// TestConcurrentMigrate opens the same new schema from several stores at
// once, as several processes starting together would.
func TestConcurrentMigrate(t *testing.T) {
	url := testURL(t)
	schema := newSchema(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), url, Options{Schema: schema}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	var applied int
	if err := stores[0].pool.QueryRow(context.Background(), `SELECT count(*) FROM migrations`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != len(migrations)-1 {
		t.Errorf("%d migrations recorded, want %d", applied, len(migrations)-1)
	}
	for i, s := range stores {
		if _, err := s.Append(context.Background(), "m-1", chronicle.Exact(int64(i)), []chronicle.Event{ev("A", `{}`)}); err != nil {
			t.Errorf("append through store %d: %v", i, err)
		}
	}
}

// TestImmutability: the database itself refuses to change events.
func TestImmutability(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, "i-1", chronicle.NoStream, []chronicle.Event{ev("A", `{}`)}); err != nil {
		t.Fatal(err)
	}
	stmts := []string{
		`UPDATE events SET data = '{"x":1}'`,
		`DELETE FROM events`,
		`TRUNCATE events`,
		`TRUNCATE events CASCADE`,
	}
	var serverVersion int
	if err := s.pool.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&serverVersion); err != nil {
		t.Fatal(err)
	}
	if serverVersion >= 150000 {
		stmts = append(stmts,
			`MERGE INTO events e USING (SELECT 1) x ON true WHEN MATCHED THEN UPDATE SET event_type = 'x'`,
			`MERGE INTO events e USING (SELECT 1) x ON true WHEN MATCHED THEN DELETE`)
	}
	for _, q := range stmts {
		_, err := s.pool.Exec(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "immutable") {
			t.Errorf("%s: err = %v, want refused as immutable", q, err)
		}
	}
	if got, err := s.ReadStream(ctx, "i-1", chronicle.ReadStreamOptions{}); err != nil || len(got) != 1 || string(got[0].Data) != `{}` {
		t.Errorf("after refused changes: %+v, %v", got, err)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	s := openTest(t, Options{Limits: chronicle.Limits{MaxEventSize: 100}})
	ctx := context.Background()
	for name, e := range map[string]chronicle.Event{
		"nul":       ev("A", `{"a":"\u0000"}`),
		"surrogate": ev("A", `{"a":"\ud800"}`),
		"invalid":   ev("A", `{"a":`),
		"too big":   ev("A", `{"a":"`+strings.Repeat("x", 100)+`"}`),
		"no type":   ev("", `{}`),
	} {
		if _, err := s.Append(ctx, "bad-1", chronicle.Any, []chronicle.Event{ev("OK", `{}`), e}); !errors.Is(err, chronicle.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if h, err := s.Head(ctx); err != nil || h != (chronicle.Head{}) {
		t.Errorf("head after bad input = %+v, %v; want empty", h, err)
	}
}

func TestUUIDBytes(t *testing.T) {
	for _, id := range []string{chronicle.NewEventID(), chronicle.DerivedEventID("x"), "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "0123ABCD-4567-89ab-cdEF-0123456789aB"} {
		u := uuidBytes(id)
		got := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
		if want := strings.ToLower(id); got != want {
			t.Errorf("uuidBytes(%q) = %s", id, got)
		}
	}
}

// An append whose statement waits for a lock (here another session's lock
// on its stream's row) returns ctx's error as soon as ctx is cancelled, also
// when its caller is the one committing it: alone in its statement
// (commitAlone), on ctx, which cancels the statement. Either way a retry
// with its ids, once the lock is gone, lands it exactly once.
func TestCancelWhileCommitWaits(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, "held-1", chronicle.NoStream, []chronicle.Event{ev("A", `{}`)}); err != nil {
		t.Fatal(err)
	}
	alone := s.alone.Load()
	holder, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	var holderPID int32
	if err := holder.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&holderPID); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `SELECT 1 FROM streams WHERE stream_id = 'held-1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	waitGatherOver(t, s)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := []chronicle.Event{ev("B", `{"n":1}`), ev("B", `{"n":2}`)}
	for i := range evs {
		evs[i].ID = chronicle.NewEventID()
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Append(actx, "held-1", chronicle.ExpectedVersion(1), evs)
		errc <- err
	}()
	// Wait until the append's statement waits for the holder's lock.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, holderPID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the append did not wait for the lock within 30s")
		}
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "may or may not have landed") {
			t.Fatalf("cancelled Append: error = %v, want context.Canceled saying the outcome is unknown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Append still blocked 10s after its context was cancelled")
	}
	if got := s.alone.Load() - alone; got != 1 {
		t.Errorf("%d appends committed alone, want the cancelled one", got)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(ctx, "held-1", chronicle.ExpectedVersion(1), evs)
	if err != nil {
		t.Fatalf("retry after cancel: %v", err)
	}
	if res.FirstVersion != 2 || res.LastVersion != 3 {
		t.Fatalf("retry after cancel: versions %d..%d, want 2..3", res.FirstVersion, res.LastVersion)
	}
	if v, err := s.StreamVersion(ctx, "held-1"); err != nil || v != 3 {
		t.Fatalf("StreamVersion = %d, %v, want 3", v, err)
	}
}

// waitGatherOver waits until no leader is gathering the callers of the last
// batch, so that the next lone append commits alone.
func waitGatherOver(t *testing.T, s *Store) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		gathering := time.Now().Before(s.gatherUntil)
		s.mu.Unlock()
		if !gathering {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a gather still running after 10s")
		}
	}
}

// A lone caller whose context can be cancelled commits its appends itself
// (commitAlone), each alone, with their results as through a leader; with
// many callers at once the appends are batched as before, and every one
// lands once, in order within its stream.
func TestCommitAlone(t *testing.T) {
	s := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alone := s.alone.Load()
	for i := range 5 {
		res, err := s.Append(ctx, "alone-1", chronicle.Any, []chronicle.Event{ev("A", `{}`), ev("A", `{}`)})
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(2*i + 1); res.FirstVersion != want || res.LastVersion != want+1 {
			t.Fatalf("append %d: versions %d..%d, want %d..%d", i, res.FirstVersion, res.LastVersion, want, want+1)
		}
	}
	if got := s.alone.Load() - alone; got != 5 {
		t.Errorf("%d of 5 lone appends committed alone", got)
	}
	// A conflict found alone is a conflict.
	_, err := s.Append(ctx, "alone-1", chronicle.ExpectedVersion(3), []chronicle.Event{ev("A", `{}`)})
	var ce *chronicle.ConflictError
	if !errors.As(err, &ce) || ce.Actual != 10 {
		t.Fatalf("stale expected version: error = %v, want a conflict at version 10", err)
	}

	const writers, each = 16, 20
	batches, batched := s.batches.Load(), s.batched.Load()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("alone-w%d", w)
			for v := range each {
				if _, err := s.Append(ctx, stream, chronicle.ExpectedVersion(v), []chronicle.Event{ev("A", `{}`)}); err != nil {
					errs <- fmt.Errorf("%s at %d: %w", stream, v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		evs, err := s.ReadStream(ctx, fmt.Sprintf("alone-w%d", w), chronicle.ReadStreamOptions{})
		if err != nil || len(evs) != each {
			t.Fatalf("writer %d: read %d events, %v; want %d", w, len(evs), err, each)
		}
	}
	t.Logf("%d appends in %d commits", s.batched.Load()-batched, s.batches.Load()-batches)
}

// A store made before streams rows were guarded gets the guard when it is
// opened: a stream's row can no longer be deleted or truncated away.
func TestMigrateGuardsStreams(t *testing.T) {
	url := testURL(t)
	schema := newSchema(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := migrateSteps(ctx, pool, schema, migrations[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+schema+`.streams (stream_id, stream_type, version) VALUES ('old-1', 'old', 1);
INSERT INTO `+schema+`.events (stream_id, stream_type, version, event_id, event_type, schema_version, data)
VALUES ('old-1', 'old', 1, gen_random_uuid(), 'A', 1, '{}')`); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, Options{Schema: schema})
	for _, q := range []string{`DELETE FROM streams`, `TRUNCATE streams`} {
		if _, err := s.pool.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "never removed") {
			t.Errorf("%s: err = %v, want refused", q, err)
		}
	}
	if res, err := s.Append(ctx, "old-1", chronicle.ExpectedVersion(1), []chronicle.Event{ev("B", `{}`)}); err != nil || res.LastVersion != 2 {
		t.Fatalf("append after migration: %+v, %v", res, err)
	}
}

// TestGroupCommitGathers holds one batch in its transaction while two more
// appends arrive: the committer that is free must wait for the second
// rather than commit the first alone, so they share one batch.
func TestGroupCommitGathers(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s := openTest(t, Options{Committers: 2, BeforeCommit: func(stream string, _ []chronicle.Event) error {
		if stream == "hold-1" {
			close(entered)
			<-release
		}
		return nil
	}})
	// Long enough that only the appends arriving end the wait, however
	// slow the machine.
	s.gatherBusy = time.Minute
	ctx := context.Background()
	var wg sync.WaitGroup
	appendAsync := func(stream string) {
		wg.Go(func() {
			if _, err := s.Append(ctx, stream, chronicle.NoStream, []chronicle.Event{ev("A", `{}`)}); err != nil {
				t.Errorf("append %s: %v", stream, err)
			}
		})
	}
	appendAsync("hold-1")
	<-entered
	appendAsync("next-1")
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.gatherUntil.IsZero() || s.batches.Load() == 2 // gathering, or taken alone
	})
	appendAsync("next-2")
	waitFor(t, func() bool { return s.batched.Load() == 3 })
	close(release)
	wg.Wait()
	if b := s.batches.Load(); b != 2 {
		t.Errorf("3 appends committed in %d batches, want 2 (the held one, then the other two together)", b)
	}
}

// TestGroupCommitAlternates: with many writers (at least splitAt), a batch
// committing does not hold the next one back until it ends: two batches
// overlap, and they stay batches rather than single appends. The wait
// while another batch commits is an hour, so that it never runs out.
func TestGroupCommitAlternates(t *testing.T) {
	s := openTest(t, Options{Committers: 2})
	s.gatherBusy = time.Hour
	ctx := context.Background()
	const writers, each = 32, 20 // writers: at least twice splitAt
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				stream := fmt.Sprintf("alt-%d-%d", w, i)
				if _, err := s.Append(ctx, stream, chronicle.NoStream, []chronicle.Event{ev("A", `{}`)}); err != nil {
					t.Errorf("append %s: %v", stream, err)
					return
				}
			}
		})
	}
	wg.Wait()
	batches, batched := s.batches.Load(), s.batched.Load()
	if batched != writers*each {
		t.Fatalf("%d appends went through batches, want %d", batched, writers*each)
	}
	// Each split starts one batch while the other half's runs, and their
	// callers come back while the other batch runs: about half of the
	// batches at least. One batch at a time overlapped 10-27% (when a
	// wait ran out).
	if ov := s.overlapped.Load(); ov*3 < batches {
		t.Errorf("%d of %d batches began while another was committing, want a third at least", ov, batches)
	}
	// Halves of the writers, not a cascade of ever smaller batches.
	if avg := float64(batched) / float64(batches); avg < 4 {
		t.Errorf("%.1f appends per batch, want at least 4", avg)
	}
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE stream_id LIKE 'alt-%'`).Scan(&n); err != nil || n != writers*each {
		t.Errorf("%d events stored (%v), want %d", n, err, writers*each)
	}
}

// TestGroupCommitLoneWriter: a writer alone never waits for a fuller batch,
// whether it commits itself or hands over to a goroutine. With waits of an
// hour, a wait shows as the test's timeout.
func TestGroupCommitLoneWriter(t *testing.T) {
	s := openTest(t, Options{})
	s.gatherBusy, s.gatherIdle = time.Hour, time.Hour
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 20 {
		ctx := context.Background()
		if i%2 == 1 {
			ctx = cctx // can end: committed by a goroutine of the store
		}
		if _, err := s.Append(ctx, fmt.Sprintf("lone-%d", i), chronicle.NoStream, []chronicle.Event{ev("A", `{}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, fmt.Sprintf("lone-%d", i), chronicle.ExpectedVersion(1), []chronicle.Event{ev("B", `{}`)}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds, failing after a minute.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in a minute")
		}
		time.Sleep(time.Millisecond)
	}
}
