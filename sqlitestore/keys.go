package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle"
)

var _ chronicle.KeyStore = (*Store)(nil)

// CreateDataKey stores k as its subject's live key unless the subject has
// one, and returns the subject's live key. Errors: chronicle.ErrClosed.
func (s *Store) CreateDataKey(ctx context.Context, k chronicle.DataKey) (chronicle.DataKey, error) {
	var got chronicle.DataKey
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		res, err := w.tx.ExecContext(w.ctx, `INSERT INTO data_keys (key_id, subject, wrapped, created_at)
VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, k.ID, k.Subject, k.Wrapped, w.now)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		got, err = liveKey(w.ctx, w.tx, k.Subject)
		return n > 0, err
	})
	if err != nil {
		return chronicle.DataKey{}, fmt.Errorf("create data key of %s: %w", k.Subject, err)
	}
	return got, nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func liveKey(ctx context.Context, q queryRower, subject string) (chronicle.DataKey, error) {
	k := chronicle.DataKey{Subject: subject}
	var at int64
	err := q.QueryRowContext(ctx, `SELECT key_id, wrapped, created_at FROM data_keys
WHERE subject = ? AND erased_at IS NULL`, subject).Scan(&k.ID, &k.Wrapped, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return k, chronicle.ErrNotFound
	}
	k.CreatedAt = time.UnixMicro(at).UTC()
	return k, err
}

// SubjectKey returns the subject's live key.
// Errors: chronicle.ErrNotFound, chronicle.ErrClosed.
func (s *Store) SubjectKey(ctx context.Context, subject string) (chronicle.DataKey, error) {
	if s.closed.Load() {
		return chronicle.DataKey{}, chronicle.ErrClosed
	}
	k, err := liveKey(ctx, s.rdb, subject)
	if errors.Is(err, chronicle.ErrNotFound) {
		return k, fmt.Errorf("data key of %s: %w", subject, err)
	}
	if err != nil {
		return k, s.readErr("data key of "+subject, err)
	}
	return k, nil
}

// DataKeys returns the live keys among ids. Errors: chronicle.ErrClosed.
func (s *Store) DataKeys(ctx context.Context, ids []string) ([]chronicle.DataKey, error) {
	if s.closed.Load() {
		return nil, chronicle.ErrClosed
	}
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT key_id, subject, wrapped, created_at FROM data_keys
WHERE key_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`) AND erased_at IS NULL`, args...)
	if err != nil {
		return nil, s.readErr("data keys", err)
	}
	defer rows.Close()
	var out []chronicle.DataKey
	for rows.Next() {
		var k chronicle.DataKey
		var at int64
		if err := rows.Scan(&k.ID, &k.Subject, &k.Wrapped, &at); err != nil {
			return nil, s.readErr("data keys", err)
		}
		k.CreatedAt = time.UnixMicro(at).UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("data keys", err)
	}
	return out, nil
}

// EraseSubject destroys the subject's live key. secure_delete zeroes the
// freed bytes in the database file, and a TRUNCATE checkpoint (best effort:
// readers may hold the WAL) empties the WAL, which still held the key's
// pages. Errors: chronicle.ErrNotFound, chronicle.ErrClosed.
func (s *Store) EraseSubject(ctx context.Context, subject string) (time.Time, error) {
	var at sql.NullInt64
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		res, err := w.tx.ExecContext(w.ctx, `UPDATE data_keys SET wrapped = NULL, erased_at = ?
WHERE subject = ? AND erased_at IS NULL`, w.now, subject)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		err = w.tx.QueryRowContext(w.ctx, `SELECT max(erased_at) FROM data_keys WHERE subject = ?`, subject).Scan(&at)
		return n > 0, err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("erase %s: %w", subject, err)
	}
	if !at.Valid {
		return time.Time{}, fmt.Errorf("erase %s: %w", subject, chronicle.ErrNotFound)
	}
	if s.ckdb != nil {
		var busy, log, done int
		_ = s.ckdb.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done)
	}
	return time.UnixMicro(at.Int64).UTC(), nil
}

// KeyCheck returns the stored master key check value, storing check when
// there is none. Errors: chronicle.ErrClosed.
func (s *Store) KeyCheck(ctx context.Context, check []byte) ([]byte, error) {
	var got []byte
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		res, err := w.tx.ExecContext(w.ctx, `INSERT INTO key_check (id, value) VALUES (1, ?) ON CONFLICT DO NOTHING`, check)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		err = w.tx.QueryRowContext(w.ctx, `SELECT value FROM key_check WHERE id = 1`).Scan(&got)
		return n > 0, err
	})
	if err != nil {
		return nil, fmt.Errorf("key check: %w", err)
	}
	return got, nil
}
