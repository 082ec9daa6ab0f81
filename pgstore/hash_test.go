package pgstore

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// A store made before hashes existed gets its events hashed, in log order
// and chained by stream, when it is opened; a migration killed after its
// first batch goes on where it stopped; appends then chain on.
func TestMigrateHashesStoredEvents(t *testing.T) {
	url := testURL(t)
	schema := newSchema(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := migrateSteps(ctx, pool, schema, migrations[:3]); err != nil {
		t.Fatal(err)
	}
	// 2,500 events in 5 streams, interleaved, appended as the previous
	// release did; some with metadata, some committed in one transaction.
	const streams, perStream = 5, 500
	_, err = pool.Exec(ctx, `SET search_path = `+schema+`;
INSERT INTO streams (stream_id, stream_type, version)
SELECT 'old-' || s, 'old', `+"500"+` FROM generate_series(1, 5) s;
INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata)
SELECT 'old-' || s, 'old', v, gen_random_uuid(), 'A', 1 + v % 2, json_build_object('v', v, 's', 'x' || s, 'f', 1.50),
	CASE WHEN v % 3 = 0 THEN '{"actor":"bob"}'::json END
FROM generate_series(1, 500) v, generate_series(1, 5) s ORDER BY v, s`)
	if err != nil {
		t.Fatal(err)
	}
	// The new schema, then one batch of hashing, as if killed after it.
	if err := migrateSteps(ctx, pool, schema, migrations); err != nil {
		t.Fatal(err)
	}
	if n, _, err := hashSome(ctx, pool, schema, chronicle.Checkpoint{}); err != nil || n != hashBatch {
		t.Fatalf("first batch: %d, %v; want %d", n, err, hashBatch)
	}
	var unhashed int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.events WHERE hash IS NULL`).Scan(&unhashed); err != nil || unhashed != streams*perStream-hashBatch {
		t.Fatalf("after the first batch %d unhashed (%v), want %d", unhashed, err, streams*perStream-hashBatch)
	}

	s := openTest(t, Options{Schema: schema})
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
		t.Fatal("an event inserted without its digests was stored")
	}
}
