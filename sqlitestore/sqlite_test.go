package sqlitestore_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// Issue 2, item 5 (SQLite half): with one writer, row order is commit order.
// A reader tailing the log while many writers commit (and some roll back)
// always sees a dense prefix of positions: it never sees an event before
// an earlier one, so resuming from the last position seen skips nothing.
func TestCommitOrder(t *testing.T) {
	errRollback := errors.New("rollback")
	s := openTemp(t, sqlitestore.Options{BeforeCommit: func(string, []chronicle.Event) error {
		if rand.IntN(5) == 0 {
			return errRollback
		}
		return nil
	}})
	ctx := context.Background()
	const writers, appends = 8, 150
	done := make(chan struct{})
	var readerErr error
	var seen []int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		wake := s.Notify(t.Context())
		var from chronicle.Checkpoint
		for {
			finished := false
			select {
			case <-done:
				finished = true
			default:
			}
			page, err := s.ReadAll(ctx, from, chronicle.ReadAllOptions{Limit: 50})
			if err != nil {
				readerErr = err
				return
			}
			for _, e := range page {
				if e.Position != from.Position+1 || e.TxID != uint64(e.Position) {
					readerErr = fmt.Errorf("after position %d the reader saw %d (txid %d)", from.Position, e.Position, e.TxID)
					return
				}
				from = e.Checkpoint()
				seen = append(seen, e.Position)
			}
			if len(page) > 0 {
				continue
			}
			if finished {
				return
			}
			select {
			case <-wake:
			case <-done:
			}
		}
	}()
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range appends {
				_, err := s.Append(ctx, fmt.Sprintf("order-%d", (w*appends+i)%37), chronicle.Any, benchEvents(1+i%3))
				if err != nil && !errors.Is(err, errRollback) {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	<-readerDone
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if readerErr != nil {
		t.Fatal(readerErr)
	}
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(seen)) != head.Position {
		t.Fatalf("reader saw %d events, head is at %d", len(seen), head.Position)
	}
}

// Data and metadata come back byte for byte, whitespace, key order and
// escapes included.
func TestByteIdentical(t *testing.T) {
	s := openTemp(t, sqlitestore.Options{})
	ctx := context.Background()
	data := []byte("{ \"z\" : 1,\n\t\"a\": [ 1.50, 2e3 ], \"s\": \"caf\\u00e9 \u00e9 \\ud83d\\ude00\" }")
	meta := []byte(`{"correlation_id" :"c",  "b":null}`)
	mustAppendSQL(t, s, "order-bytes", []chronicle.Event{{Type: "T", Data: data, Metadata: meta}})
	got, err := s.ReadStream(ctx, "order-bytes", chronicle.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(got[0].Data) != string(data) || string(got[0].Metadata) != string(meta) {
		t.Fatalf("got %q %q, want %q %q", got[0].Data, got[0].Metadata, data, meta)
	}
	if err := s.SaveSnapshot(ctx, chronicle.Snapshot{StreamID: "order-bytes", Version: 1, SchemaVersion: 1, Data: data}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.LoadSnapshot(ctx, "order-bytes")
	if err != nil || string(snap.Data) != string(data) {
		t.Fatalf("snapshot data %q, %v; want %q", snap.Data, err, data)
	}
	// Read models can query the JSON in place.
	var sku float64
	if err := s.SQLDB().QueryRowContext(ctx, "SELECT json_extract(data, '$.a[0]') FROM events").Scan(&sku); err != nil || sku != 1.5 {
		t.Fatalf("json_extract = %v, %v; want 1.5", sku, err)
	}
}

func mustAppendSQL(t testing.TB, s *sqlitestore.Store, stream string, evs []chronicle.Event) chronicle.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), stream, chronicle.Any, evs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

// Two stores on one file stand for a server and a CLI: each sees the
// other's commits, and expected versions hold across them.
func TestTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	ctx := context.Background()
	open := func() *sqlitestore.Store {
		s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*sqlitestore.Store{a, b} {
		wg.Go(func() {
			for j := range 100 {
				if _, err := s.Append(ctx, "order-shared", chronicle.Any, benchEvents(1)); err != nil {
					errs[i] = err
					return
				}
				if _, err := s.ReadAll(ctx, chronicle.Checkpoint{Position: int64(j)}, chronicle.ReadAllOptions{Limit: 10}); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*sqlitestore.Store{a, b} {
		evs, err := s.ReadStream(ctx, "order-shared", chronicle.ReadStreamOptions{})
		if err != nil || len(evs) != 200 {
			t.Fatalf("stream has %d events (%v), want 200", len(evs), err)
		}
	}
	if _, err := b.Append(ctx, "order-shared", chronicle.Exact(199), benchEvents(1)); !errors.Is(err, chronicle.ErrWrongVersion) {
		t.Fatalf("stale expected version through the second handle: %v", err)
	}
	// A plain read-only connection, as a tool would open, reads a live file.
	db, err := sql.Open(sqlDriverName, "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil || n != 200 {
		t.Fatalf("read-only count = %d, %v; want 200", n, err)
	}
}

// The schema survives reopening, and a newer schema is refused.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "re.db")
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := mustAppendSQL(t, s, "order-1", benchEvents(3))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlitestore.Open(ctx, path, sqlitestore.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	second := mustAppendSQL(t, s, "order-1", benchEvents(2))
	if second.FirstVersion != 4 || second.FirstPosition != first.LastPosition+1 {
		t.Fatalf("after reopen: %+v follows %+v", second, first)
	}
	if _, err := s.SQLDB().ExecContext(ctx, "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := sqlitestore.Open(ctx, path, sqlitestore.Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("open of a newer schema: %v, want an error", err)
	}
	if _, err := sqlitestore.Open(ctx, path, sqlitestore.Options{Synchronous: "sometimes"}); err == nil {
		t.Fatalf("open with a bad synchronous setting succeeded")
	}
}

// An acknowledged append survives kill -9 of the process. The child (this
// test binary again) appends and prints each acknowledged result; the
// parent kills it mid-stream and checks every acknowledged event is there.
func TestKill9(t *testing.T) {
	if path := os.Getenv("CHRONICLE_KILL9_CHILD"); path != "" {
		kill9Child(path)
		return
	}
	path := filepath.Join(t.TempDir(), "kill.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), "CHRONICLE_KILL9_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var acked []int64 // last positions of acknowledged appends
	for sc.Scan() && len(acked) < 200 {
		if p, err := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "acked "), 10, 64); err == nil {
			acked = append(acked, p)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged only %d appends", len(acked))
	}
	s := openAt(t, path)
	head, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if last := acked[len(acked)-1]; head.Position < last {
		t.Fatalf("after kill -9 the log ends at %d, but position %d was acknowledged", head.Position, last)
	}
	all, err := s.ReadAll(context.Background(), chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 100000})
	if err != nil || int64(len(all)) != head.Position {
		t.Fatalf("read %d events (%v), head at %d", len(all), err, head.Position)
	}
}

func openAt(t *testing.T, path string) *sqlitestore.Store {
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func kill9Child(path string) {
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				res, err := s.Append(context.Background(), fmt.Sprintf("order-%d-%d", w, i%10), chronicle.Any, benchEvents(1+i%3))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Printf("acked %d\n", res.LastPosition)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
