package pgstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// oldStore makes, in schema, a store as the release before hashing left
// it: 2,500 events in 5 streams, interleaved, some with metadata, the same
// ids and times for every call.
func oldStore(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	ctx := context.Background()
	if err := migrateSteps(ctx, pool, schema, migrations[:3]); err != nil {
		t.Fatal(err)
	}
	_, err := pool.Exec(ctx, `SET search_path = `+schema+`;
INSERT INTO streams (stream_id, stream_type, version)
SELECT 'old-' || s, 'old', 500 FROM generate_series(1, 5) s;
INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata, recorded_at)
SELECT 'old-' || s, 'old', v, md5(s || '/' || v)::uuid, 'A', 1 + v % 2, json_build_object('v', v, 's', 'x' || s, 'f', 1.50),
	CASE WHEN v % 3 = 0 THEN '{"actor":"bob"}'::json END, timestamptz '2026-01-01 00:00:00Z' + v * interval '1.5 ms'
FROM generate_series(1, 500) v, generate_series(1, 5) s ORDER BY v, s;
RESET search_path`)
	if err != nil {
		t.Fatal(err)
	}
}

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
// appends then chain on.
func TestMigrateHashesStoredEvents(t *testing.T) {
	url := testURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	const streams, perStream = 5, 500

	whole := newSchema(t)
	oldStore(t, pool, whole)
	want := storedHashes(t, openTest(t, Options{Schema: whole}))
	if len(want) != streams*perStream {
		t.Fatalf("%d events after the migration, want %d", len(want), streams*perStream)
	}

	// Killed after its second batch: cancelled from the progress report.
	schema := newSchema(t)
	oldStore(t, pool, schema)
	kill, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err = Open(kill, url, Options{Schema: schema, MigrateProgress: func(done, total int64) {
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
	var unhashed int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.events WHERE hash IS NULL`).Scan(&unhashed); err != nil || unhashed != streams*perStream-2*hashBatch {
		t.Fatalf("after the kill %d unhashed (%v), want %d", unhashed, err, streams*perStream-2*hashBatch)
	}
	var last [2]int64
	s := openTest(t, Options{Schema: schema, MigrateProgress: func(done, total int64) { last = [2]int64{done, total} }})
	if last != [2]int64{unhashed, unhashed} {
		t.Errorf("last progress of the resumed migration %v, want %d of %d", last, unhashed, unhashed)
	}
	if got := storedHashes(t, s); !slices.Equal(got, want) {
		t.Fatal("the resumed migration's hashes differ from an uninterrupted one's")
	}

	for i := 1; i <= streams; i++ {
		stream := "old-" + string(rune('0'+i))
		if _, err := s.Append(ctx, stream, chronicle.Exact(perStream), []chronicle.Event{ev("B", `{}`)}); err != nil {
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
	_, err = s.pool.Exec(ctx, `INSERT INTO streams (stream_id, stream_type, version) VALUES ('raw-1', 'raw', 1);
INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data)
VALUES ('raw-1', 'raw', 1, gen_random_uuid(), 'A', 1, '{}')`)
	if err == nil {
		t.Fatal("an event inserted without its hash was stored")
	}
}

// Appends are hashed on the stream head a store last saw; another store
// appending to the same streams makes it stale. A stale head is never a
// conflict unless the expected version fails, and the chain and the
// stream's recorded times hold.
func TestStaleHeads(t *testing.T) {
	testURL(t)
	schema := newSchema(t)
	ctx := context.Background()
	a := openTest(t, Options{Schema: schema})
	b := openTest(t, Options{Schema: schema})
	const stream = "order-1"
	ok := func(s *Store, expected chronicle.ExpectedVersion, n int, first int64) {
		t.Helper()
		evs := make([]chronicle.Event, n)
		for i := range evs {
			evs[i] = ev("A", `{"n":1}`)
		}
		res, err := s.Append(ctx, stream, expected, evs)
		if err != nil || res.FirstVersion != first {
			t.Fatalf("append %v: %+v, %v; want first version %d", expected, res, err, first)
		}
	}
	conflict := func(s *Store, expected chronicle.ExpectedVersion, actual int64) {
		t.Helper()
		_, err := s.Append(ctx, stream, expected, []chronicle.Event{ev("A", `{}`)})
		var c *chronicle.ConflictError
		if !errors.As(err, &c) || c.Actual != actual {
			t.Fatalf("append %v: %v; want a conflict at version %d", expected, err, actual)
		}
	}
	ok(a, chronicle.NoStream, 1, 1)
	ok(b, chronicle.Exact(1), 2, 2)
	ok(a, chronicle.Any, 1, 4)
	conflict(b, chronicle.Exact(3), 4)
	ok(a, chronicle.StreamExists, 2, 5)
	ok(b, chronicle.Any, 1, 7)
	conflict(a, chronicle.Exact(1), 7)
	ok(a, chronicle.Exact(7), 1, 8)
	// The stream's last event recorded later than this process's clock
	// (another host's): the next event takes that time, not an earlier one.
	later := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := b.pool.Exec(ctx, `UPDATE streams SET last_at = $1 WHERE stream_id = $2`, later, stream); err != nil {
		t.Fatal(err)
	}
	ok(a, chronicle.Exact(8), 1, 9)
	evs, err := a.ReadStream(ctx, stream, chronicle.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	events := make([]audit.Event, len(evs))
	hashes := make([]audit.Hash, len(evs))
	for i, e := range evs {
		events[i], hashes[i] = audit.FromRecorded(e, e.PrevHash), e.Hash
		if i > 0 && e.RecordedAt.Before(evs[i-1].RecordedAt) {
			t.Errorf("v%d recorded at %v, before v%d", e.Version, e.RecordedAt, evs[i-1].Version)
		}
	}
	if err := audit.CheckStream(events, hashes); err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; !last.RecordedAt.Equal(later) {
		t.Errorf("v%d recorded at %v, want %v", last.Version, last.RecordedAt, later)
	}
}
