package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/arena"
)

// eventCols are the columns queryEvents converts, in its order. stream_type
// is not read: Append stores chronicle.StreamType(stream_id) there, so it is
// derived from stream_id instead, as a substring of it (no copy). data and
// metadata are read as BLOBs (the same bytes): the driver then hands over a
// []byte of its own, which the event keeps, where TEXT came as a string to
// copy again.
const eventCols = "position, event_id, stream_id, version, event_type, schema_version, CAST(data AS BLOB), CAST(metadata AS BLOB), recorded_at, hash, prev_hash"

// queryEvents runs a query of eventCols on a reader connection and converts
// its rows. It talks to the driver directly (sql.Conn.Raw) rather than
// through Rows.Scan: Scan converts every column through reflection (the
// integers by formatting and re-parsing them), which was a third of a
// 1,000-event page's CPU; here each value is one type switch. Data and
// metadata are the driver's own copies (see eventCols), made once.
func (s *Store) queryEvents(ctx context.Context, capHint int, query string, args ...any) ([]chronicle.RecordedEvent, error) {
	conn, err := s.rdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	nargs := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nargs[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	out := make([]chronicle.RecordedEvent, 0, capHint)
	err = conn.Raw(func(dc any) error {
		q, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("sqlitestore: driver %T cannot query", dc)
		}
		rows, err := q.QueryContext(ctx, query, nargs)
		if err != nil {
			return err
		}
		defer rows.Close()
		var c converter
		dest := make([]driver.Value, len(rows.Columns()))
		for {
			if err := rows.Next(dest); err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
			var e chronicle.RecordedEvent
			e.Position = c.int(dest[0])
			e.TxID = uint64(e.Position) // one writer: row order is commit order
			e.ID = c.text(dest[1])
			e.StreamID = c.text(dest[2])
			e.StreamType = chronicle.StreamType(e.StreamID)
			e.Version = c.int(dest[3])
			e.Type = c.text(dest[4])
			e.SchemaVersion = int(c.int(dest[5]))
			e.Data = c.bytes(dest[6])
			e.Metadata = c.bytes(dest[7])
			e.RecordedAt = time.UnixMicro(c.int(dest[8])).UTC()
			e.Hash = c.hash(dest[9])
			e.PrevHash = c.hash(dest[10])
			if c.err != nil {
				return c.err
			}
			out = append(out, e)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// converter turns the values the driver returns into an event's fields:
// int64 for INTEGER, string (or []byte) for TEXT, []byte for BLOB, nil for
// NULL. Anything else sets err.
type converter struct {
	arena arena.Arena
	err   error
}

func (c *converter) int(v driver.Value) int64 {
	n, ok := v.(int64)
	if !ok {
		c.fail("an integer", v)
	}
	return n
}

func (c *converter) text(v driver.Value) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	c.fail("text", v)
	return ""
}

// bytes returns v's bytes for the event to keep; nil for NULL. A []byte is
// the driver's own copy, fresh for each row (both drivers copy a BLOB out
// of SQLite's memory), so it is kept as it is; a string is copied into
// chunks shared by the events of one read (see internal/arena).
func (c *converter) bytes(v driver.Value) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return arena.Copy(&c.arena, v)
	case []byte:
		return v
	}
	c.fail("text", v)
	return nil
}

func (c *converter) hash(v driver.Value) (h [32]byte) {
	b, ok := v.([]byte)
	if !ok || len(b) != len(h) {
		c.fail("a 32-byte hash", v)
	}
	copy(h[:], b)
	return h
}

func (c *converter) fail(want string, v driver.Value) {
	if c.err == nil {
		c.err = fmt.Errorf("sqlitestore: read a %T where %s was expected", v, want)
	}
}

// ReadStream returns the stream's events in version order, as opts selects.
// Errors: chronicle.ErrStreamNotFound when the stream has no events,
// chronicle.ErrClosed.
func (s *Store) ReadStream(ctx context.Context, stream string, opts chronicle.ReadStreamOptions) ([]chronicle.RecordedEvent, error) {
	if s.closed.Load() {
		return nil, chronicle.ErrClosed
	}
	to, until, limit := int64(math.MaxInt64), int64(math.MaxInt64), int64(-1) // LIMIT -1: none
	if opts.To > 0 {
		to = opts.To
	}
	if !opts.Until.IsZero() {
		until = opts.Until.UnixMicro()
	}
	if opts.Limit > 0 {
		limit = int64(opts.Limit)
	}
	evs, err := s.queryEvents(ctx, 0, "SELECT "+eventCols+` FROM events
WHERE stream_id = ? AND version >= ? AND version <= ? AND recorded_at <= ?
ORDER BY version LIMIT ?`, stream, opts.From, to, until, limit)
	if err != nil {
		return nil, s.readErr("read stream "+stream, err)
	}
	if len(evs) == 0 {
		v, err := s.StreamVersion(ctx, stream)
		if err != nil {
			return nil, err
		}
		if v == 0 {
			return nil, fmt.Errorf("read stream %s: %w", stream, chronicle.ErrStreamNotFound)
		}
	}
	return evs, nil
}

// StreamVersion returns the stream's current version, 0 when it has no
// events. Errors: chronicle.ErrClosed.
func (s *Store) StreamVersion(ctx context.Context, stream string) (int64, error) {
	if s.closed.Load() {
		return 0, chronicle.ErrClosed
	}
	var v int64
	err := s.rdb.QueryRowContext(ctx, "SELECT version FROM streams WHERE stream_id = ?", stream).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.readErr("stream version "+stream, err)
	}
	return v, nil
}

