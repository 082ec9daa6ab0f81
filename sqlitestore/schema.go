package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chronicle-es/chronicle/audit"
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
	`
-- hash and prev_hash: 32-byte SHA-256 (package audit), computed by the
-- writer inside the append. streams.last_hash is the hash of the stream's
-- last event, read with its version, so an append chains without a lookup.
ALTER TABLE events ADD COLUMN hash BLOB;
ALTER TABLE events ADD COLUMN prev_hash BLOB;
ALTER TABLE streams ADD COLUMN last_hash BLOB;
-- The events stored before hashing, for hashStored, which drops it when
-- they are all hashed: no cost for appends after that.
CREATE INDEX events_unhashed ON events (position) WHERE hash IS NULL;
CREATE TRIGGER events_hashed BEFORE INSERT ON events
WHEN length(NEW.hash) IS NOT 32 OR length(NEW.prev_hash) IS NOT 32
BEGIN SELECT RAISE(ABORT, 'chronicle: an event must be stored with its hash'); END;
-- The only update allowed: hashing an event stored before hashes existed
-- (hashStored), which changes nothing else.
DROP TRIGGER events_no_update;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
WHEN NOT (OLD.hash IS NULL AND length(NEW.hash) = 32 AND length(NEW.prev_hash) = 32
	AND NEW.position IS OLD.position AND NEW.event_id IS OLD.event_id
	AND NEW.stream_id IS OLD.stream_id AND NEW.stream_type IS OLD.stream_type
	AND NEW.version IS OLD.version AND NEW.event_type IS OLD.event_type
	AND NEW.schema_version IS OLD.schema_version AND NEW.data IS OLD.data
	AND NEW.metadata IS OLD.metadata AND NEW.recorded_at IS OLD.recorded_at
	AND NEW.append_first IS OLD.append_first)
BEGIN SELECT RAISE(ABORT, 'chronicle: events are immutable'); END;
`,
	`
-- Seals of the global log (package audit): seal seq covers the events after
-- seal seq-1's last checkpoint up to (last_tx_id, last_position). seal_keys
-- lists every key that ever signed one. Both are append-only, like events
-- (an insert meeting a stored row is refused: REPLACE would remove it).
CREATE TABLE seals (
	seq            INTEGER PRIMARY KEY,
	last_tx_id     INTEGER NOT NULL,
	last_position  INTEGER NOT NULL,
	count          INTEGER NOT NULL,
	root           BLOB NOT NULL,
	prev_seal_hash BLOB NOT NULL,
	sealed_at      INTEGER NOT NULL, -- unix microseconds, UTC
	seal_hash      BLOB NOT NULL,
	key_id         TEXT,
	signature      TEXT
);
CREATE TABLE seal_keys (
	key_id     TEXT PRIMARY KEY,
	public_key BLOB NOT NULL,
	first_seal INTEGER NOT NULL
);
CREATE TRIGGER seals_no_update BEFORE UPDATE ON seals
BEGIN SELECT RAISE(ABORT, 'chronicle: seals are immutable'); END;
CREATE TRIGGER seals_no_delete BEFORE DELETE ON seals
BEGIN SELECT RAISE(ABORT, 'chronicle: seals are immutable'); END;
CREATE TRIGGER seals_no_replace BEFORE INSERT ON seals
WHEN EXISTS (SELECT 1 FROM seals WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'chronicle: seals are immutable: a seal is stored there already'); END;
CREATE TRIGGER seal_keys_no_update BEFORE UPDATE ON seal_keys
BEGIN SELECT RAISE(ABORT, 'chronicle: seal keys are immutable'); END;
CREATE TRIGGER seal_keys_no_delete BEFORE DELETE ON seal_keys
BEGIN SELECT RAISE(ABORT, 'chronicle: seal keys are immutable'); END;
`,
	`
-- Where a seal copied from another store (chronicle copy) ends in this one:
-- its last_checkpoint, which its seal_hash covers, is the other store's.
-- NULL for the seals this store made.
ALTER TABLE seals ADD COLUMN end_tx_id INTEGER;
ALTER TABLE seals ADD COLUMN end_position INTEGER;
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
	return s.hashStored(ctx)
}

// hashBatch is how many events hashStored hashes per transaction.
const hashBatch = 1000

// hashStored hashes the events stored before hashes existed, in log order,
// hashBatch per transaction: killed, it goes on where it stopped (only
// events without a hash are hashed). Done, it drops events_unhashed, whose
// absence tells later opens there is nothing to do.
func (s *Store) hashStored(ctx context.Context) error {
	var todo bool
	err := s.wdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'events_unhashed')`).Scan(&todo)
	if err != nil || !todo {
		return err
	}
	var total int64
	if err := s.wdb.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE hash IS NULL`).Scan(&total); err != nil {
		return fmt.Errorf("migrate: hash stored events: %w", err)
	}
	var after, done int64
	for {
		n, last, err := s.hashSome(ctx, after)
		if err != nil {
			return fmt.Errorf("migrate: hash stored events: %w", err)
		}
		if n == 0 {
			if _, err := s.wdb.ExecContext(ctx, `DROP INDEX IF EXISTS events_unhashed`); err != nil {
				return fmt.Errorf("migrate: hash stored events: %w", err)
			}
			return nil
		}
		after, done = last, done+int64(n)
		if s.opts.MigrateProgress != nil {
			s.opts.MigrateProgress(done, max(total, done))
		}
	}
}

// hashSome hashes up to hashBatch unhashed events after position after in
// one transaction, returning how many and the last one's position.
func (s *Store) hashSome(ctx context.Context, after int64) (n int, last int64, err error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT position, event_id, stream_id, version, event_type, schema_version, data, metadata, recorded_at
FROM events WHERE position > ? AND hash IS NULL ORDER BY position LIMIT ?`, after, hashBatch)
	if err != nil {
		return 0, 0, err
	}
	type row struct {
		pos    int64
		ev     audit.Event
		micros int64
	}
	var batch []row
	for rows.Next() {
		var r row
		var data string
		var meta sql.NullString
		if err := rows.Scan(&r.pos, &r.ev.EventID, &r.ev.StreamID, &r.ev.Version, &r.ev.Type, &r.ev.SchemaVersion, &data, &meta, &r.micros); err != nil {
			rows.Close()
			return 0, 0, err
		}
		r.ev.Data = json.RawMessage(data)
		if meta.Valid {
			r.ev.Metadata = json.RawMessage(meta.String)
		}
		r.ev.RecordedAt = time.UnixMicro(r.micros).UTC()
		batch = append(batch, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	// A stream's events come in version order: the previous one is hashed
	// earlier in this batch or in an earlier one.
	hashes := make(map[string]audit.Hash)
	for _, r := range batch {
		prev, ok := hashes[r.ev.StreamID]
		if !ok && r.ev.Version > 1 {
			var b []byte
			err := tx.QueryRowContext(ctx, `SELECT hash FROM events WHERE stream_id = ? AND version = ?`, r.ev.StreamID, r.ev.Version-1).Scan(&b)
			if err != nil || len(b) != len(prev) {
				return 0, 0, fmt.Errorf("%s v%d: previous event's hash: %v", r.ev.StreamID, r.ev.Version, err)
			}
			prev = audit.Hash(b)
		}
		r.ev.PrevHash = prev
		h, err := audit.HashEvent(r.ev)
		if err != nil {
			return 0, 0, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE events SET hash = ?, prev_hash = ? WHERE position = ?`, h[:], prev[:], r.pos); err != nil {
			return 0, 0, err
		}
		// The stream's last event: its row gets what appends chain on.
		if _, err := tx.ExecContext(ctx, `UPDATE streams SET last_hash = ? WHERE stream_id = ? AND version = ?`, h[:], r.ev.StreamID, r.ev.Version); err != nil {
			return 0, 0, err
		}
		hashes[r.ev.StreamID] = h
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, err
	}
	if len(batch) == 0 {
		return 0, 0, nil
	}
	return len(batch), batch[len(batch)-1].pos, nil
}
