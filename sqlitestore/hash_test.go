package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// A store made before hashes existed gets its events hashed, in log order
// and chained by stream, when it is opened; a migration killed after its
// first batch goes on where it stopped; appends then chain on; an event
// cannot be inserted without its hash.
func TestMigrateHashesStoredEvents(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	db, err := sql.Open(driverName, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// 2,500 events in 5 streams, interleaved, as the previous release
	// stored them; some with metadata.
	const streams, perStream = 5, 500
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
VALUES (?, ?, 'old', ?, 'A', ?, ?, ?, ?, ?)`, chronicle.NewEventID(), fmt.Sprintf("old-%d", s), v, 1+v%2,
				fmt.Sprintf(`{"v": %d, "f": 1.50, "s": "x%d"}`, v, s), meta, int64(1700000000000000+v*1000+s), v)
		}
	}
	for s := 1; s <= streams; s++ {
		exec(`INSERT INTO streams VALUES (?, 'old', ?, 1, 1)`, fmt.Sprintf("old-%d", s), perStream)
	}
	exec("COMMIT")
	// The new schema, then one batch of hashing, as if killed after it.
	exec(migrations[2])
	exec("PRAGMA user_version = 3")
	old := &Store{wdb: db}
	if n, _, err := old.hashSome(ctx, 0); err != nil || n != hashBatch {
		t.Fatalf("first batch: %d, %v; want %d", n, err, hashBatch)
	}
	db.Close()

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