// ReadAll returns events of the global log after from, in position order,
// which on SQLite is commit order: there is one writer, and a reader only
// ever sees whole committed transactions. Errors: chronicle.ErrClosed.
func (s *Store) ReadAll(ctx context.Context, from chronicle.Checkpoint, opts chronicle.ReadAllOptions) ([]chronicle.RecordedEvent, error) {
	if s.closed.Load() {
		return nil, chronicle.ErrClosed
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = chronicle.DefaultReadAllLimit
	}
	var q strings.Builder
	q.WriteString("SELECT " + eventCols + " FROM events WHERE position > ?")
	args := []any{from.Position}
	in := func(col string, vals []string) {
		q.WriteString(" AND " + col + " IN (?" + strings.Repeat(",?", len(vals)-1) + ")")
		for _, v := range vals {
			args = append(args, v)
		}
	}
	if len(opts.StreamTypes) > 0 {
		in("stream_type", opts.StreamTypes)
	}
	if len(opts.EventTypes) > 0 {
		in("event_type", opts.EventTypes)
	}
	q.WriteString(" ORDER BY position LIMIT ?")
	args = append(args, int64(limit))
	evs, err := s.queryEvents(ctx, min(limit, 1024), q.String(), args...)
	if err != nil {
		return nil, s.readErr("read all", err)
	}
	return evs, nil
}

// Head returns the last event's checkpoint. Errors: chronicle.ErrClosed.
func (s *Store) Head(ctx context.Context) (chronicle.Head, error) {
	if s.closed.Load() {
		return chronicle.Head{}, chronicle.ErrClosed
	}
	var pos, at int64
	err := s.rdb.QueryRowContext(ctx, "SELECT position, recorded_at FROM events ORDER BY position DESC LIMIT 1").Scan(&pos, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return chronicle.Head{}, nil
	}
	if err != nil {
		return chronicle.Head{}, s.readErr("head", err)
	}
	return chronicle.Head{
		Checkpoint: chronicle.Checkpoint{TxID: uint64(pos), Position: pos},
		Position:   pos,
		RecordedAt: time.UnixMicro(at).UTC(),
		Last:       chronicle.Checkpoint{TxID: uint64(pos), Position: pos},
		Committed:  pos, // one writer: readers see every commit at once
	}, nil
}

