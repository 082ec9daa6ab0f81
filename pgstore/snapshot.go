package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-es/chronicle"
)

// SaveSnapshot stores snap as its stream's snapshot unless the stored one has
// the same schema version and a higher stream version.
// Errors: *chronicle.InvalidError for a bad stream id, version or data;
// ErrReadOnly on a Replica.
func (s *Store) SaveSnapshot(ctx context.Context, snap chronicle.Snapshot) error {
	if err := chronicle.ValidateName("stream_id", snap.StreamID); err != nil {
		return err
	}
	if snap.Version < 0 {
		return &chronicle.InvalidError{Field: "version", Reason: "must not be negative"}
	}
	if err := chronicle.ValidateJSON(snap.Data); err != nil {
		return &chronicle.InvalidError{Field: "data", Reason: err.Error()}
	}
	if s.closed() {
		return fmt.Errorf("save snapshot %s: %w", snap.StreamID, chronicle.ErrClosed)
	}
	if s.readOnly {
		return fmt.Errorf("save snapshot %s: %w", snap.StreamID, ErrReadOnly)
	}
	_, err := s.pool.Exec(ctx, `
INSERT INTO snapshots (stream_id, version, schema_version, data, taken_at)
VALUES ($1, $2, $3, $4::text::json, now())
ON CONFLICT (stream_id) DO UPDATE SET
	version = excluded.version, schema_version = excluded.schema_version,
	data = excluded.data, taken_at = excluded.taken_at
WHERE snapshots.schema_version <> excluded.schema_version OR snapshots.version <= excluded.version`,
		snap.StreamID, snap.Version, snap.SchemaVersion, string(snap.Data))
	return s.opErr("save snapshot "+snap.StreamID, err)
}

// LoadSnapshot returns stream's snapshot. Errors: chronicle.ErrNotFound.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (chronicle.Snapshot, error) {
	if s.closed() {
		return chronicle.Snapshot{}, fmt.Errorf("load snapshot %s: %w", stream, chronicle.ErrClosed)
	}
	snap := chronicle.Snapshot{StreamID: stream}
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT version, schema_version, data, taken_at FROM snapshots WHERE stream_id = $1`, stream).
		Scan(&snap.Version, &snap.SchemaVersion, &data, &snap.TakenAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return chronicle.Snapshot{}, fmt.Errorf("load snapshot %s: %w", stream, chronicle.ErrNotFound)
	}
	if err != nil {
		return chronicle.Snapshot{}, s.opErr("load snapshot "+stream, err)
	}
	snap.Data = data
	snap.TakenAt = snap.TakenAt.UTC()
	return snap, nil
}

// DeleteSnapshot removes stream's snapshot, if any. Errors: ErrReadOnly on
// a Replica.
func (s *Store) DeleteSnapshot(ctx context.Context, stream string) error {
	if s.closed() {
		return fmt.Errorf("delete snapshot %s: %w", stream, chronicle.ErrClosed)
	}
	if s.readOnly {
		return fmt.Errorf("delete snapshot %s: %w", stream, ErrReadOnly)
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM snapshots WHERE stream_id = $1`, stream)
	return s.opErr("delete snapshot "+stream, err)
}

// DeleteAllSnapshots removes every snapshot. Errors: ErrReadOnly on a
// Replica.
func (s *Store) DeleteAllSnapshots(ctx context.Context) error {
	if s.closed() {
		return fmt.Errorf("delete snapshots: %w", chronicle.ErrClosed)
	}
	if s.readOnly {
		return fmt.Errorf("delete snapshots: %w", ErrReadOnly)
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM snapshots`)
	return s.opErr("delete snapshots", err)
}
