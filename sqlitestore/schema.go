package sqlitestore

import (
	"context"
	"fmt"
)

// migrations[i] takes the schema from version i to i+1 (PRAGMA user_version).
// Append only; never edit a released step.
var migrations = []string{
	`
CREATE TABLE streams (
	stream_id   TEXT PRIMARY KEY,
	stream_type TEXT NOT NULL,
	version     INTEGER NOT NULL,
	created_at  INTEGER NOT NULL, -- unix microseconds, UTC
	updated_at  INTEGER NOT NULL
);
-- position is the rowid: with one writer at a time, row order is commit order.
CREATE TABLE events (
	position       INTEGER PRIMARY KEY,
	event_id       TEXT NOT NULL,    -- canonical lower-case UUID
	stream_id      TEXT NOT NULL,
	stream_type    TEXT NOT NULL,
	version        INTEGER NOT NULL,
	event_type     TEXT NOT NULL,
	schema_version INTEGER NOT NULL,
	data           TEXT NOT NULL,    -- the appended bytes, unchanged
	metadata       TEXT,             -- NULL when none
	recorded_at    INTEGER NOT NULL  -- unix microseconds, UTC
);
CREATE UNIQUE INDEX events_event_id ON events (event_id);
CREATE UNIQUE INDEX events_stream_version ON events (stream_id, version);
CREATE INDEX events_stream_type ON events (stream_type, position);
CREATE INDEX events_event_type ON events (event_type, position);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'chronicle: events are immutable'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'chronicle: events are immutable'); END;
CREATE TABLE snapshots (
	stream_id      TEXT PRIMARY KEY,
	version        INTEGER NOT NULL,
	schema_version INTEGER NOT NULL,
	data           TEXT NOT NULL,
	taken_at       INTEGER NOT NULL
);
`,
}

// migrate brings the schema up to date in one IMMEDIATE transaction, so two
// processes opening a new file at once do not both run a step.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate: schema version %d is newer than this program knows (%d)", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate to version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			return fmt.Errorf("migrate to version %d: %w", v+1, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
