package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chronicle-es/chronicle"
)

var _ chronicle.SealStore = (*Store)(nil)

const sealColumns = `seq, last_tx_id, last_position, count, root, prev_seal_hash, sealed_at, seal_hash,
	coalesce(key_id, ''), coalesce(signature, ''), coalesce(end_tx_id, 0), coalesce(end_position, 0)`

// AddSeal stores s after the latest seal, and key among the seal keys.
// Errors: chronicle.ErrSealConflict, chronicle.ErrClosed.
func (s *Store) AddSeal(ctx context.Context, seal chronicle.Seal, key *chronicle.SealKey) error {
	if s.closed() {
		return fmt.Errorf("add seal %d: %w", seal.Seq, chronicle.ErrClosed)
	}
	err := s.addSeal(ctx, seal, key)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("add seal %d: %w: another sealer stored it first", seal.Seq, chronicle.ErrSealConflict)
	}
	return s.opErr(fmt.Sprintf("add seal %d", seal.Seq), err)
}

func (s *Store) addSeal(ctx context.Context, seal chronicle.Seal, key *chronicle.SealKey) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	// Not ctx: a sealer cancelled mid-transaction must still end it, or its
	// row locks (and its transaction id) would hold back the next sealer
	// and every reader of the log.
	defer tx.Rollback(context.WithoutCancel(ctx))
	var last int64
	var lastHash []byte
	err = tx.QueryRow(ctx, `SELECT seq, seal_hash FROM seals ORDER BY seq DESC LIMIT 1`).Scan(&last, &lastHash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if seal.Seq != last+1 || (last > 0 && string(lastHash) != string(seal.PrevSealHash[:])) {
		return fmt.Errorf("%w: seal %d after seal %d", chronicle.ErrSealConflict, seal.Seq, last)
	}
	if key != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO seal_keys (key_id, public_key, first_seal) VALUES ($1, $2, $3)
ON CONFLICT (key_id) DO NOTHING`, key.KeyID, key.PublicKey, seal.Seq); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO seals (seq, last_tx_id, last_position, count, root, prev_seal_hash, sealed_at, seal_hash, key_id, signature)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, nullif($9, ''), nullif($10, ''))`,
		seal.Seq, int64(seal.LastCheckpoint.TxID), seal.LastCheckpoint.Position, seal.Count,
		seal.Root[:], seal.PrevSealHash[:], seal.SealedAt, seal.SealHash[:], seal.KeyID, seal.Signature)
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Seals returns at most limit seals after seq after (all when limit is 0).
func (s *Store) Seals(ctx context.Context, after int64, limit int) ([]chronicle.Seal, error) {
	if s.closed() {
		return nil, fmt.Errorf("read seals: %w", chronicle.ErrClosed)
	}
	q := `SELECT ` + sealColumns + ` FROM seals WHERE seq > $1 ORDER BY seq`
	args := []any{after}
	if limit > 0 {
		q += ` LIMIT $2`
		args = append(args, limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.opErr("read seals", err)
	}
	seals, err := pgx.CollectRows(rows, scanSeal)
	return seals, s.opErr("read seals", err)
}

// LatestSeal returns the seal with the highest seq.
// Errors: chronicle.ErrNotFound, chronicle.ErrClosed.
func (s *Store) LatestSeal(ctx context.Context) (chronicle.Seal, error) {
	if s.closed() {
		return chronicle.Seal{}, fmt.Errorf("latest seal: %w", chronicle.ErrClosed)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sealColumns+` FROM seals ORDER BY seq DESC LIMIT 1`)
	if err != nil {
		return chronicle.Seal{}, s.opErr("latest seal", err)
	}
	seal, err := pgx.CollectExactlyOneRow(rows, scanSeal)
	if errors.Is(err, pgx.ErrNoRows) {
		return chronicle.Seal{}, fmt.Errorf("latest seal: %w", chronicle.ErrNotFound)
	}
	return seal, s.opErr("latest seal", err)
}

// SealKeys returns every key that signed a seal, in the order first used.
func (s *Store) SealKeys(ctx context.Context) ([]chronicle.SealKey, error) {
	if s.closed() {
		return nil, fmt.Errorf("read seal keys: %w", chronicle.ErrClosed)
	}
	rows, err := s.pool.Query(ctx, `SELECT key_id, public_key, first_seal FROM seal_keys ORDER BY first_seal, key_id`)
	if err != nil {
		return nil, s.opErr("read seal keys", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (chronicle.SealKey, error) {
		var k chronicle.SealKey
		err := r.Scan(&k.KeyID, &k.PublicKey, &k.FirstSeal)
		return k, err
	})
	return keys, s.opErr("read seal keys", err)
}

func scanSeal(r pgx.CollectableRow) (chronicle.Seal, error) {
	var s chronicle.Seal
	var tx, endTx int64
	var root, prev, hash []byte
	if err := r.Scan(&s.Seq, &tx, &s.LastCheckpoint.Position, &s.Count, &root, &prev, &s.SealedAt, &hash, &s.KeyID, &s.Signature, &endTx, &s.End.Position); err != nil {
		return s, err
	}
	s.LastCheckpoint.TxID, s.End.TxID = uint64(tx), uint64(endTx)
	// A stored hash of another length (edited behind the store's back)
	// reads as all zeros padded or cut, and fails verification.
	copy(s.Root[:], root)
	copy(s.PrevSealHash[:], prev)
	copy(s.SealHash[:], hash)
	s.SealedAt = s.SealedAt.UTC()
	return s, nil
}

// ImportSeals adds seals made by another store after the latest seal, as
// made, with their ends in this store, and the keys that signed them.
// Errors: chronicle.ErrSealConflict, *chronicle.InvalidError,
// chronicle.ErrClosed, ErrReadOnly on a Replica.
func (s *Store) ImportSeals(ctx context.Context, seals []chronicle.Seal, keys []chronicle.SealKey) error {
	if s.closed() {
		return fmt.Errorf("import seals: %w", chronicle.ErrClosed)
	}
	if s.readOnly {
		return fmt.Errorf("import seals: %w", ErrReadOnly)
	}
	if len(seals) == 0 {
		return nil
	}
	if err := chronicle.CheckImportedSeals(seals); err != nil {
		return err
	}
	err := s.importSeals(ctx, seals, keys)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("import seals: %w: another sealer stored seal %d first", chronicle.ErrSealConflict, seals[0].Seq)
	}
	return s.opErr("import seals", err)
}

func (s *Store) importSeals(ctx context.Context, seals []chronicle.Seal, keys []chronicle.SealKey) error {
	tx, err := s.wpool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var last int64
	var lastHash []byte
	err = tx.QueryRow(ctx, `SELECT seq, seal_hash FROM seals ORDER BY seq DESC LIMIT 1`).Scan(&last, &lastHash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if first := seals[0]; first.Seq != last+1 || (last > 0 && string(lastHash) != string(first.PrevSealHash[:])) {
		return fmt.Errorf("%w: seal %d after seal %d", chronicle.ErrSealConflict, first.Seq, last)
	}
	for _, k := range keys {
		first, ok := chronicle.FirstSignedBy(seals, k.KeyID)
		if !ok {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO seal_keys (key_id, public_key, first_seal) VALUES ($1, $2, $3)
ON CONFLICT (key_id) DO NOTHING`, k.KeyID, k.PublicKey, first); err != nil {
			return err
		}
	}
	i := 0
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"seals"},
		[]string{"seq", "last_tx_id", "last_position", "count", "root", "prev_seal_hash", "sealed_at", "seal_hash", "key_id", "signature", "end_tx_id", "end_position"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(seals) {
				return nil, nil
			}
			seal := seals[i]
			i++
			return []any{seal.Seq, int64(seal.LastCheckpoint.TxID), seal.LastCheckpoint.Position, seal.Count,
				seal.Root[:], seal.PrevSealHash[:], seal.SealedAt, seal.SealHash[:], nullable(seal.KeyID), nullable(seal.Signature),
				int64(seal.End.TxID), seal.End.Position}, nil
		}))
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Census counts the stored events in one snapshot, and returns at most
// limit strays: rows that ReadAll never returns, since their tx_id is not
// that of a transaction committed before the snapshot (a row's tx_id is
// its inserting transaction's, so a visible row always has a committed
// one) or their checkpoint is not after the zero one.
// Errors: chronicle.ErrClosed.
func (s *Store) Census(ctx context.Context, end chronicle.Checkpoint, limit int) (chronicle.LogCensus, error) {
	var c chronicle.LogCensus
	if s.closed() {
		return c, fmt.Errorf("census: %w", chronicle.ErrClosed)
	}
	// One statement, one snapshot: an append that commits meanwhile is
	// counted in Total and in After or Pending, or in none of them.
	err := s.pool.QueryRow(ctx, `SELECT count(*),
	count(*) FILTER (WHERE `+gapSafe+` AND (tx_id, position) > ($1::xid8, $2::int8)),
	count(*) FILTER (WHERE NOT (`+gapSafe+`) AND pg_visible_in_snapshot(tx_id, pg_current_snapshot()))
FROM events`, end.TxID, end.Position).Scan(&c.Total, &c.After, &c.Pending)
	if err != nil {
		return c, s.opErr("census", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
WHERE (tx_id, position) <= ('0'::xid8, 0::int8)
	OR (NOT (`+gapSafe+`) AND NOT pg_visible_in_snapshot(tx_id, pg_current_snapshot()))
ORDER BY tx_id, position LIMIT $1`, limit)
	if err != nil {
		return c, s.opErr("census", err)
	}
	c.Strays, err = scanEvents(rows, 0)
	return c, s.opErr("census", err)
}
