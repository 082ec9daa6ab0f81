package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chronicle-es/chronicle"
)

var (
	_ chronicle.Exporter = (*Store)(nil)
	_ chronicle.Importer = (*Store)(nil)
)

// CountEvents returns the number of committed events, those ReadAll still
// holds back behind an open transaction included: a copy, the only writer,
// must count what it committed itself. Errors: chronicle.ErrClosed.
func (s *Store) CountEvents(ctx context.Context) (int64, error) {
	if s.closed() {
		return 0, fmt.Errorf("count events: %w", chronicle.ErrClosed)
	}
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n)
	return n, s.opErr("count events", err)
}

// EventAt returns the n-th committed event in (TxID, Position) order (see
// CountEvents). Errors: chronicle.ErrNotFound, chronicle.ErrClosed.
func (s *Store) EventAt(ctx context.Context, n int64) (chronicle.RecordedEvent, error) {
	if s.closed() {
		return chronicle.RecordedEvent{}, fmt.Errorf("event at %d: %w", n, chronicle.ErrClosed)
	}
	if n < 1 {
		return chronicle.RecordedEvent{}, fmt.Errorf("event at %d: %w", n, chronicle.ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events ORDER BY tx_id, position OFFSET $1 LIMIT 1`, n-1)
	if err != nil {
		return chronicle.RecordedEvent{}, s.opErr(fmt.Sprintf("event at %d", n), err)
	}
	evs, err := scanEvents(rows, 1)
	if err != nil {
		return chronicle.RecordedEvent{}, s.opErr(fmt.Sprintf("event at %d", n), err)
	}
	if len(evs) == 0 {
		return chronicle.RecordedEvent{}, fmt.Errorf("event at %d: %w", n, chronicle.ErrNotFound)
	}
	return evs[0], nil
}

// ListSnapshots returns at most limit snapshots after stream id after.
// Errors: chronicle.ErrClosed.
func (s *Store) ListSnapshots(ctx context.Context, after string, limit int) ([]chronicle.Snapshot, error) {
	if s.closed() {
		return nil, fmt.Errorf("list snapshots: %w", chronicle.ErrClosed)
	}
	rows, err := s.pool.Query(ctx, `SELECT stream_id, version, schema_version, data, taken_at FROM snapshots
WHERE stream_id COLLATE "C" > $1 ORDER BY stream_id COLLATE "C" LIMIT $2`, after, limit)
	if err != nil {
		return nil, s.opErr("list snapshots", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (chronicle.Snapshot, error) {
		var snap chronicle.Snapshot
		var data []byte
		err := r.Scan(&snap.StreamID, &snap.Version, &snap.SchemaVersion, &data, &snap.TakenAt)
		snap.Data, snap.TakenAt = data, snap.TakenAt.UTC()
		return snap, err
	})
	return out, s.opErr("list snapshots", err)
}

// ListDataKeys returns at most limit data keys after id after, tombstones
// included. Errors: chronicle.ErrClosed.
func (s *Store) ListDataKeys(ctx context.Context, after string, limit int) ([]chronicle.DataKey, error) {
	if s.closed() {
		return nil, fmt.Errorf("list data keys: %w", chronicle.ErrClosed)
	}
	rows, err := s.pool.Query(ctx, `SELECT key_id, subject, wrapped, created_at, erased_at FROM data_keys
WHERE key_id COLLATE "C" > $1 ORDER BY key_id COLLATE "C" LIMIT $2`, after, limit)
	if err != nil {
		return nil, s.opErr("list data keys", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (chronicle.DataKey, error) {
		var k chronicle.DataKey
		var erased *time.Time
		err := r.Scan(&k.ID, &k.Subject, &k.Wrapped, &k.CreatedAt, &erased)
		k.CreatedAt = k.CreatedAt.UTC()
		if erased != nil {
			k.ErasedAt = erased.UTC()
		}
		return k, err
	})
	return out, s.opErr("list data keys", err)
}

// ImportEvents adds events exactly as recorded elsewhere, in one
// transaction: COPY for the events (positions are taken in the order
// given), then one statement setting each stream's row. The immutability
// triggers stay on: nothing is updated or deleted.
// Errors: *chronicle.InvalidError, *chronicle.DuplicateEventError,
// chronicle.ErrClosed, ErrReadOnly on a Replica.
func (s *Store) ImportEvents(ctx context.Context, events []chronicle.RecordedEvent) error {
	if s.closed() {
		return fmt.Errorf("import events: %w", chronicle.ErrClosed)
	}
	if s.readOnly {
		return fmt.Errorf("import events: %w", ErrReadOnly)
	}
	if len(events) == 0 {
		return nil
	}
	tx, err := s.wpool.Begin(ctx)
	if err != nil {
		return s.opErr("import events", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// The streams' heads, locked: each event must follow its stream's
	// last, version and hash chain alike.
	var ids []string
	last := map[string]*streamHead{}
	for _, e := range events {
		if last[e.StreamID] == nil {
			ids = append(ids, e.StreamID)
			last[e.StreamID] = &streamHead{}
		}
	}
	rows, err := tx.Query(ctx, `SELECT stream_id, version, last_hash FROM streams WHERE stream_id = ANY($1) ORDER BY stream_id FOR UPDATE`, ids)
	if err != nil {
		return s.opErr("import events", err)
	}
	var id string
	var v int64
	var h []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &v, &h}, func() error {
		last[id].version = v
		copy(last[id].hash[:], h)
		return nil
	})
	if err != nil {
		return s.opErr("import events", err)
	}
	for _, e := range events {
		if err := last[e.StreamID].follow(e); err != nil {
			return err
		}
	}

	i := 0
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"events"},
		[]string{"stream_id", "stream_type", "version", "event_id", "event_type", "schema_version", "data", "metadata", "recorded_at", "hash", "prev_hash"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(events) {
				return nil, nil
			}
			e := events[i]
			i++
			var meta any
			if len(e.Metadata) > 0 {
				meta = []byte(e.Metadata)
			}
			return []any{e.StreamID, chronicle.StreamType(e.StreamID), e.Version, e.ID, e.Type,
				max(e.SchemaVersion, 1), []byte(e.Data), meta, e.RecordedAt, e.Hash[:], e.PrevHash[:]}, nil
		}))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return &chronicle.DuplicateEventError{Stream: events[0].StreamID, EventID: events[0].ID,
			Reason: "importing events of which one is stored already: " + pgErr.Detail}
	}
	if err != nil {
		return s.opErr("import events", err)
	}
	versions := make([]int64, len(ids))
	types := make([]string, len(ids))
	hashes := make([][]byte, len(ids))
	ats := make([]time.Time, len(ids))
	for j, id := range ids {
		hd := last[id]
		versions[j], types[j], hashes[j], ats[j] = hd.version, chronicle.StreamType(id), hd.hash[:], hd.at
	}
	if _, err := tx.Exec(ctx, `INSERT INTO streams (stream_id, stream_type, version, last_hash, last_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::bytea[], $5::timestamptz[])
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, last_tx = pg_current_xact_id(),
	last_hash = excluded.last_hash, last_at = excluded.last_at`, ids, types, versions, hashes, ats); err != nil {
		return s.opErr("import events", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return s.opErr("import events", err)
	}
	s.requestNotify()
	return nil
}

// ImportSnapshots stores snapshots as given, replacing stored ones.
// Errors: chronicle.ErrClosed, ErrReadOnly on a Replica.
func (s *Store) ImportSnapshots(ctx context.Context, snapshots []chronicle.Snapshot) error {
	if s.closed() {
		return fmt.Errorf("import snapshots: %w", chronicle.ErrClosed)
	}
	if s.readOnly {
		return fmt.Errorf("import snapshots: %w", ErrReadOnly)
	}
	b := &pgx.Batch{}
	for _, snap := range snapshots {
		b.Queue(`INSERT INTO snapshots (stream_id, version, schema_version, data, taken_at)
VALUES ($1, $2, $3, $4::text::json, $5)
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, schema_version = excluded.schema_version,
	data = excluded.data, taken_at = excluded.taken_at`, snap.StreamID, snap.Version, snap.SchemaVersion, string(snap.Data), snap.TakenAt)
	}
	return s.opErr("import snapshots", s.pool.SendBatch(ctx, b).Close())
}

// ImportDataKeys stores the keys not stored yet and leaves the others
// alone: a resumed copy rewriting every row would leave old versions of
// each wrapped key in the table's file, for an erasure to miss. A stored
// key must be the one given, except that a stored tombstone stays one and
// a live key given as erased is erased here too (and purged, as by
// EraseSubject). The erasures go first so that a subject's live key never
// meets another live one.
// Errors: *chronicle.InvalidError when a stored key differs,
// chronicle.ErrClosed, ErrReadOnly on a Replica.
func (s *Store) ImportDataKeys(ctx context.Context, keys []chronicle.DataKey) error {
	if s.closed() {
		return fmt.Errorf("import data keys: %w", chronicle.ErrClosed)
	}
	if s.readOnly {
		return fmt.Errorf("import data keys: %w", ErrReadOnly)
	}
	if len(keys) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
		if !k.ErasedAt.IsZero() {
			b.Queue(`UPDATE data_keys SET wrapped = NULL, erased_at = $3
WHERE key_id = $1 AND subject = $2 AND erased_at IS NULL`, k.ID, k.Subject, k.ErasedAt)
		}
	}
	erasures := b.Len()
	for _, k := range keys {
		var at *time.Time
		if !k.ErasedAt.IsZero() {
			at = &k.ErasedAt
		}
		b.Queue(`INSERT INTO data_keys (key_id, subject, wrapped, created_at, erased_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING`, k.ID, k.Subject, k.Wrapped, k.CreatedAt, at)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.opErr("import data keys", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	br := tx.SendBatch(ctx, b)
	erased := false
	for i := range b.Len() {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return s.opErr("import data keys", err)
		}
		erased = erased || (i < erasures && tag.RowsAffected() > 0)
	}
	if err := br.Close(); err != nil {
		return s.opErr("import data keys", err)
	}
	rows, err := tx.Query(ctx, `SELECT key_id, subject, wrapped, created_at, erased_at FROM data_keys WHERE key_id = ANY($1)`, ids)
	if err != nil {
		return s.opErr("import data keys", err)
	}
	stored, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (chronicle.DataKey, error) {
		var k chronicle.DataKey
		var at *time.Time
		err := r.Scan(&k.ID, &k.Subject, &k.Wrapped, &k.CreatedAt, &at)
		if at != nil {
			k.ErasedAt = *at
		}
		return k, err
	})
	if err != nil {
		return s.opErr("import data keys", err)
	}
	if err := chronicle.CheckSameDataKeys(keys, stored); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return s.opErr("import data keys", err)
	}
	if erased {
		s.purgeDataKeys(ctx)
	}
	return nil
}

// streamHead is where an import stands in a stream.
type streamHead struct {
	version int64
	hash    [32]byte
	at      time.Time
}

// follow moves h to e, unless e is not the stream's next event: its next
// version, chained to the hash of the one before.
func (h *streamHead) follow(e chronicle.RecordedEvent) error {
	switch {
	case e.Version != h.version+1:
		return &chronicle.InvalidError{Field: "version", Reason: fmt.Sprintf(
			"import %s v%d: the stream is at version %d", e.StreamID, e.Version, h.version)}
	case e.PrevHash != h.hash:
		return &chronicle.InvalidError{Field: "prev_hash", Reason: fmt.Sprintf(
			"import %s v%d: prev_hash is not the hash of version %d", e.StreamID, e.Version, h.version)}
	}
	h.version, h.hash, h.at = e.Version, e.Hash, e.RecordedAt
	return nil
}
