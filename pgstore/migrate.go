package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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
}

// migrateLockClass is the first key of the advisory lock that serializes
// migrations of one schema across processes ("chro").
const migrateLockClass = 0x6368726f

// migrate brings the schema up to the latest migration. Two processes may
// run it at once: the advisory lock makes the second wait and then find
// nothing to do.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	return migrateSteps(ctx, pool, schema, migrations)
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
