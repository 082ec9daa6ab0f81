package chronicle

import (
	"bytes"
	"context"
	"fmt"
)

// Exporter is implemented by stores that a copy (chronicle copy) can read
// everything from, exactly as stored: the events through Store.ReadAll, and
// what ReadAll does not show through these methods.
type Exporter interface {
	// CountEvents returns the number of events ReadAll can return now.
	CountEvents(ctx context.Context) (int64, error)

	// EventAt returns the n-th event (1-based) of the global log in
	// ReadAll's order. Errors: ErrNotFound when the log has fewer.
	EventAt(ctx context.Context, n int64) (RecordedEvent, error)

	// ListSnapshots returns at most limit snapshots of streams whose ids
	// sort after after (byte order), in that order, TakenAt as stored.
	ListSnapshots(ctx context.Context, after string, limit int) ([]Snapshot, error)

	// ListDataKeys returns at most limit data keys whose ids sort after
	// after (byte order), in that order: live keys and tombstones (erased
	// keys, Wrapped nil) alike.
	ListDataKeys(ctx context.Context, after string, limit int) ([]DataKey, error)
}

// Importer is implemented by stores that a copy can write into. It stores
// what another store recorded as it was recorded, not as an Append would
// (which assigns new times). Writers must be stopped while it runs: it
// takes no part in optimistic concurrency.
type Importer interface {
	// ImportEvents adds events at the end of the global log in the order
	// given, in one transaction: all land or none. Ids, stream ids,
	// versions, types, schema versions, data and metadata (the exact
	// bytes) and RecordedAt are kept; positions and TxIDs are this store's
	// own. Each event must be its stream's next version, here or earlier
	// in events; the streams' versions are set to their last event's.
	//
	// Errors: *InvalidError when an event is not its stream's next
	// version; *DuplicateEventError when an event id is already stored;
	// ErrClosed.
	ImportEvents(ctx context.Context, events []RecordedEvent) error

	// ImportSnapshots stores snapshots as given (TakenAt included),
	// replacing the stored snapshot of each stream. Errors: ErrClosed.
	ImportSnapshots(ctx context.Context, snapshots []Snapshot) error

	// ImportDataKeys stores data keys as given, live or erased, that are
	// not stored yet, and leaves stored ones as they are (a resumed copy
	// must not rewrite them: the old versions could outlive an erasure in
	// the store's files). A stored key must be the one given, except that
	// a stored tombstone stays one, and a stored live key given erased is
	// erased (as by EraseSubject).
	//
	// Errors: *InvalidError when a stored key differs from the one given
	// (another subject, wrapped key or creation time under its id, or
	// another live key of its subject): not a copy of the same store;
	// ErrClosed.
	ImportDataKeys(ctx context.Context, keys []DataKey) error

	// ImportSeals adds seals made by another store after the latest seal,
	// in one transaction, exactly as made (their hashes and signatures
	// hold), each with its End set to where it ends in this store; and
	// keys, the keys that signed them, unless listed already.
	//
	// Errors: ErrSealConflict when a seal does not follow the latest one
	// (seq + 1, chained by its prev_seal_hash); *InvalidError when a seal
	// of events has no End; ErrClosed.
	//
	// keys may hold more: a key that signs none of seals is left for the
	// batch that has its first seal, which its first_seal must be.
	ImportSeals(ctx context.Context, seals []Seal, keys []SealKey) error
}

// CheckSameDataKeys checks that a store, which holds stored, holds each key
// given as given (see Importer.ImportDataKeys): a target holding another
// key under an id, or another live key of a subject, is not a copy of the
// keys' store.
// Errors: *InvalidError naming the first key that differs.
func CheckSameDataKeys(given, stored []DataKey) error {
	byID := make(map[string]DataKey, len(stored))
	for _, k := range stored {
		byID[k.ID] = k
	}
	for i, k := range given {
		g, ok := byID[k.ID]
		why := ""
		switch {
		case !ok:
			why = "its subject has another live key stored"
		case g.Subject != k.Subject:
			why = "it is stored with another subject"
		case !g.ErasedAt.IsZero():
			continue // a tombstone stays one
		case !k.ErasedAt.IsZero():
			why = "it is stored live" // not reached: the erasure ran first
		case !bytes.Equal(g.Wrapped, k.Wrapped) || !g.CreatedAt.Equal(k.CreatedAt):
			why = "it is stored with another wrapped key or creation time"
		}
		if why != "" {
			return &InvalidError{Field: fmt.Sprintf("keys[%d]", i),
				Reason: fmt.Sprintf("import data key %s of %s: %s", k.ID, k.Subject, why)}
		}
	}
	return nil
}