// EventByID returns the event with that id (in either case).
// Errors: chronicle.ErrNotFound, *chronicle.InvalidError for a malformed
// id, chronicle.ErrClosed.
func (s *Store) EventByID(ctx context.Context, id string) (chronicle.RecordedEvent, error) {
	if s.closed.Load() {
		return chronicle.RecordedEvent{}, chronicle.ErrClosed
	}
	canon, err := chronicle.ParseEventID(id)
	if err != nil {
		return chronicle.RecordedEvent{}, &chronicle.InvalidError{Field: "event_id", Reason: err.Error()}
	}
	evs, err := s.queryEvents(ctx, 1, "SELECT "+eventCols+" FROM events WHERE event_id = ?", canon)
	if err != nil {
		return chronicle.RecordedEvent{}, s.readErr("event "+canon, err)
	}
	if len(evs) == 0 {
		return chronicle.RecordedEvent{}, fmt.Errorf("event %s: %w", canon, chronicle.ErrNotFound)
	}
	return evs[0], nil
}

// SaveSnapshot stores snap unless the stored one is newer with the same
// schema version. It goes through the write loop, like appends.
// Errors: *chronicle.InvalidError, chronicle.ErrClosed.
func (s *Store) SaveSnapshot(ctx context.Context, snap chronicle.Snapshot) error {
	if err := chronicle.ValidateName("stream_id", snap.StreamID); err != nil {
		return err
	}
	if err := chronicle.ValidateJSON(snap.Data); err != nil {
		return &chronicle.InvalidError{Field: "data", Reason: err.Error()}
	}
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		_, err := w.tx.ExecContext(w.ctx, `INSERT INTO snapshots (stream_id, version, schema_version, data, taken_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (stream_id) DO UPDATE SET
	version = excluded.version, schema_version = excluded.schema_version,
	data = excluded.data, taken_at = excluded.taken_at
WHERE excluded.version > snapshots.version OR excluded.schema_version <> snapshots.schema_version`,
			snap.StreamID, snap.Version, snap.SchemaVersion, string(snap.Data), time.Now().UnixMicro())
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.StreamID, err)
	}
	return nil
}

// LoadSnapshot returns the stream's snapshot.
// Errors: chronicle.ErrNotFound, chronicle.ErrClosed.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (chronicle.Snapshot, error) {
	if s.closed.Load() {
		return chronicle.Snapshot{}, chronicle.ErrClosed
	}
	snap := chronicle.Snapshot{StreamID: stream}
	var at int64
	err := s.rdb.QueryRowContext(ctx, "SELECT version, schema_version, data, taken_at FROM snapshots WHERE stream_id = ?", stream).
		Scan(&snap.Version, &snap.SchemaVersion, (*[]byte)(&snap.Data), &at)
	if errors.Is(err, sql.ErrNoRows) {
		return chronicle.Snapshot{}, fmt.Errorf("load snapshot %s: %w", stream, chronicle.ErrNotFound)
	}
	if err != nil {
		return chronicle.Snapshot{}, s.readErr("load snapshot "+stream, err)
	}
	snap.TakenAt = time.UnixMicro(at).UTC()
	return snap, nil
}

// DeleteSnapshot removes the stream's snapshot, if any. Errors: chronicle.ErrClosed.
func (s *Store) DeleteSnapshot(ctx context.Context, stream string) error {
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		_, err := w.tx.ExecContext(w.ctx, "DELETE FROM snapshots WHERE stream_id = ?", stream)
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("delete snapshot %s: %w", stream, err)
	}
	return nil
}

// DeleteAllSnapshots removes every snapshot. Errors: chronicle.ErrClosed.
func (s *Store) DeleteAllSnapshots(ctx context.Context) error {
	err := s.submit(ctx, func(w *wtx) (bool, error) {
		_, err := w.tx.ExecContext(w.ctx, "DELETE FROM snapshots")
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("delete all snapshots: %w", err)
	}
	return nil
}
