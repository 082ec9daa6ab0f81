package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-es/chronicle"
)

var (
	_ chronicle.Exporter = (*Store)(nil)
	_ chronicle.Importer = (*Store)(nil)
)

// CountEvents returns the number of events. Errors: chronicle.ErrClosed.
func (s *Store) CountEvents(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, chronicle.ErrClosed
	}
	var n int64
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil {
		return 0, s.readErr("count events", err)
	}
	return n, nil
}

// EventAt returns the n-th event in position order.
// Errors: chronicle.ErrNotFound, chronicle.ErrClosed.
func (s *Store) EventAt(ctx context.Context, n int64) (chronicle.RecordedEvent, error) {
	if s.closed.Load() {
		return chronicle.RecordedEvent{}, chronicle.ErrClosed
	}
	if n < 1 {
		return chronicle.RecordedEvent{}, fmt.Errorf("event at %d: %w", n, chronicle.ErrNotFound)
	}
	evs, err := s.queryEvents(ctx, 1, "SELECT "+eventCols+" FROM events ORDER BY position LIMIT 1 OFFSET ?", n-1)
	if err != nil {
		return chronicle.RecordedEvent{}, s.readErr(fmt.Sprintf("event at %d", n), err)
	}
	if len(evs) == 0 {
		return chronicle.RecordedEvent{}, fmt.Errorf("event at %d: %w", n, chronicle.ErrNotFound)
	}
	return evs[0], nil
}

// ListSnapshots returns at most limit snapshots after stream id after.
// Errors: chronicle.ErrClosed.
func (s *Store) ListSnapshots(ctx context.Context, after string, limit int) ([]chronicle.Snapshot, error) {
	if s.closed.Load() {
		return nil, chronicle.ErrClosed
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT stream_id, version, schema_version, data, taken_at FROM snapshots
WHERE stream_id > ? ORDER BY stream_id LIMIT ?`, after, limit)
	if err != nil {
		return nil, s.readErr("list snapshots", err)
	}
	defer rows.Close()
	var out []chronicle.Snapshot
	for rows.Next() {
		var snap chronicle.Snapshot
		var at int64
		if err := rows.Scan(&snap.StreamID, &snap.Version, &snap.SchemaVersion, (*[]byte)(&snap.Data), &at); err != nil {
			return nil, s.readErr("list snapshots", err)
		}
		snap.TakenAt = time.UnixMicro(at).UTC()
		out = append(out, snap)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("list snapshots", err)
	}
	return out, nil
}

// ListDataKeys returns at most limit data keys after id after, tombstones
// included. Errors: chronicle.ErrClosed.
func (s *Store) ListDataKeys(ctx context.Context, after string, limit int) ([]chronicle.DataKey, error) {
	if s.closed.Load() {
		return nil, chronicle.ErrClosed
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT key_id, subject, wrapped, created_at, erased_at FROM data_keys
WHERE key_id > ? ORDER BY key_id LIMIT ?`, after, limit)
	if err != nil {
		return nil, s.readErr("list data keys", err)
	}
	defer rows.Close()
	var out []chronicle.DataKey
	for rows.Next() {
		var k chronicle.DataKey
		var at int64
		var erased sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Subject, &k.Wrapped, &at, &erased); err != nil {
			return nil, s.readErr("list data keys", err)
		}
		k.CreatedAt = time.UnixMicro(at).UTC()
		if erased.Valid {
			k.ErasedAt = time.UnixMicro(erased.Int64).UTC()
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("list data keys", err)
	}
	return out, nil
}

