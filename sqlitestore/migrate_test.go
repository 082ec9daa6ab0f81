package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/chronicle-es/chronicle"
)

// A store made by the first schema gets the guards when it is opened, and
// its appends made before are still recognised when retried.
func TestMigrateGuardsExistingStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	raw := func() *sql.DB {
		db, err := sql.Open(driverName, "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		return db
	}
	db := raw()
	old := []chronicle.Event{
		{ID: chronicle.NewEventID(), Type: "A", SchemaVersion: 1, Data: []byte(`{}`)},
		{ID: chronicle.NewEventID(), Type: "A", SchemaVersion: 1, Data: []byte(`{"n":2}`)},
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{migrations[0], nil},
		{"PRAGMA user_version = 1", nil},
		{"INSERT INTO streams VALUES ('order-old', 'order', 2, 1, 1)", nil},
		{`INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, recorded_at)
VALUES (?, 'order-old', 'order', 1, 'A', 1, '{}', 1), (?, 'order-old', 'order', 2, 'A', 1, '{"n":2}', 1)`,
			[]any{old[0].ID, old[1].ID}},
	} {
		if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	db.Close()

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db = raw()
	defer db.Close()
	for _, q := range []string{
		`INSERT OR REPLACE INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, recorded_at)
SELECT event_id, stream_id, stream_type, version, 'x', schema_version, data, recorded_at FROM events`,
		`DELETE FROM streams`,
	} {
		if _, err := db.ExecContext(ctx, q); err == nil {
			t.Errorf("%s: succeeded after migration, want refused", q)
		}
	}
	res, err := s.Append(ctx, "order-old", chronicle.NoStream, old)
	if err != nil || res.FirstVersion != 1 || res.LastVersion != 2 {
		t.Fatalf("retry of an append made before the migration: %+v, %v; want versions 1..2", res, err)
	}
	evs := []chronicle.Event{{Type: "B", Data: []byte(`{}`)}, {Type: "B", Data: []byte(`{}`)}}
	for i := range evs {
		evs[i].ID = chronicle.NewEventID()
	}
	if _, err := s.Append(ctx, "order-old", chronicle.Exact(2), evs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "order-old", chronicle.Exact(2), evs[:1]); !errors.Is(err, chronicle.ErrDuplicateEvent) {
		t.Fatalf("part of an append made after the migration: error = %v, want ErrDuplicateEvent", err)
	}
}
