package chronicle

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"
)

// Store is an event store: streams of versioned events and one global log.
// Every method that blocks takes a context; cancelling it abandons the call
// (an append whose commit was not acknowledged may or may not have landed:
// retry it with the same event ids to find out).
type Store interface {
	// Append atomically adds events to the end of a stream if its current
	// version satisfies expected. All events land, with versions
	// current+1..current+len(events), or none do.
	//
	// Errors: *ConflictError (ErrWrongVersion) when expected does not hold;
	// *InvalidError (ErrInvalid, ErrEventTooLarge) for bad input, checked
	// before anything is written; *DuplicateEventError (ErrDuplicateEvent)
	// when an event id is already stored elsewhere or with other content.
	// Re-appending exactly the events of an earlier append (same ids, same
	// content, same place) is not an error: it returns that append's result
	// and writes nothing.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events []Event) (AppendResult, error)

	// ReadStream returns a stream's events in version order, as opts selects.
	// Errors: ErrStreamNotFound when the stream has no events at all.
	ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) ([]RecordedEvent, error)

	// StreamVersion returns the stream's current version, 0 when it has no events.
	StreamVersion(ctx context.Context, stream string) (int64, error)

	// ReadAll returns committed events of the global log strictly after from,
	// in commit order ((TxID, Position) order), as opts selects. It never
	// returns an event while an earlier one (in that order) may still commit,
	// so a reader that resumes from the last event it saw skips nothing.
	ReadAll(ctx context.Context, from Checkpoint, opts ReadAllOptions) ([]RecordedEvent, error)

	// Head returns the checkpoint of the last event ReadAll can return now,
	// and the number of such events (the log's length to readers).
	Head(ctx context.Context) (Head, error)

	// EventByID returns the stored event with that id.
	// Errors: ErrNotFound.
	EventByID(ctx context.Context, id string) (RecordedEvent, error)

	// Notify returns a channel that receives a value after events commit
	// (coalesced: one value may stand for many commits). It is a hint to read
	// again, not a delivery: readers must still ReadAll from their checkpoint.
	// The channel is released when ctx ends.
	Notify(ctx context.Context) <-chan struct{}

	// Close releases the store's resources. In-flight calls fail with ErrClosed.
	Close() error
}

// AppendResult says where an append's events landed.
type AppendResult struct {
	StreamID      string
	FirstVersion  int64 // version of the first appended event
	LastVersion   int64 // version of the last one: the stream's new version
	FirstPosition int64 // global position of the first appended event
	LastPosition  int64 // global position of the last one
}

// ReadStreamOptions selects part of a stream. The zero value reads it all.
type ReadStreamOptions struct {
	From  int64     // first version to return; 0 or 1 = from the start
	To    int64     // last version to return; 0 = to the end
	Until time.Time // when set, only events recorded at or before it
	Limit int       // at most this many events; 0 = no limit
}

// ReadAllOptions selects events of the global log.
type ReadAllOptions struct {
	Limit       int      // at most this many; 0 = DefaultReadAllLimit
	StreamTypes []string // when set, only streams of these types (see StreamType)
	EventTypes  []string // when set, only events of these types
}

// DefaultReadAllLimit is the page size of ReadAll when none is given.
const DefaultReadAllLimit = 1000

// Head is the end of the global log as readers see it.
type Head struct {
	Checkpoint Checkpoint // zero when the log is empty
	Position   int64      // highest global position readers can see
	RecordedAt time.Time  // when that event was recorded; zero when empty
	// Last is the checkpoint of the last event committed, visible to
	// readers or not yet: a reader that reaches it has read every event
	// committed before Head was called. It is never before Checkpoint, and
	// equals it when readers see every committed event.
	Last Checkpoint
	// Committed is the highest global position committed, visible to
	// readers or not yet (PostgreSQL holds committed events back while an
	// older transaction is open: invariant 4). It is >= Position.
	Committed int64
	// HeldSince is when the oldest committed event that readers cannot see
	// yet was recorded; zero when readers see every committed event. With
	// Committed it shows lag that a reader's checkpoint alone cannot.
	HeldSince time.Time
}

// Snapshot is a cached aggregate state at a stream version. Snapshots are
// only a cache: deleting them never changes a result.
type Snapshot struct {
	StreamID      string
	Version       int64 // the stream version the state reflects
	SchemaVersion int   // the aggregate's snapshot schema version
	Data          json.RawMessage
	TakenAt       time.Time // set by the store
}

// SnapshotStore keeps the latest snapshot of each stream.
type SnapshotStore interface {
	// SaveSnapshot stores s as the stream's snapshot, replacing an older one
	// (lower version, or another schema version). A snapshot older than the
	// stored one of the same schema version is ignored.
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LoadSnapshot returns the stream's snapshot. Errors: ErrNotFound.
	LoadSnapshot(ctx context.Context, stream string) (Snapshot, error)
	// DeleteSnapshot removes the stream's snapshot, if any.
	DeleteSnapshot(ctx context.Context, stream string) error
	// DeleteAllSnapshots removes every snapshot.
	DeleteAllSnapshots(ctx context.Context) error
}

// SQLDatabase is implemented by stores that keep their events in a SQL
// database, so that read models live in the same database and a projection
// can commit its changes and its checkpoint in one transaction.
type SQLDatabase interface {
	// SQLDB returns a handle on the store's database for read models. It is
	// owned by the store: do not close it, and never touch the event tables.
	SQLDB() *sql.DB
	// Dialect names the SQL dialect: "sqlite" or "postgres".
	Dialect() string
}
