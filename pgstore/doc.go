// Package pgstore is the PostgreSQL backend of chronicle, built on
// jackc/pgx/v5 (pgxpool).
//
// Open creates or migrates the store's schema (default "chronicle"), runs
// every connection with search_path set to it, and returns a *Store that
// implements chronicle.Store, chronicle.SnapshotStore and
// chronicle.SQLDatabase.
//
// # Tables
//
//   - events: the log. position (identity), tx_id (xid8, the writing
//     transaction), stream_id, stream_type, version, event_id (uuid, unique),
//     event_type, schema_version, data and metadata (json), recorded_at.
//     Primary key (stream_id, version); index (tx_id, position), which is
//     exactly the order ReadAll reads in.
//   - streams: one row per stream with its current version. Appends lock and
//     update only their streams' rows, so writers of different streams never
//     wait for each other.
//   - snapshots: the latest snapshot of each stream (a cache).
//   - migrations: the schema versions applied.
//
// # Gap safety
//
// Identity values are taken at insert time but transactions commit in
// another order, so "the last position seen" would skip events for ever.
// ReadAll and Head only return rows whose tx_id is below
// pg_snapshot_xmin(pg_current_snapshot()) (every transaction below it has
// ended), ordered by (tx_id, position); a chronicle.Checkpoint is that pair.
// The price is that one long-running write transaction anywhere in the
// cluster holds every reader back until it ends: bound it with
// idle_in_transaction_session_timeout (and statement_timeout) on the roles
// that write, e.g.
//
//	ALTER ROLE chronicle_app SET idle_in_transaction_session_timeout = '60s';
//
// # Replicas
//
// OpenReplica returns a *Replica: a read-only Store on a streaming-replication
// standby of the store's database (same schema, same events and
// checkpoints, same read-model tables). Its ReadAll is gap-safe too: a hot
// standby's pg_current_snapshot() counts as running every transaction of the
// primary whose end it has not replayed. It measures its lag behind the
// primary every ReplicaOptions.CheckInterval and says whether it may serve
// reads (Usable); writes fail with ErrReadOnly.
//
// # Immutability and least privilege
//
// Triggers refuse UPDATE, DELETE (row triggers) and TRUNCATE (statement
// trigger) on events, and so every statement that would rewrite a stored
// event (an upsert, MERGE), even for the table owner; DELETE and TRUNCATE
// on streams too. A superuser can still drop
// the triggers, so run the service as a role that owns nothing, after the
// schema has been migrated once by its owner:
//
//	CREATE ROLE chronicle_app LOGIN;
//	GRANT USAGE ON SCHEMA chronicle TO chronicle_app;
//	GRANT SELECT ON chronicle.migrations TO chronicle_app;
//	GRANT SELECT, INSERT ON chronicle.events TO chronicle_app;
//	GRANT SELECT, INSERT, UPDATE ON chronicle.streams TO chronicle_app;
//	GRANT SELECT, INSERT, UPDATE, DELETE ON chronicle.snapshots TO chronicle_app;
//
// Open only needs DDL rights when the schema is missing or behind.
//
// # Group commit
//
// At most a few goroutines (Options.Committers) commit appends at once;
// callers of Append whose context cannot be cancelled commit themselves, so
// a lone append costs no hand-off. The others leave batches to a
// goroutine, so that a hanging commit never holds them past their
// cancellation; but a caller whose append is the only one waiting, with
// nothing committing, commits it alone on its own context, which cancels
// that statement and nobody else's. Each committer takes whatever appends
// are waiting (at most one per stream) and runs them as ONE statement in
// one implicit transaction: one round trip and one WAL flush for the
// whole batch. NOTIFY is sent after the commit, at most every few
// milliseconds. The statement checks every append's expected version
// against its locked streams row and inserts only the appends that pass, so
// each append keeps its own result and conflict. When the statement fails as
// a whole (an event id inserted concurrently, a deadlock) or a BeforeCommit
// hook is set, the batch runs in an explicit transaction with one savepoint
// per append instead, so a failing append fails alone.
//
// A batch costs the server about as much as a few single appends, so a
// committer gathers fuller ones: while another batch commits it waits (at
// most 2 ms) for more appends, and after a batch commits, the next one
// waits (at most 300 µs) until as many appends as that batch held are
// back. A lone writer never waits: its own next append is all the next
// batch waits for. A lone append of one event to a new stream is two plain
// INSERTs (streams, events) sent together, cheaper for the server than the
// batch statement, and a batch whose appends all create their streams
// inserts the streams rows without trying to update them first.
//
// The append statements are prepared once per connection and their
// arguments encoded into buffers kept from one append to the next: pgx
// drops its own after every query whose arguments pass 256 bytes, and
// growing a new one for each 100-event append was about half of what the
// append allocated.
//
// # Stream versions
//
// StreamVersion queries run one at a time (Options.VersionReaders); calls
// that come meanwhile wait and are answered together by the next query.
// Each call was waiting before that query began, so it sees every append
// that ended before the call, as if it had queried alone.
package pgstore
