package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-es/chronicle"
)

var _ chronicle.SealStore = (*Store)(nil)

const sealColumns = `seq, last_tx_id, last_position, count, root, prev_seal_hash, sealed_at, seal_hash,
	coalesce(key_id, ''), coalesce(signature, ''), coalesce(end_tx_id, 0), coalesce(end_position, 0)`

// AddSeal stores s after the latest seal, and key among the seal keys,
// through the write loop. Errors: chronicle.ErrSealConflict,
// chronicle.ErrClosed.
func (s *Store) AddSeal(ctx context.Context, seal chronicle.Seal, key *chronicle.SealKey) error {
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		var last int64
		var lastHash []byte
		err := w.tx.QueryRowContext(w.ctx, `SELECT seq, seal_hash FROM seals ORDER BY seq DESC LIMIT 1`).Scan(&last, &lastHash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return false, err
		}
		if seal.Seq != last+1 || (last > 0 && string(lastHash) != string(seal.PrevSealHash[:])) {
			return false, fmt.Errorf("%w: seal %d after seal %d", chronicle.ErrSealConflict, seal.Seq, last)
		}
		if key != nil {
			if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO seal_keys (key_id, public_key, first_seal)
SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM seal_keys WHERE key_id = ?1)`, key.KeyID, key.PublicKey, seal.Seq); err != nil {
				return false, err
			}
		}
		_, err = w.tx.ExecContext(w.ctx, `INSERT INTO seals (seq, last_tx_id, last_position, count, root, prev_seal_hash, sealed_at, seal_hash, key_id, signature)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, nullif(?, ''), nullif(?, ''))`,
			seal.Seq, int64(seal.LastCheckpoint.TxID), seal.LastCheckpoint.Position, seal.Count,
			seal.Root[:], seal.PrevSealHash[:], seal.SealedAt.UnixMicro(), seal.SealHash[:], seal.KeyID, seal.Signature)
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("add seal %d: %w", seal.Seq, err)
	}
	return nil
}

// Seals returns at most limit seals after seq after (all when limit is 0).
func (s *Store) Seals(ctx context.Context, after int64, limit int) ([]chronicle.Seal, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("read seals: %w", chronicle.ErrClosed)
	}
	if limit <= 0 {
		limit = -1 // no limit
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+sealColumns+` FROM seals WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, s.readErr("read seals", err)
	}
	defer rows.Close()
	var seals []chronicle.Seal
	for rows.Next() {
		seal, err := scanSeal(rows)
		if err != nil {
			return nil, s.readErr("read seals", err)
		}
		seals = append(seals, seal)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("read seals", err)
	}
	return seals, nil
}

