package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/jackc/pgx/v5"
)

var _ chronicle.KeyStore = (*Store)(nil)

// CreateDataKey stores k as its subject's live key unless the subject has
// one (the unique index on live keys settles races between processes), and
// returns the subject's live key. Errors: chronicle.ErrClosed.
func (s *Store) CreateDataKey(ctx context.Context, k chronicle.DataKey) (chronicle.DataKey, error) {
	if s.closed() {
		return chronicle.DataKey{}, fmt.Errorf("create data key of %s: %w", k.Subject, chronicle.ErrClosed)
	}
	// One statement: either this insert's row, or the row that made it
	// conflict (committed before it, since the insert waited for it).
	got := chronicle.DataKey{Subject: k.Subject}
	err := s.pool.QueryRow(ctx, `WITH ins AS (
	INSERT INTO data_keys (key_id, subject, wrapped) VALUES ($1, $2, $3)
	ON CONFLICT DO NOTHING RETURNING key_id, wrapped, created_at)
SELECT key_id, wrapped, created_at FROM ins`, k.ID, k.Subject, k.Wrapped).Scan(&got.ID, &got.Wrapped, &got.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.SubjectKey(ctx, k.Subject)
	}
	if err != nil {
		return chronicle.DataKey{}, s.opErr("create data key of "+k.Subject, err)
	}
	got.CreatedAt = got.CreatedAt.UTC()
	return got, nil
}

// SubjectKey returns the subject's live key.
// Errors: chronicle.ErrNotFound, chronicle.ErrClosed.
func (s *Store) SubjectKey(ctx context.Context, subject string) (chronicle.DataKey, error) {
	if s.closed() {
		return chronicle.DataKey{}, fmt.Errorf("data key of %s: %w", subject, chronicle.ErrClosed)
	}
	k := chronicle.DataKey{Subject: subject}
	err := s.pool.QueryRow(ctx, `SELECT key_id, wrapped, created_at FROM data_keys
WHERE subject = $1 AND erased_at IS NULL`, subject).Scan(&k.ID, &k.Wrapped, &k.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, fmt.Errorf("data key of %s: %w", subject, chronicle.ErrNotFound)
	}
	if err != nil {
		return k, s.opErr("data key of "+subject, err)
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return k, nil
}

// DataKeys returns the live keys among ids. Errors: chronicle.ErrClosed.
func (s *Store) DataKeys(ctx context.Context, ids []string) ([]chronicle.DataKey, error) {
	if s.closed() {
		return nil, fmt.Errorf("data keys: %w", chronicle.ErrClosed)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT key_id, subject, wrapped, created_at FROM data_keys
WHERE key_id = ANY($1) AND erased_at IS NULL`, ids)
	if err != nil {
		return nil, s.opErr("data keys", err)
	}
	defer rows.Close()
	var out []chronicle.DataKey
	for rows.Next() {
		var k chronicle.DataKey
		if err := rows.Scan(&k.ID, &k.Subject, &k.Wrapped, &k.CreatedAt); err != nil {
			return nil, s.opErr("data keys", err)
		}
		k.CreatedAt = k.CreatedAt.UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.opErr("data keys", err)
	}
	return out, nil
}

// EraseSubject destroys the subject's live key, then purges the table's
// file (purgeDataKeys). The server's WAL and backups keep the key until
// they are recycled. Errors: chronicle.ErrNotFound, chronicle.ErrClosed.
func (s *Store) EraseSubject(ctx context.Context, subject string) (time.Time, error) {
	if s.closed() {
		return time.Time{}, fmt.Errorf("erase %s: %w", subject, chronicle.ErrClosed)
	}
	var at *time.Time
	err := s.pool.QueryRow(ctx, `WITH upd AS (
	UPDATE data_keys SET wrapped = NULL, erased_at = now()
	WHERE subject = $1 AND erased_at IS NULL RETURNING erased_at)
SELECT greatest((SELECT max(erased_at) FROM upd), (SELECT max(erased_at) FROM data_keys WHERE subject = $1))`, subject).Scan(&at)
	if err != nil {
		return time.Time{}, s.opErr("erase "+subject, err)
	}
	if at == nil {
		return time.Time{}, fmt.Errorf("erase %s: %w", subject, chronicle.ErrNotFound)
	}
	s.purgeDataKeys(ctx)
	return at.UTC(), nil
}

// purgeDataKeys rewrites data_keys into a new file, dropping the old one:
// an update leaves the old row version in the file, and a plain VACUUM
// only marks it free without overwriting it, nor the stale copies of live
// rows that compacting a page leaves behind (later erased, they would
// stay readable). Best effort: it needs the table's owner, and it gives up
// rather than hold the other sessions' reads of data keys behind a long
// wait for its exclusive lock; a version some open transaction can still
// see is kept.
func (s *Store) purgeDataKeys(ctx context.Context) {
	c, err := s.pool.Acquire(ctx)
	if err == nil {
		defer c.Release()
		if _, err = c.Exec(ctx, `SET lock_timeout = '5s'`); err == nil {
			_, err = c.Exec(ctx, `VACUUM FULL data_keys`)
			if _, rerr := c.Exec(context.WithoutCancel(ctx), `RESET lock_timeout`); rerr != nil {
				c.Conn().Close(context.WithoutCancel(ctx)) // never back to the pool with the timeout set
			}
		}
	}
	if err != nil {
		s.log.Warn("erase: VACUUM FULL data_keys failed: the erased key stays in the table's file until it is rewritten", "err", err)
	}
}

// KeyCheck returns the stored master key check value, storing check when
// there is none. Errors: chronicle.ErrClosed.
func (s *Store) KeyCheck(ctx context.Context, check []byte) ([]byte, error) {
	if s.closed() {
		return nil, fmt.Errorf("key check: %w", chronicle.ErrClosed)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO key_check (id, value) VALUES (1, $1) ON CONFLICT DO NOTHING`, check); err != nil {
		return nil, s.opErr("key check", err)
	}
	var got []byte
	if err := s.pool.QueryRow(ctx, `SELECT value FROM key_check WHERE id = 1`).Scan(&got); err != nil {
		return nil, s.opErr("key check", err)
	}
	return got, nil
}
