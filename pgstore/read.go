package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/arena"
)

// eventColumns are the columns scanEvents reads, in its order. stream_type
// is not read: Append stores chronicle.StreamType(stream_id) there, so it is
// derived from stream_id instead, as a substring of it (no copy, and fewer
// bytes on the wire).
const eventColumns = `position, tx_id, stream_id, version, event_id::text,
	event_type, schema_version, data, metadata, recorded_at, hash, prev_hash`

// scanEvents reads rows of eventColumns. It keeps allocations per event
// few, as they were most of the client's CPU on a page of 1,000: event
// types are allocated once per read (a page has few), and data and
// metadata are copied from the driver's buffer into shared chunks (see
// arena) rather than one new slice each.
func scanEvents(rows pgx.Rows, capHint int) ([]chronicle.RecordedEvent, error) {
	defer rows.Close()
	out := make([]chronicle.RecordedEvent, 0, capHint)
	var (
		a               arena.Arena
		types           = map[string]string{}
		typ, data, meta pgtype.DriverBytes // valid until the next row
		hash, prev      pgtype.DriverBytes
	)
	for rows.Next() {
		var e chronicle.RecordedEvent
		if err := rows.Scan(&e.Position, &e.TxID, &e.StreamID, &e.Version, &e.ID,
			&typ, &e.SchemaVersion, &data, &meta, &e.RecordedAt, &hash, &prev); err != nil {
			return nil, err
		}
		copy(e.Hash[:], hash)
		copy(e.PrevHash[:], prev)
		e.StreamType = chronicle.StreamType(e.StreamID)
		t, ok := types[string(typ)] // no allocation for the lookup
		if !ok {
			t = string(typ)
			types[t] = t
		}
		e.Type = t
		e.Data, e.Metadata = arena.Copy(&a, []byte(data)), arena.Copy(&a, []byte(meta))
		e.RecordedAt = e.RecordedAt.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// ReadStream returns stream's events in version order as opts selects.
// Errors: chronicle.ErrStreamNotFound when the stream has no events,
// *chronicle.InvalidError for a bad stream id.
func (s *Store) ReadStream(ctx context.Context, stream string, opts chronicle.ReadStreamOptions) ([]chronicle.RecordedEvent, error) {
	if err := chronicle.ValidateName("stream_id", stream); err != nil {
		return nil, err
	}
	if s.closed() {
		return nil, fmt.Errorf("read stream %s: %w", stream, chronicle.ErrClosed)
	}
	from := max(opts.From, 1)
	var to *int64
	if opts.To > 0 {
		to = &opts.To
	}
	var until *time.Time
	if !opts.Until.IsZero() {
		until = &opts.Until
	}
	var limit *int64
	if opts.Limit > 0 {
		l := int64(opts.Limit)
		limit = &l
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
WHERE stream_id = $1 AND version >= $2
	AND ($3::int8 IS NULL OR version <= $3)
	AND ($4::timestamptz IS NULL OR recorded_at <= $4)
ORDER BY version
LIMIT $5`, stream, from, to, until, limit)
	if err != nil {
		return nil, s.opErr("read stream "+stream, err)
	}
	evs, err := scanEvents(rows, 0)
	if err != nil {
		return nil, s.opErr("read stream "+stream, err)
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

// StreamVersion returns stream's current version, 0 when it has no events.
func (s *Store) StreamVersion(ctx context.Context, stream string) (int64, error) {
	if err := chronicle.ValidateName("stream_id", stream); err != nil {
		return 0, err
	}
	s.vmu.Lock()
	if s.vclosing {
		s.vmu.Unlock()
		return 0, fmt.Errorf("stream version %s: %w", stream, chronicle.ErrClosed)
	}
	if s.vreaders < max(s.opts.VersionReaders, 1) { // 1 for a Store not made by Open
		// A free reader: no wait, the call reads alone; those that came
		// meanwhile are handed to a goroutine.
		s.vreaders++
		s.vreading.Add(1)
		s.vmu.Unlock()
		v, err := s.readVersion(ctx, stream)
		s.vmu.Lock()
		if len(s.vpending) > 0 {
			go s.readVersions() // keeps this reader's place
		} else {
			s.vreaders--
			s.vreading.Done()
		}
		s.vmu.Unlock()
		return v, err
	}
	r := &versionReq{ctx: ctx, stream: stream, done: make(chan versionOutcome, 1)}
	s.vpending = append(s.vpending, r)
	s.vmu.Unlock()
	select {
	case out := <-r.done:
		return out.v, out.err
	case <-ctx.Done():
		return 0, fmt.Errorf("stream version %s: %w", stream, ctx.Err())
	}
}

func (s *Store) readVersion(ctx context.Context, stream string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT version FROM streams WHERE stream_id = $1`, stream).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.opErr("stream version "+stream, err)
	}
	return v, nil
}

// gapSafe admits only rows of transactions that have all ended: every
// transaction that may still commit has an id at or above the snapshot's
// xmin, so nothing can later appear before what a reader has seen.
const gapSafe = `tx_id < pg_snapshot_xmin(pg_current_snapshot())`

// ReadAll returns committed events strictly after from, in (TxID, Position)
// order, never past a transaction that may still commit. See chronicle.Store.
func (s *Store) ReadAll(ctx context.Context, from chronicle.Checkpoint, opts chronicle.ReadAllOptions) ([]chronicle.RecordedEvent, error) {
	if s.closed() {
		return nil, fmt.Errorf("read all: %w", chronicle.ErrClosed)
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = chronicle.DefaultReadAllLimit
	}
	args := []any{from.TxID, from.Position, limit}
	var q strings.Builder
	q.WriteString(`SELECT ` + eventColumns + ` FROM events WHERE ` + gapSafe +
		` AND (tx_id, position) > ($1::xid8, $2::int8)`)
	// One type is the common case; "=" lets the (stream_type, tx_id, position)
	// index give the order without a sort.
	filter := func(col string, vals []string) {
		switch len(vals) {
		case 0:
		case 1:
			args = append(args, vals[0])
			q.WriteString(` AND ` + col + ` = $` + strconv.Itoa(len(args)))
		default:
			args = append(args, vals)
			q.WriteString(` AND ` + col + ` = ANY($` + strconv.Itoa(len(args)) + `::text[])`)
		}
	}
	filter("stream_type", opts.StreamTypes)
	filter("event_type", opts.EventTypes)
	q.WriteString(` ORDER BY tx_id, position LIMIT $3`)
	rows, err := s.pool.Query(ctx, q.String(), args...)
	if err != nil {
		return nil, s.opErr("read all", err)
	}
	evs, err := scanEvents(rows, min(limit, 1024))
	if err != nil {
		return nil, s.opErr("read all", err)
	}
	return evs, nil
}

// Head returns the last event ReadAll can return now. On PostgreSQL
// Head.Position is that event's position: positions are taken at insert, so
// a higher one may already be visible in an earlier transaction.
func (s *Store) Head(ctx context.Context) (chronicle.Head, error) {
	if s.closed() {
		return chronicle.Head{}, fmt.Errorf("head: %w", chronicle.ErrClosed)
	}
	var h chronicle.Head
	var txID, lastTx *uint64
	var pos, committed, lastPos *int64
	var at, held *time.Time
	// One snapshot for all: the last event readers can see, what is
	// committed but held back behind an open transaction (tx_id >= xmin:
	// a short range of the (tx_id, position) index), and the last event
	// committed (the end of that index).
	err := s.pool.QueryRow(ctx, `WITH visible AS (
  SELECT tx_id, position, recorded_at FROM events WHERE `+gapSafe+`
  ORDER BY tx_id DESC, position DESC LIMIT 1
), held AS (
  SELECT max(position) AS committed, min(recorded_at) AS since FROM events
  WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot())
), last AS (
  SELECT tx_id, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1
)
SELECT v.tx_id, v.position, v.recorded_at, h.committed, h.since, l.tx_id, l.position
FROM held h LEFT JOIN visible v ON true LEFT JOIN last l ON true`).Scan(&txID, &pos, &at, &committed, &held, &lastTx, &lastPos)
	if err != nil {
		return chronicle.Head{}, s.opErr("head", err)
	}
	if txID != nil {
		h.Checkpoint = chronicle.Checkpoint{TxID: *txID, Position: *pos}
		h.Position = *pos
		h.RecordedAt = at.UTC()
	}
	h.Last = h.Checkpoint
	if lastTx != nil {
		h.Last = chronicle.Checkpoint{TxID: *lastTx, Position: *lastPos}
	}
	h.Committed = h.Position
	if committed != nil {
		h.Committed = max(h.Committed, *committed)
		h.HeldSince = held.UTC()
	}
	return h, nil
}

// EventByID returns the event with that id. Errors: chronicle.ErrNotFound,
// *chronicle.InvalidError when id is not a UUID.
func (s *Store) EventByID(ctx context.Context, id string) (chronicle.RecordedEvent, error) {
	canon, err := chronicle.ParseEventID(id)
	if err != nil {
		return chronicle.RecordedEvent{}, &chronicle.InvalidError{Field: "event_id", Reason: err.Error()}
	}
	if s.closed() {
		return chronicle.RecordedEvent{}, fmt.Errorf("event %s: %w", id, chronicle.ErrClosed)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE event_id = $1::uuid`, canon)
	if err != nil {
		return chronicle.RecordedEvent{}, s.opErr("event "+id, err)
	}
	evs, err := scanEvents(rows, 1)
	if err != nil {
		return chronicle.RecordedEvent{}, s.opErr("event "+id, err)
	}
	if len(evs) == 0 {
		return chronicle.RecordedEvent{}, fmt.Errorf("event %s: %w", id, chronicle.ErrNotFound)
	}
	return evs[0], nil
}
