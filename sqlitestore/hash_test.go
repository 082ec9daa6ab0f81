package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// oldStore makes at path a store as the release before hashing left it:
// 2,500 events in 5 streams, interleaved, some with metadata, the same ids
// and times for every call.
func oldStore(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open(driverName, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(migrations[0])
	exec(migrations[1])
	exec("PRAGMA user_version = 2")
	exec("BEGIN")
	for v := 1; v <= perStream; v++ {
		for s := 1; s <= streams; s++ {
			var meta any
			if v%3 == 0 {
				meta = `{"actor":"bob"}`
			}
			exec(`INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, recorded_at, append_first)
VALUES (?, ?, 'old', ?, 'A', ?, ?, ?, ?, ?)`, fmt.Sprintf("00000000-0000-4000-8000-%012d", v*10+s), fmt.Sprintf("old-%d", s), v, 1+v%2,
				fmt.Sprintf(`{"v": %d, "f": 1.50, "s": "x%d"}`, v, s), meta, int64(1700000000000000+v*1000+s), v)
		}
	}
	for s := 1; s <= streams; s++ {
		exec(`INSERT INTO streams VALUES (?, 'old', ?, 1, 1)`, fmt.Sprintf("old-%d", s), perStream)
	}
	exec("COMMIT")
}

const streams, perStream = 5, 500

// storedHashes returns every event's hash and prev_hash in log order.
func storedHashes(t *testing.T, s *Store) [][2]audit.Hash {
	t.Helper()
	var out [][2]audit.Hash
	for cp := (chronicle.Checkpoint{}); ; {
		evs, err := s.ReadAll(context.Background(), cp, chronicle.ReadAllOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, e := range evs {
			out = append(out, [2]audit.Hash{e.Hash, e.PrevHash})
		}
		cp = evs[len(evs)-1].Checkpoint()
	}
}

// A store made before hashes existed gets its events hashed, in log order
// and chained by stream, when it is opened; an Open killed mid-way goes on
// where it stopped and ends with the hashes of an uninterrupted one;
// appends then chain on; an event cannot be inserted without its hash.
func TestMigrateHashesStoredEvents(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	wholePath := filepath.Join(dir, "whole.db")
	oldStore(t, wholePath)
	whole, err := Open(ctx, wholePath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := storedHashes(t, whole)
	whole.Close()
	if len(want) != streams*perStream {
		t.Fatalf("%d events after the migration, want %d", len(want), streams*perStream)
	}

	// Killed after its second batch: cancelled from the progress report.
	path := filepath.Join(dir, "killed.db")
	oldStore(t, path)
	kill, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err = Open(kill, path, Options{MigrateProgress: func(done, total int64) {
		if total != streams*perStream {
			t.Errorf("progress %d/%d, want a total of %d", done, total, streams*perStream)
		}
		if done == 2*hashBatch {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Open killed mid-migration: %v", err)
	}
	var last [2]int64
	s, err := Open(ctx, path, Options{MigrateProgress: func(done, total int64) { last = [2]int64{done, total} }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if left := int64(streams*perStream - 2*hashBatch); last != [2]int64{left, left} {
		t.Errorf("last progress of the resumed migration %v, want %d of %d", last, left, left)
	}
	if got := storedHashes(t, s); !slices.Equal(got, want) {
		t.Fatal("the resumed migration's hashes differ from an uninterrupted one's")
	}

	for i := 1; i <= streams; i++ {
		stream := fmt.Sprintf("old-%d", i)
		if _, err := s.Append(ctx, stream, chronicle.Exact(perStream), []chronicle.Event{{Type: "B", Data: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
		evs, err := s.ReadStream(ctx, stream, chronicle.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != perStream+1 {
			t.Fatalf("%s: %d events", stream, len(evs))
		}
		events := make([]audit.Event, len(evs))
		hashes := make([]audit.Hash, len(evs))
		for j, e := range evs {
			events[j], hashes[j] = audit.FromRecorded(e, e.PrevHash), e.Hash
		}
		if err := audit.CheckStream(events, hashes); err != nil {
			t.Fatal(err)
		}
	}
	// An insert that bypasses the store cannot leave an event unhashed.
	_, err = s.wdb.ExecContext(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, recorded_at)
VALUES (?, 'raw-1', 'raw', 1, 'A', 1, '{}', 1)`, chronicle.NewEventID())
	if err == nil {
		t.Fatal("an event inserted without its hash was stored")
	}
}
