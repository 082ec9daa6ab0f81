package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// migrations are applied in order, each once; never edit one that shipped,
// add another. They run with search_path set to the store's schema.
var migrations = []string{
	1: `
-- data and metadata are json, not jsonb: json keeps the exact bytes
-- appended (jsonb reorders keys, drops duplicates and whitespace), so a
-- round trip is byte-identical on both backends, and it costs only a syntax
-- check on insert and nothing on read. Nobody queries inside payloads here.
CREATE TABLE events (
	position       bigint GENERATED ALWAYS AS IDENTITY,
	tx_id          xid8 NOT NULL DEFAULT pg_current_xact_id(),
	stream_id      text NOT NULL,
	stream_type    text NOT NULL,
	version        bigint NOT NULL CHECK (version > 0),
	event_id       uuid NOT NULL UNIQUE,
	event_type     text NOT NULL,
	schema_version integer NOT NULL,
	data           json NOT NULL,
	metadata       json,
	-- clock_timestamp, not now(): taken after the stream's row is locked, so
	-- a stream's recorded times never go down as its versions go up.
	recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (stream_id, version)
);
-- Exactly the order ReadAll reads in (gap-safe commit order).
CREATE INDEX events_tx_position ON events (tx_id, position);
CREATE INDEX events_type_tx_position ON events (stream_type, tx_id, position);

-- One row per stream: the append locks and updates it for the version check,
-- so a writer locks no more than its own streams.
CREATE TABLE streams (
	stream_id   text PRIMARY KEY,
	stream_type text NOT NULL,
	version     bigint NOT NULL CHECK (version > 0),
	-- The transaction of the stream's last append: a later append must have
	-- a higher one, so a stream's versions come in the order readers read.
	last_tx     xid8 NOT NULL DEFAULT pg_current_xact_id(),
	created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE snapshots (
	stream_id      text PRIMARY KEY,
	version        bigint NOT NULL,
	schema_version integer NOT NULL,
	data           json NOT NULL,
	taken_at       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'chronicle: events are immutable: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
	FOR EACH ROW EXECUTE FUNCTION events_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
	FOR EACH STATEMENT EXECUTE FUNCTION events_immutable();
`,
	2: `
-- Without its row a stream would take its versions from 1 again.
CREATE FUNCTION streams_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'chronicle: streams are never removed: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER streams_no_delete BEFORE DELETE ON streams
	FOR EACH ROW EXECUTE FUNCTION streams_kept();
CREATE TRIGGER streams_no_truncate BEFORE TRUNCATE ON streams
	FOR EACH STATEMENT EXECUTE FUNCTION streams_kept();
`,
	3: `
-- Data keys of personal data, wrapped by a master key kept outside the
-- store; one live key per subject. Erasing sets wrapped to NULL and keeps
-- the row as a tombstone (erased_at).
CREATE TABLE data_keys (
	key_id     text PRIMARY KEY,
	subject    text NOT NULL,
	wrapped    bytea,
	created_at timestamptz NOT NULL DEFAULT now(),
	erased_at  timestamptz
);
CREATE UNIQUE INDEX data_keys_live ON data_keys (subject) WHERE erased_at IS NULL;
CREATE INDEX data_keys_subject ON data_keys (subject, erased_at);
-- A value derived from the master key, to refuse another key at start.
CREATE TABLE key_check (
	id    integer PRIMARY KEY CHECK (id = 1),
	value bytea NOT NULL
);
`,
	4: `
-- hash and prev_hash: 32-byte SHA-256 (package audit), computed by the
-- appending process and checked by the append statement against the
-- stream's row: last_hash and last_at are the hash and recorded_at of the
-- stream's last event. NOT VALID: the events stored before hashing are
-- hashed at open (hashStored); every row inserted must have its hash.
ALTER TABLE events ADD COLUMN hash bytea, ADD COLUMN prev_hash bytea;
ALTER TABLE events ADD CONSTRAINT events_hashed
	CHECK (coalesce(length(hash), 0) = 32 AND coalesce(length(prev_hash), 0) = 32) NOT VALID;
ALTER TABLE streams ADD COLUMN last_hash bytea, ADD COLUMN last_at timestamptz;

-- The only update allowed: hashing an event stored before hashes existed
-- (hashStored), which changes nothing else.
CREATE OR REPLACE FUNCTION events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.hash IS NULL
		AND (NEW.position, NEW.tx_id, NEW.stream_id, NEW.stream_type, NEW.version, NEW.event_id,
			NEW.event_type, NEW.schema_version, NEW.data::text, NEW.metadata::text, NEW.recorded_at)
		IS NOT DISTINCT FROM (OLD.position, OLD.tx_id, OLD.stream_id, OLD.stream_type, OLD.version, OLD.event_id,
			OLD.event_type, OLD.schema_version, OLD.data::text, OLD.metadata::text, OLD.recorded_at) THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION 'chronicle: events are immutable: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END $$;
`,
	5: `
-- Seals of the global log (package audit): seal seq covers the events after
-- seal seq-1's last checkpoint up to (last_tx_id, last_position). seal_keys
-- lists every key that ever signed one. Both are append-only, like events.
CREATE TABLE seals (
	seq            bigint PRIMARY KEY CHECK (seq > 0),
	last_tx_id     bigint NOT NULL,
	last_position  bigint NOT NULL,
	count          bigint NOT NULL CHECK (count >= 0),
	root           bytea NOT NULL,
	prev_seal_hash bytea NOT NULL,
	sealed_at      timestamptz NOT NULL,
	seal_hash      bytea NOT NULL,
	key_id         text,
	signature      text
);
CREATE TABLE seal_keys (
	key_id     text PRIMARY KEY,
	public_key bytea NOT NULL,
	first_seal bigint NOT NULL
);
CREATE FUNCTION seals_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'chronicle: seals are immutable: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER seals_no_update_delete BEFORE UPDATE OR DELETE ON seals
	FOR EACH ROW EXECUTE FUNCTION seals_immutable();
CREATE TRIGGER seals_no_truncate BEFORE TRUNCATE ON seals
	FOR EACH STATEMENT EXECUTE FUNCTION seals_immutable();
CREATE TRIGGER seal_keys_no_update_delete BEFORE UPDATE OR DELETE ON seal_keys
	FOR EACH ROW EXECUTE FUNCTION seals_immutable();
CREATE TRIGGER seal_keys_no_truncate BEFORE TRUNCATE ON seal_keys
	FOR EACH STATEMENT EXECUTE FUNCTION seals_immutable();
`,
	6: `
-- Where a seal copied from another store (chronicle copy) ends in this one:
-- its last_checkpoint, which its seal_hash covers, is the other store's.
-- NULL for the seals this store made.
ALTER TABLE seals ADD COLUMN end_tx_id bigint, ADD COLUMN end_position bigint;
`,
}

