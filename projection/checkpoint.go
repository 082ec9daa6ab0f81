package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-es/chronicle"
)

// The checkpoint tables. Times are unix nanoseconds (BIGINT on both
// dialects), so the same SQL and the same values serve both backends.
// tx_id holds a chronicle TxID: xid8 values stay far below 2^63.
var checkpointDDL = []string{
	`CREATE TABLE IF NOT EXISTS projection_checkpoints (
	name TEXT PRIMARY KEY,
	tx_id BIGINT NOT NULL DEFAULT 0,
	position BIGINT NOT NULL DEFAULT 0,
	status TEXT NOT NULL DEFAULT 'running',
	error TEXT,
	error_stream TEXT,
	error_version BIGINT,
	error_position BIGINT,
	error_tx_id BIGINT,
	error_event_id TEXT,
	error_event_type TEXT,
	error_attempts INTEGER,
	error_at BIGINT,
	updated_at BIGINT NOT NULL DEFAULT 0
)`,
	`CREATE TABLE IF NOT EXISTS projection_skipped (
	name TEXT NOT NULL,
	tx_id BIGINT NOT NULL,
	position BIGINT NOT NULL,
	stream_id TEXT NOT NULL,
	version BIGINT NOT NULL,
	event_id TEXT NOT NULL,
	event_type TEXT NOT NULL,
	error TEXT NOT NULL,
	skipped_at BIGINT NOT NULL,
	PRIMARY KEY (name, tx_id, position)
)`,
}

// Status values kept in projection_checkpoints.status.
const (
	StatusRunning = "running"
	StatusFailed  = "failed"
)

// Failure is the event a projection stopped at, or is retrying.
type Failure struct {
	Error     string    `json:"error"`
	StreamID  string    `json:"stream_id"`
	Version   int64     `json:"version"`
	Position  int64     `json:"position"`
	TxID      uint64    `json:"tx_id"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	Attempts  int       `json:"attempts"`
	At        time.Time `json:"at"`
}

// Skipped is an event an operator skipped.
type Skipped struct {
	StreamID  string    `json:"stream_id"`
	Version   int64     `json:"version"`
	Position  int64     `json:"position"`
	TxID      uint64    `json:"tx_id"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	Error     string    `json:"error"`
	SkippedAt time.Time `json:"skipped_at"`
}

type cpRow struct {
	cp        chronicle.Checkpoint
	status    string
	failure   *Failure
	updatedAt time.Time
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (r *Runner) exec(ctx context.Context, q execer, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, r.d.Rebind(query), args...)
}

// readCheckpoint reads a projection's row.
func (r *Runner) readCheckpoint(ctx context.Context, q execer, name string) (cpRow, error) {
	var (
		row                         cpRow
		tx, pos, upd                int64
		errText, stream, evID, evTy sql.NullString
		ver, epos, etx, att, at     sql.NullInt64
	)
	err := q.QueryRowContext(ctx, r.d.Rebind(`SELECT tx_id, position, status, error, error_stream, error_version,
	error_position, error_tx_id, error_event_id, error_event_type, error_attempts, error_at, updated_at
	FROM projection_checkpoints WHERE name = $1`), name).Scan(&tx, &pos, &row.status, &errText, &stream, &ver,
		&epos, &etx, &evID, &evTy, &att, &at, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return cpRow{}, fmt.Errorf("projection %s: checkpoint: %w", name, chronicle.ErrNotFound)
	}
	if err != nil {
		return cpRow{}, fmt.Errorf("projection %s: read checkpoint: %w", name, err)
	}
	row.cp = chronicle.Checkpoint{TxID: uint64(tx), Position: pos}
	row.updatedAt = fromNanos(upd)
	if errText.Valid {
		row.failure = &Failure{
			Error: errText.String, StreamID: stream.String, Version: ver.Int64, Position: epos.Int64,
			TxID: uint64(etx.Int64), EventID: evID.String, EventType: evTy.String,
			Attempts: int(att.Int64), At: fromNanos(at.Int64),
		}
	}
	return row, nil
}

