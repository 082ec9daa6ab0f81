package sqlitestore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/sqlitestore"
	"github.com/google/go-cmp/cmp"
)

// TestAppendRecordedIsWhatReadStreamReads: the events AppendRecorded
// returns equal ReadStream's, field for field, for appends that share a
// group commit; a recognised retry returns none and the original result.
func TestAppendRecordedIsWhatReadStreamReads(t *testing.T) {
	s := openTemp(t, sqlitestore.Options{})
	ctx := context.Background()
	events := func(i int) []chronicle.Event {
		evs := []chronicle.Event{
			{Type: "A", Data: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i))},
			{Type: "B", SchemaVersion: 3, Data: json.RawMessage(` [1, "é"] `), Metadata: json.RawMessage(`{"k":"v"}`)},
			{ID: chronicle.NewEventID(), Type: "C", Data: json.RawMessage(`"x"`), Metadata: json.RawMessage{}},
		}
		return evs[:1+i%3]
	}
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			stream := fmt.Sprintf("rec-%d", c)
			for i := range 20 {
				evs := events(i)
				res, got, err := s.AppendRecorded(ctx, stream, chronicle.Any, evs)
				if err != nil {
					t.Error(err)
					return
				}
				want, err := s.ReadStream(ctx, stream, chronicle.ReadStreamOptions{From: res.FirstVersion})
				if err != nil {
					t.Error(err)
					return
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s append %d: AppendRecorded differs from ReadStream (-read +recorded):\n%s", stream, i, diff)
					return
				}
			}
		})
	}
	wg.Wait()

	evs := events(2)
	evs[0].ID, evs[1].ID = chronicle.NewEventID(), chronicle.NewEventID()
	first, got, err := s.AppendRecorded(ctx, "rec-retry", chronicle.NoStream, evs)
	if err != nil || len(got) != 3 {
		t.Fatalf("first append: %d events, %v", len(got), err)
	}
	again, got, err := s.AppendRecorded(ctx, "rec-retry", chronicle.NoStream, evs)
	if err != nil || got != nil || again != first {
		t.Errorf("retry: %+v, %d events, %v; want %+v, no events", again, len(got), err, first)
	}
}

// TestReadModelTransactionsShareTheWriteLock: a transaction on SQLDB holds
// appends back until it ends, then they land; a transaction that gives up
// waiting for the lock leaves it free.
func TestReadModelTransactionsShareTheWriteLock(t *testing.T) {
	s := openTemp(t, sqlitestore.Options{})
	ctx := context.Background()
	db := s.SQLDB()
	if _, err := db.ExecContext(ctx, "CREATE TABLE rm (k TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO rm VALUES ('a')"); err != nil {
		t.Fatal(err)
	}
	// While tx holds the lock, another read-model transaction cannot begin.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.BeginTx(cctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("BeginTx while locked, cancelled: %v, want context.Canceled", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "gate-1", chronicle.NoStream, []chronicle.Event{{Type: "A", Data: json.RawMessage(`{}`)}})
		done <- err
	}()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("append after the read-model commit: %v", err)
	}
	// And the other way round, rollbacks included.
	for range 3 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, "gate-1", chronicle.Exact(1), []chronicle.Event{{Type: "A", Data: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyTransactionTakesNoLock: a read-only transaction on SQLDB
// reads one snapshot and holds back no writer: neither this store's appends
// and read-model transactions nor another process's appends.
func TestReadOnlyTransactionTakesNoLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.db")
	// A writer held back by the read transaction would wait longer than
	// the deadline, so it fails on the deadline rather than succeeding late.
	opts := sqlitestore.Options{BusyTimeout: 120_000}
	s, other := openAtOpts(t, path, opts), openAtOpts(t, path, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db := s.SQLDB()
	if _, err := db.ExecContext(ctx, "CREATE TABLE rm (k TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	ev := []chronicle.Event{{Type: "A", Data: json.RawMessage(`{}`)}}
	if _, err := s.Append(ctx, "ro-0", chronicle.NoStream, ev); err != nil {
		t.Fatal(err)
	}
	count := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int {
		t.Helper()
		var n int
		if err := q.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM rm)").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	before := count(tx) // the snapshot starts here
	if _, err := s.Append(ctx, "ro-1", chronicle.NoStream, ev); err != nil {
		t.Fatalf("append during a read-only transaction: %v", err)
	}
	if _, err := other.Append(ctx, "ro-2", chronicle.NoStream, ev); err != nil {
		t.Fatalf("another process's append during a read-only transaction: %v", err)
	}
	wtx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("read-model transaction during a read-only transaction: %v", err)
	}
	if _, err := wtx.ExecContext(ctx, "INSERT INTO rm VALUES ('a')"); err != nil {
		t.Fatal(err)
	}
	if err := wtx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := count(tx); got != before {
		t.Errorf("read-only transaction sees %d rows after others committed, %d before: not a snapshot", got, before)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, want := count(db), before+3; got != want {
		t.Errorf("after the read-only transaction: %d rows, want %d", got, want)
	}
}

func openAtOpts(t *testing.T, path string, opts sqlitestore.Options) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