// migrateLockClass is the first key of the advisory lock that serializes
// migrations of one schema across processes ("chro").
const migrateLockClass = 0x6368726f

// migrate brings the schema up to the latest migration. Two processes may
// run it at once: the advisory lock makes the second wait and then find
// nothing to do. progress, when set, follows the hashing of old events.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, progress func(done, total int64)) error {
	if err := migrateSteps(ctx, pool, schema, migrations); err != nil {
		return err
	}
	return hashStored(ctx, pool, schema, progress)
}

// hashBatch is how many events hashStored hashes per transaction.
const hashBatch = 1000

// hashStored hashes the events stored before hashes existed, in log order,
// hashBatch per transaction: killed, it goes on where it stopped (only
// events without a hash are hashed). Processes opening the store at once
// take turns per batch. Done, it validates events_hashed, which proves
// every event hashed and makes the next open skip all this.
func hashStored(ctx context.Context, pool *pgxpool.Pool, schema string, progress func(done, total int64)) error {
	var validated bool
	err := pool.QueryRow(ctx, `SELECT convalidated FROM pg_constraint
WHERE conname = 'events_hashed' AND conrelid = $1::regclass`, ident(schema)+".events").Scan(&validated)
	if err != nil || validated {
		return err
	}
	var total int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+ident(schema)+`.events WHERE hash IS NULL`).Scan(&total); err != nil {
		return fmt.Errorf("migrate: hash stored events: %w", err)
	}
	var (
		after chronicle.Checkpoint
		done  int64
	)
	for {
		n, last, err := hashSome(ctx, pool, schema, after)
		if err != nil {
			return fmt.Errorf("migrate: hash stored events: %w", err)
		}
		if n == 0 {
			break
		}
		after, done = last, done+int64(n)
		if progress != nil {
			progress(done, max(total, done))
		}
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE `+ident(schema)+`.events VALIDATE CONSTRAINT events_hashed`); err != nil {
		return fmt.Errorf("migrate: hash stored events: %w", err)
	}
	return nil
}

// hashSome hashes up to hashBatch unhashed events after the checkpoint
// after, in one transaction; it returns how many and the last one's place.
func hashSome(ctx context.Context, pool *pgxpool.Pool, schema string, after chronicle.Checkpoint) (int, chronicle.Checkpoint, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, after, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	q := ident(schema)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(migrateLockClass), schema+"/hash"); err != nil {
		return 0, after, err
	}
	rows, err := tx.Query(ctx, `SELECT `+eventColumns+` FROM `+q+`.events
WHERE (tx_id, position) > ($1::text::xid8, $2) AND hash IS NULL ORDER BY tx_id, position LIMIT $3`,
		strconv.FormatUint(after.TxID, 10), after.Position, hashBatch)
	if err != nil {
		return 0, after, err
	}
	evs, err := scanEvents(rows, hashBatch)
	if err != nil {
		return 0, after, err
	}
	// A stream's events come in version order: the previous one is hashed
	// earlier in this batch or in an earlier one.
	hashes := make(map[string]audit.Hash)
	var (
		streams       = make([]string, len(evs))
		versions      = make([]int64, len(evs))
		hashed, prevs = make([][]byte, len(evs)), make([][]byte, len(evs))
	)
	for i, e := range evs {
		prev, ok := hashes[e.StreamID]
		if !ok && e.Version > 1 {
			var b []byte
			err := tx.QueryRow(ctx, `SELECT hash FROM `+q+`.events WHERE stream_id = $1 AND version = $2`, e.StreamID, e.Version-1).Scan(&b)
			if err != nil || len(b) != len(prev) {
				return 0, after, fmt.Errorf("%s v%d: previous event's hash: %v", e.StreamID, e.Version, err)
			}
			prev = audit.Hash(b)
		}
		h, err := audit.HashEvent(audit.FromRecorded(e, prev))
		if err != nil {
			return 0, after, err
		}
		hashes[e.StreamID] = h
		streams[i], versions[i], hashed[i], prevs[i] = e.StreamID, e.Version, h[:], prev[:]
	}
	_, err = tx.Exec(ctx, `UPDATE `+q+`.events e SET hash = u.hash, prev_hash = u.prev_hash
FROM unnest($1::text[], $2::int8[], $3::bytea[], $4::bytea[]) AS u(stream_id, version, hash, prev_hash)
WHERE e.stream_id = u.stream_id AND e.version = u.version`, streams, versions, hashed, prevs)
	if err != nil {
		return 0, after, err
	}
	// A stream's last event hashed: its row gets what appends chain on.
	_, err = tx.Exec(ctx, `UPDATE `+q+`.streams s SET last_hash = u.hash, last_at = e.recorded_at
FROM unnest($1::text[], $2::int8[], $3::bytea[]) AS u(stream_id, version, hash)
JOIN `+q+`.events e ON e.stream_id = u.stream_id AND e.version = u.version
WHERE s.stream_id = u.stream_id AND s.version = u.version`, streams, versions, hashed)
	if err != nil {
		return 0, after, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, after, err
	}
	if len(evs) == 0 {
		return 0, after, nil
	}
	return len(evs), evs[len(evs)-1].Checkpoint(), nil
}

// migrateSteps is migrate with the migrations given (tests stop early).
func migrateSteps(ctx context.Context, pool *pgxpool.Pool, schema string, migrations []string) error {
	latest := len(migrations) - 1
	// Fast path without DDL rights: already up to date.
	if v, err := schemaVersion(ctx, pool, schema); err == nil && v == latest {
		return nil
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(migrateLockClass), schema); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	q := ident(schema)
	// Simple protocol (no arguments) allows several statements at once.
	setup := `CREATE SCHEMA IF NOT EXISTS ` + q + `;
SET LOCAL search_path = ` + q + `;
CREATE TABLE IF NOT EXISTS migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
);`
	if _, err := tx.Exec(ctx, setup, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var cur int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if cur > latest {
		return fmt.Errorf("migrate: schema %s is at version %d, newer than this build (%d)", schema, cur, latest)
	}
	for v := cur + 1; v <= latest; v++ {
		if _, err := tx.Exec(ctx, migrations[v], pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("migrate: version %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO migrations (version) VALUES ($1)`, v); err != nil {
			return fmt.Errorf("migrate: version %d: %w", v, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// schemaVersion returns the latest migration applied, or an error when the
// schema or its migrations table is missing.
func schemaVersion(ctx context.Context, pool *pgxpool.Pool, schema string) (int, error) {
	var v int
	err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+ident(schema)+`.migrations`).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") {
		return 0, err // undefined table or schema: migrate
	}
	return v, err
}