// casCheckpoint moves name's checkpoint from old to next, in tx, only if it
// is still at old. It is the first statement of an apply transaction, so on
// PostgreSQL the row lock it takes also orders competing runners.
func (r *Runner) casCheckpoint(ctx context.Context, tx execer, name string, old, next chronicle.Checkpoint) error {
	res, err := r.exec(ctx, tx, `UPDATE projection_checkpoints
	SET tx_id = $1, position = $2, updated_at = $3, status = 'running', error = NULL, error_stream = NULL,
	error_version = NULL, error_position = NULL, error_tx_id = NULL, error_event_id = NULL,
	error_event_type = NULL, error_attempts = NULL, error_at = NULL
	WHERE name = $4 AND tx_id = $5 AND position = $6`,
		int64(next.TxID), next.Position, nanos(r.now()), name, int64(old.TxID), old.Position)
	if err != nil {
		return fmt.Errorf("projection %s: update checkpoint: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("projection %s: update checkpoint: %w", name, err)
	}
	if n == 0 {
		return errFenced
	}
	return nil
}

// markFailed records that name stopped at f, if its checkpoint is still at.
func (r *Runner) markFailed(ctx context.Context, name string, at chronicle.Checkpoint, f Failure) error {
	_, err := r.exec(ctx, r.db, `UPDATE projection_checkpoints
	SET status = 'failed', error = $1, error_stream = $2, error_version = $3, error_position = $4,
	error_tx_id = $5, error_event_id = $6, error_event_type = $7, error_attempts = $8, error_at = $9, updated_at = $9
	WHERE name = $10 AND tx_id = $11 AND position = $12`,
		f.Error, f.StreamID, f.Version, f.Position, int64(f.TxID), f.EventID, f.EventType, f.Attempts,
		nanos(f.At), name, int64(at.TxID), at.Position)
	if err != nil {
		return fmt.Errorf("projection %s: record failure: %w", name, err)
	}
	return nil
}

// skippedSet returns the positions of the events skipped for name.
func (r *Runner) skippedSet(ctx context.Context, q Querier, name string) (map[chronicle.Checkpoint]bool, error) {
	rows, err := q.QueryContext(ctx, r.d.Rebind(`SELECT tx_id, position FROM projection_skipped WHERE name = $1`), name)
	if err != nil {
		return nil, fmt.Errorf("projection %s: read skipped events: %w", name, err)
	}
	defer rows.Close()
	set := map[chronicle.Checkpoint]bool{}
	for rows.Next() {
		var tx, pos int64
		if err := rows.Scan(&tx, &pos); err != nil {
			return nil, fmt.Errorf("projection %s: read skipped events: %w", name, err)
		}
		set[chronicle.Checkpoint{TxID: uint64(tx), Position: pos}] = true
	}
	return set, rows.Err()
}

// SkippedEvents lists the events skipped for projection name, oldest first.
// Errors: ErrUnknown.
func (r *Runner) SkippedEvents(ctx context.Context, name string) ([]Skipped, error) {
	if _, ok := r.byName[name]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	rows, err := r.db.QueryContext(ctx, r.d.Rebind(`SELECT tx_id, position, stream_id, version, event_id,
	event_type, error, skipped_at FROM projection_skipped WHERE name = $1 ORDER BY tx_id, position`), name)
	if err != nil {
		return nil, fmt.Errorf("projection %s: skipped events: %w", name, err)
	}
	defer rows.Close()
	var out []Skipped
	for rows.Next() {
		var s Skipped
		var tx, at int64
		if err := rows.Scan(&tx, &s.Position, &s.StreamID, &s.Version, &s.EventID, &s.EventType, &s.Error, &at); err != nil {
			return nil, fmt.Errorf("projection %s: skipped events: %w", name, err)
		}
		s.TxID, s.SkippedAt = uint64(tx), fromNanos(at)
		out = append(out, s)
	}
	return out, rows.Err()
}

// Retry lets a failed projection try its failing event again (after the
// cause was fixed). It works whichever process runs the projection.
// Errors: ErrUnknown; ErrNotFailed when the projection is not failed.
func (r *Runner) Retry(ctx context.Context, name string) error {
	w, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	res, err := r.exec(ctx, r.db, `UPDATE projection_checkpoints
	SET status = 'running', error = NULL, error_stream = NULL, error_version = NULL, error_position = NULL,
	error_tx_id = NULL, error_event_id = NULL, error_event_type = NULL, error_attempts = NULL, error_at = NULL,
	updated_at = $1 WHERE name = $2 AND status = 'failed'`, nanos(r.now()), name)
	if err != nil {
		return fmt.Errorf("projection %s: retry: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("projection %s: retry: %w", name, ErrNotFailed)
	}
	w.poke()
	return nil
}

// Skip moves a failed projection past the event it stopped at, recording
// that event (stream, version, position, error) in projection_skipped.
// Rebuild and Verify skip the recorded events too, so they agree with the
// live read model. Errors: ErrUnknown; ErrNotFailed.
func (r *Runner) Skip(ctx context.Context, name string) error {
	w, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("projection %s: skip: %w", name, err)
	}
	defer tx.Rollback()
	row, err := r.readCheckpoint(ctx, tx, name)
	if err != nil {
		return err
	}
	if row.status != StatusFailed || row.failure == nil {
		return fmt.Errorf("projection %s: skip: %w", name, ErrNotFailed)
	}
	f := row.failure
	if _, err := r.exec(ctx, tx, `INSERT INTO projection_skipped
	(name, tx_id, position, stream_id, version, event_id, event_type, error, skipped_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		name, int64(f.TxID), f.Position, f.StreamID, f.Version, f.EventID, f.EventType, f.Error, nanos(r.now())); err != nil {
		return fmt.Errorf("projection %s: skip: %w", name, err)
	}
	// The failing event is the first after the checkpoint, so moving the
	// checkpoint onto it skips exactly that event.
	if err := r.casCheckpoint(ctx, tx, name, row.cp, chronicle.Checkpoint{TxID: f.TxID, Position: f.Position}); err != nil {
		if errors.Is(err, errFenced) {
			return fmt.Errorf("projection %s: skip: %w", name, ErrNotFailed)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projection %s: skip: %w", name, err)
	}
	w.poke()
	return nil
}
