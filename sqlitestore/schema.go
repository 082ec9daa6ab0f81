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
	`
-- The version of the first event of the append that stored the event: an
-- append is (stream_id, append_first), so a retry is recognised only for
-- exactly the events of one earlier append. NULL for events stored before.
ALTER TABLE events ADD COLUMN append_first INTEGER;
-- REPLACE (INSERT OR REPLACE, REPLACE, UPDATE OR REPLACE) removes the rows in
-- its way without firing delete triggers unless recursive_triggers is on,
-- which no connection opened by another program sets: refuse any insert
-- that meets a stored event, on any of its unique keys.
CREATE TRIGGER events_no_replace BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE event_id = NEW.event_id)
	OR EXISTS (SELECT 1 FROM events WHERE stream_id = NEW.stream_id AND version = NEW.version)
	OR EXISTS (SELECT 1 FROM events WHERE position = NEW.position)
BEGIN SELECT RAISE(ABORT, 'chronicle: events are immutable: an event is stored there already'); END;
-- Without its row a stream would take its versions from 1 again.
CREATE TRIGGER streams_no_delete BEFORE DELETE ON streams
BEGIN SELECT RAISE(ABORT, 'chronicle: streams are never removed'); END;
`,
	`
-- Data keys of personal data, wrapped by a master key kept outside the
-- store; one live key per subject. Erasing sets wrapped to NULL and keeps
-- the row as a tombstone (erased_at).
CREATE TABLE data_keys (
	key_id     TEXT PRIMARY KEY,
	subject    TEXT NOT NULL,
	wrapped    BLOB,             -- NULL once erased
	created_at INTEGER NOT NULL, -- unix microseconds, UTC
	erased_at  INTEGER
);
CREATE UNIQUE INDEX data_keys_live ON data_keys (subject) WHERE erased_at IS NULL;
CREATE INDEX data_keys_subject ON data_keys (subject, erased_at);
-- A value derived from the master key, to refuse another key at start.
CREATE TABLE key_check (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	value BLOB NOT NULL
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