// ImportEvents adds events exactly as recorded elsewhere, in one
// transaction of the write loop, with the prepared multi-row inserts of
// Append; positions are taken in the order given. The immutability
// triggers stay on: nothing is updated or deleted.
// Errors: *chronicle.InvalidError, *chronicle.DuplicateEventError,
// chronicle.ErrClosed.
func (s *Store) ImportEvents(ctx context.Context, events []chronicle.RecordedEvent) error {
	if len(events) == 0 {
		return nil
	}
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		// Each event must follow its stream's last: version and hash
		// chain alike.
		type stream struct {
			version          int64
			hash             [32]byte
			created, updated int64
		}
		streams := map[string]*stream{}
		var order []string
		for _, e := range events {
			st := streams[e.StreamID]
			if st == nil {
				st = &stream{created: e.RecordedAt.UnixMicro()}
				var h []byte
				err := w.stmt(s.stmts.version).QueryRowContext(w.ctx, e.StreamID).Scan(&st.version, &h)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return false, fmt.Errorf("read version: %w", err)
				}
				copy(st.hash[:], h)
				streams[e.StreamID] = st
				order = append(order, e.StreamID)
			}
			switch {
			case e.Version != st.version+1:
				return false, &chronicle.InvalidError{Field: "version", Reason: fmt.Sprintf(
					"import %s v%d: the stream is at version %d", e.StreamID, e.Version, st.version)}
			case e.PrevHash != st.hash:
				return false, &chronicle.InvalidError{Field: "prev_hash", Reason: fmt.Sprintf(
					"import %s v%d: prev_hash is not the hash of version %d", e.StreamID, e.Version, st.version)}
			}
			st.version, st.hash, st.updated = e.Version, e.Hash, e.RecordedAt.UnixMicro()
			s.lastMicros = max(s.lastMicros, st.updated) // recorded times keep following positions
		}
		for off := 0; off < len(events); {
			k := len(s.stmts.insert) - 1
			for 1<<k > len(events)-off {
				k--
			}
			chunk := events[off : off+1<<k]
			args := make([]any, 0, len(chunk)*insertCols)
			for _, e := range chunk {
				var meta any
				if len(e.Metadata) > 0 {
					meta = string(e.Metadata)
				}
				// append_first NULL: which events were appended together is
				// not known here (a retry of them is then taken as one append).
				args = append(args, e.ID, e.StreamID, chronicle.StreamType(e.StreamID), e.Version, e.Type,
					max(e.SchemaVersion, 1), string(e.Data), meta, e.RecordedAt.UnixMicro(), nil, e.Hash[:], e.PrevHash[:])
			}
			if _, err := w.stmt(s.stmts.insert[k]).ExecContext(w.ctx, args...); err != nil {
				if isConstraintViolation(err) {
					return false, &chronicle.DuplicateEventError{Stream: chunk[0].StreamID, EventID: chunk[0].ID,
						Reason: "importing events of which one is stored already: " + err.Error()}
				}
				return false, fmt.Errorf("insert events: %w", err)
			}
			off += len(chunk)
		}
		for _, id := range order {
			st := streams[id]
			if _, err := w.stmt(s.stmts.upsertStream).ExecContext(w.ctx, id, chronicle.StreamType(id), st.version, st.created, st.updated, st.hash[:]); err != nil {
				return false, fmt.Errorf("update stream: %w", err)
			}
		}
		return true, nil
	})
	var ie *chronicle.InvalidError
	var de *chronicle.DuplicateEventError
	if err != nil && !errors.As(err, &ie) && !errors.As(err, &de) {
		return fmt.Errorf("import events: %w", err)
	}
	return err
}

// ImportSnapshots stores snapshots as given, replacing stored ones.
// Errors: chronicle.ErrClosed.
func (s *Store) ImportSnapshots(ctx context.Context, snapshots []chronicle.Snapshot) error {
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		for _, snap := range snapshots {
			if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO snapshots (stream_id, version, schema_version, data, taken_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, schema_version = excluded.schema_version,
	data = excluded.data, taken_at = excluded.taken_at`,
				snap.StreamID, snap.Version, snap.SchemaVersion, string(snap.Data), snap.TakenAt.UnixMicro()); err != nil {
				return false, err
			}
		}
		return len(snapshots) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("import snapshots: %w", err)
	}
	return nil
}

// ImportDataKeys stores the keys not stored yet and leaves the others
// alone, as a resumed copy needs. A stored key must be the one given,
// except that a stored tombstone stays one and a live key given as erased
// is erased here too (and the WAL emptied, as by EraseSubject). The
// erasures go first so that a subject's live key never meets another live
// one. Errors: *chronicle.InvalidError when a stored key differs,
// chronicle.ErrClosed.
func (s *Store) ImportDataKeys(ctx context.Context, keys []chronicle.DataKey) error {
	erased := false
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		for _, k := range keys {
			if k.ErasedAt.IsZero() {
				continue
			}
			res, err := w.tx.ExecContext(w.ctx, `UPDATE data_keys SET wrapped = NULL, erased_at = ?
WHERE key_id = ? AND subject = ? AND erased_at IS NULL`, k.ErasedAt.UnixMicro(), k.ID, k.Subject)
			if err != nil {
				return false, err
			}
			n, _ := res.RowsAffected()
			erased = erased || n > 0
		}
		stored := make([]chronicle.DataKey, 0, len(keys))
		for _, k := range keys {
			var at any
			if !k.ErasedAt.IsZero() {
				at = k.ErasedAt.UnixMicro()
			}
			if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO data_keys (key_id, subject, wrapped, created_at, erased_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING`, k.ID, k.Subject, k.Wrapped, k.CreatedAt.UnixMicro(), at); err != nil {
				return false, err
			}
			g := chronicle.DataKey{ID: k.ID}
			var created int64
			var erasedAt sql.NullInt64
			err := w.tx.QueryRowContext(w.ctx, `SELECT subject, wrapped, created_at, erased_at FROM data_keys WHERE key_id = ?`, k.ID).
				Scan(&g.Subject, &g.Wrapped, &created, &erasedAt)
			if errors.Is(err, sql.ErrNoRows) {
				continue // CheckSameDataKeys reports it
			}
			if err != nil {
				return false, err
			}
			g.CreatedAt = time.UnixMicro(created)
			if erasedAt.Valid {
				g.ErasedAt = time.UnixMicro(erasedAt.Int64)
			}
			stored = append(stored, g)
		}
		return len(keys) > 0, chronicle.CheckSameDataKeys(keys, stored)
	})
	if err != nil {
		return fmt.Errorf("import data keys: %w", err)
	}
	if erased && s.ckdb != nil {
		var busy, log, done int
		_ = s.ckdb.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done)
	}
	return nil
}