// LatestSeal returns the seal with the highest seq.
// Errors: chronicle.ErrNotFound, chronicle.ErrClosed.
func (s *Store) LatestSeal(ctx context.Context) (chronicle.Seal, error) {
	if s.closed.Load() {
		return chronicle.Seal{}, fmt.Errorf("latest seal: %w", chronicle.ErrClosed)
	}
	seal, err := scanSeal(s.rdb.QueryRowContext(ctx, `SELECT `+sealColumns+` FROM seals ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return chronicle.Seal{}, fmt.Errorf("latest seal: %w", chronicle.ErrNotFound)
	}
	if err != nil {
		return chronicle.Seal{}, s.readErr("latest seal", err)
	}
	return seal, nil
}

// SealKeys returns every key that signed a seal, in the order first used.
func (s *Store) SealKeys(ctx context.Context) ([]chronicle.SealKey, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("read seal keys: %w", chronicle.ErrClosed)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT key_id, public_key, first_seal FROM seal_keys ORDER BY first_seal, key_id`)
	if err != nil {
		return nil, s.readErr("read seal keys", err)
	}
	defer rows.Close()
	var keys []chronicle.SealKey
	for rows.Next() {
		var k chronicle.SealKey
		if err := rows.Scan(&k.KeyID, &k.PublicKey, &k.FirstSeal); err != nil {
			return nil, s.readErr("read seal keys", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("read seal keys", err)
	}
	return keys, nil
}

func scanSeal(r interface{ Scan(...any) error }) (chronicle.Seal, error) {
	var s chronicle.Seal
	var tx, at, endTx int64
	var root, prev, hash []byte
	if err := r.Scan(&s.Seq, &tx, &s.LastCheckpoint.Position, &s.Count, &root, &prev, &at, &hash, &s.KeyID, &s.Signature, &endTx, &s.End.Position); err != nil {
		return s, err
	}
	s.LastCheckpoint.TxID, s.End.TxID = uint64(tx), uint64(endTx)
	// A stored hash of another length (edited behind the store's back)
	// reads padded or cut, and fails verification.
	copy(s.Root[:], root)
	copy(s.PrevSealHash[:], prev)
	copy(s.SealHash[:], hash)
	s.SealedAt = time.UnixMicro(at).UTC()
	return s, nil
}

// ImportSeals adds seals made by another store after the latest seal, as
// made, with their ends in this store, and the keys that signed them,
// through the write loop. Errors: chronicle.ErrSealConflict,
// *chronicle.InvalidError, chronicle.ErrClosed.
func (s *Store) ImportSeals(ctx context.Context, seals []chronicle.Seal, keys []chronicle.SealKey) error {
	if len(seals) == 0 {
		return nil
	}
	if err := chronicle.CheckImportedSeals(seals); err != nil {
		return err
	}
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		var last int64
		var lastHash []byte
		err := w.tx.QueryRowContext(w.ctx, `SELECT seq, seal_hash FROM seals ORDER BY seq DESC LIMIT 1`).Scan(&last, &lastHash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return false, err
		}
		if first := seals[0]; first.Seq != last+1 || (last > 0 && string(lastHash) != string(first.PrevSealHash[:])) {
			return false, fmt.Errorf("%w: seal %d after seal %d", chronicle.ErrSealConflict, first.Seq, last)
		}
		for _, k := range keys {
			first, ok := chronicle.FirstSignedBy(seals, k.KeyID)
			if !ok {
				continue
			}
			if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO seal_keys (key_id, public_key, first_seal)
SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM seal_keys WHERE key_id = ?1)`, k.KeyID, k.PublicKey, first); err != nil {
				return false, err
			}
		}
		for _, seal := range seals {
			_, err := w.tx.ExecContext(w.ctx, `INSERT INTO seals (seq, last_tx_id, last_position, count, root, prev_seal_hash, sealed_at, seal_hash, key_id, signature, end_tx_id, end_position)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, nullif(?, ''), nullif(?, ''), ?, ?)`,
				seal.Seq, int64(seal.LastCheckpoint.TxID), seal.LastCheckpoint.Position, seal.Count,
				seal.Root[:], seal.PrevSealHash[:], seal.SealedAt.UnixMicro(), seal.SealHash[:], seal.KeyID, seal.Signature,
				int64(seal.End.TxID), seal.End.Position)
			if err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("import seals: %w", err)
	}
	return nil
}

// Census counts the stored events in one read, and returns at most limit
// strays: rows at a position not above 0, which ReadAll (positions after
// the checkpoint's) never returns. Errors: chronicle.ErrClosed.
func (s *Store) Census(ctx context.Context, end chronicle.Checkpoint, limit int) (chronicle.LogCensus, error) {
	var c chronicle.LogCensus
	if s.closed.Load() {
		return c, fmt.Errorf("census: %w", chronicle.ErrClosed)
	}
	// One statement, one snapshot: appends that commit meanwhile are
	// counted in both numbers or in neither.
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(position > ?), 0) FROM events`, end.Position).Scan(&c.Total, &c.After)
	if err != nil {
		return c, s.readErr("census", err)
	}
	if c.Strays, err = s.queryEvents(ctx, 0, `SELECT `+eventCols+` FROM events WHERE position <= 0 ORDER BY position LIMIT ?`, int64(limit)); err != nil {
		return c, s.readErr("census", err)
	}
	return c, nil
}
