package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// maxBatch bounds how many queued writes share one transaction.
const maxBatch = 256

// job is one write waiting for the write loop. apply runs inside its own
// SAVEPOINT of the batch's transaction: an error (or changed == false)
// rolls back that job alone.
type job struct {
	ctx   context.Context
	apply func(w *wtx) (changed bool, err error)
	done  chan error // buffered: the write loop never blocks on a caller
}

// wtx is the batch transaction as a job sees it.
type wtx struct {
	ctx context.Context
	tx  *sql.Tx
	now int64 // recorded_at for every event of the batch, unix µs
	// stmts memoizes stmt's tx-bound handles for the batch: each job of a
	// batch uses the same few statements.
	stmts map[*sql.Stmt]*sql.Stmt
}

// stmt returns st (prepared once on the writer connection) bound to the
// batch's transaction. Nothing is parsed again: the connection already
// holds st's compiled statement.
func (w *wtx) stmt(st *sql.Stmt) *sql.Stmt {
	if t, ok := w.stmts[st]; ok {
		return t
	}
	t := w.tx.StmtContext(w.ctx, st)
	if w.stmts == nil {
		w.stmts = make(map[*sql.Stmt]*sql.Stmt, 8)
	}
	w.stmts[st] = t
	return t
}

// submit queues a write and waits for its outcome. If ctx ends first the
// write may still land (or not): a retry with the same event ids tells.
func (s *Store) submit(ctx context.Context, apply func(w *wtx) (bool, error)) error {
	if s.closed.Load() {
		return chronicle.ErrClosed
	}
	j := &job{ctx: ctx, apply: apply, done: make(chan error, 1)}
	select {
	case s.queue <- j:
	case <-s.quit:
		return chronicle.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.writerDone:
		select {
		case err := <-j.done:
			return err
		default:
			return chronicle.ErrClosed // queued after the loop's last look
		}
	}
}

// writeLoop owns the writer connection. It takes whatever writes are queued,
// up to maxBatch, and commits them in one transaction: concurrent appends
// share one WAL write and one fsync (group commit).
func (s *Store) writeLoop() {
	defer close(s.writerDone)
	batch := make([]*job, 0, maxBatch)
	for {
		select {
		case <-s.quit:
			for {
				select {
				case j := <-s.queue:
					j.done <- chronicle.ErrClosed
				default:
					return
				}
			}
		case j := <-s.queue:
			batch = append(batch[:0], j)
		fill:
			for len(batch) < maxBatch {
				select {
				case j := <-s.queue:
					batch = append(batch, j)
				default:
					break fill
				}
			}
			s.runBatch(batch)
		}
	}
}

func (s *Store) runBatch(batch []*job) {
	errs := make([]error, len(batch))
	changed := false
	err := func() error {
		// Not any caller's ctx: one caller giving up must not abort the others.
		ctx := context.Background()
		if held, _ := s.gate.enter(ctx, s.busyWait()); held {
			defer s.gate.leave() // after the deferred Rollback: the lock is free by then
		}
		tx, err := s.wdb.BeginTx(ctx, nil) // BEGIN IMMEDIATE, per the DSN
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback()
		w := &wtx{ctx: ctx, tx: tx, now: s.recordedAt()}
		for i, j := range batch {
			if err := j.ctx.Err(); err != nil {
				errs[i] = err // the caller has gone: do not write for it
				continue
			}
			if len(batch) == 1 {
				// Alone in the transaction: no savepoint needed, rollback is whole.
				ok, err := j.apply(w)
				errs[i] = err
				if err != nil || !ok {
					return nil // deferred Rollback; errs[i] stands
				}
				changed = true
				break
			}
			if _, err := w.stmt(s.stmts.savepoint).ExecContext(ctx); err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			ok, err := j.apply(w)
			errs[i] = err
			if err != nil || !ok {
				if _, rerr := w.stmt(s.stmts.rollbackTo).ExecContext(ctx); rerr != nil {
					if err != nil && !errors.Is(err, chronicle.ErrWrongVersion) && !errors.Is(err, chronicle.ErrDuplicateEvent) {
						// SQLite rolled back the whole transaction itself
						// (a full disk, an I/O error), savepoints and all:
						// the batch failed for this append's reason, which
						// tells the others' callers to retry, not "no such
						// savepoint".
						return fmt.Errorf("transaction rolled back: %w", err)
					}
					return fmt.Errorf("rollback to savepoint: %w", rerr)
				}
			} else {
				changed = true
			}
			if _, err := w.stmt(s.stmts.release).ExecContext(ctx); err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}()
	for i, j := range batch {
		if err != nil {
			// Nothing of the batch committed, so what a job found inside
			// it is void too: a duplicate or a conflict may have been
			// with another job's events, which are gone now.
			errs[i] = err
		}
		j.done <- errs[i]
	}
	if err == nil && changed {
		s.broadcast()
	}
}

// recordedAt returns now in unix µs, never less than the last value given
// out, so recorded times follow positions even if the clock steps back.
func (s *Store) recordedAt() int64 {
	now := time.Now().UnixMicro()
	if now <= s.lastMicros {
		now = s.lastMicros
	}
	s.lastMicros = now
	return now
}

// Append adds events to the end of stream if its version satisfies
// expected; see chronicle.Store. It queues the append for the write loop,
// which may commit it together with other appends, each keeping its own
// result and conflict check. Cancelling ctx abandons the wait; an append
// not yet started is then skipped.
//
// Errors: *chronicle.ConflictError, *chronicle.InvalidError,
// *chronicle.DuplicateEventError, chronicle.ErrClosed.
func (s *Store) Append(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, error) {
	res, _, err := s.appendEvents(ctx, stream, expected, events, false)
	return res, err
}

// AppendRecorded is Append that also returns the appended events exactly as
// ReadStream would read them back (positions, recorded time), sparing the
// caller that read; see aggregate.AppendRecorder. They are nil when the
// append was a recognised retry, which wrote nothing: the stored events are
// the earlier ones.
func (s *Store) AppendRecorded(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, []chronicle.RecordedEvent, error) {
	return s.appendEvents(ctx, stream, expected, events, true)
}

func (s *Store) appendEvents(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event, record bool) (chronicle.AppendResult, []chronicle.RecordedEvent, error) {
	// Canonical JSON is the costly part of a hash: done here, by the
	// caller, as the input is checked, not by the single writer.
	evs, digests, err := audit.PrepareAppend(stream, expected, events, s.opts.Limits)
	if err != nil {
		return chronicle.AppendResult{}, nil, err
	}
	var res chronicle.AppendResult
	var at int64                             // recorded_at of the events, when written
	hashes := make([]audit.Hash, len(evs)+1) // the previous event's, then the events'
	err = s.submit(ctx, func(w *wtx) (bool, error) {
		var wrote bool
		var err error
		res, wrote, err = s.appendTx(w, stream, expected, evs, digests, hashes)
		if wrote {
			at = w.now
		}
		return wrote, err
	})
	if err != nil {
		var ce *chronicle.ConflictError
		var de *chronicle.DuplicateEventError
		if errors.As(err, &ce) || errors.As(err, &de) {
			return chronicle.AppendResult{}, nil, err
		}
		return chronicle.AppendResult{}, nil, fmt.Errorf("append %s: %w", stream, err)
	}
	if !record || at == 0 {
		return res, nil, nil
	}
	// As scanEvents reads them: the same values, fresh byte slices, NULL
	// metadata as nil, TxID = position.
	st := chronicle.StreamType(stream)
	recorded := make([]chronicle.RecordedEvent, len(evs))
	for i, e := range evs {
		pos := res.FirstPosition + int64(i)
		recorded[i] = chronicle.RecordedEvent{
			StreamID: stream, StreamType: st,
			Version: res.FirstVersion + int64(i), Position: pos, TxID: uint64(pos),
			RecordedAt: time.UnixMicro(at).UTC(),
			ID:         e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion,
			Data:     bytes.Clone(e.Data),
			PrevHash: hashes[i], Hash: hashes[i+1],
		}
		if len(e.Metadata) > 0 {
			recorded[i].Metadata = bytes.Clone(e.Metadata)
		}
	}
	return res, recorded, nil
}

// appendTx does one append inside the batch transaction. wrote is false for
// a recognised retry, which returns the original result.
//
// digests are the events' audit.Digests; hashes gets the hash of the
// stream's previous event, then each event's.
func (s *Store) appendTx(w *wtx, stream string, expected chronicle.ExpectedVersion, evs []chronicle.Event, digests [][2]audit.Hash, hashes []audit.Hash) (res chronicle.AppendResult, wrote bool, err error) {
	var cur int64
	var lastHash []byte
	err = w.stmt(s.stmts.version).QueryRowContext(w.ctx, stream).Scan(&cur, &lastHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return res, false, fmt.Errorf("read version: %w", err)
	}
	if !expected.Check(cur) {
		// A retry of an append that landed is checked before the version:
		// the stream has usually moved on since.
		if res, err, found := s.retried(w, stream, expected, evs); found {
			return res, false, err
		}
		return res, false, &chronicle.ConflictError{Stream: stream, Expected: expected, Actual: cur}
	}
	if cur > 0 && len(lastHash) != len(hashes[0]) {
		return res, false, fmt.Errorf("stream %s has no last hash", stream)
	}
	copy(hashes[0][:], lastHash)
	recordedAt := time.UnixMicro(w.now).UTC()
	for i, e := range evs {
		hashes[i+1] = audit.HashLines(hashes[i], stream, cur+int64(i)+1, e.ID, e.Type, e.SchemaVersion, recordedAt, digests[i][0], digests[i][1])
	}
	st := chronicle.StreamType(stream)
	// What every row has the same, and each hash (an event's, then the next
	// one's prev_hash), made an any once: each is an allocation.
	streamArg, stArg, nowArg, firstArg := any(stream), any(st), any(w.now), any(cur+1)
	hashArgs := make([]any, len(hashes))
	for i := range hashes {
		hashArgs[i] = hashes[i][:]
	}
	var last int64
	// Rows go in power-of-two chunks so a few prepared statements cover any count.
	for off := 0; off < len(evs); {
		k := len(s.stmts.insert) - 1
		for 1<<k > len(evs)-off {
			k--
		}
		chunk := evs[off : off+1<<k]
		args := make([]any, 0, len(chunk)*insertCols)
		for i, e := range chunk {
			var meta any
			if len(e.Metadata) > 0 {
				meta = bytesText(e.Metadata)
			}
			j := off + i
			args = append(args, e.ID, streamArg, stArg, cur+int64(j)+1, e.Type, e.SchemaVersion, bytesText(e.Data), meta, nowArg, firstArg,
				hashArgs[j+1], hashArgs[j])
		}
		r, err := w.stmt(s.stmts.insert[k]).ExecContext(w.ctx, args...)
		if err != nil {
			if isConstraintViolation(err) {
				// An id is stored already (the unique index or the trigger
				// refusing to meet a stored event says so): a retry, or a
				// reused id.
				if res, err, found := s.retried(w, stream, expected, evs); found {
					return res, false, err
				}
			}
			return res, false, fmt.Errorf("insert events: %w", err)
		}
		if last, err = r.LastInsertId(); err != nil {
			return res, false, fmt.Errorf("insert events: %w", err)
		}
		off += len(chunk)
	}
	n := int64(len(evs))
	if _, err := w.stmt(s.stmts.upsertStream).ExecContext(w.ctx, stream, st, cur+n, w.now, w.now, hashes[n][:]); err != nil {
		return res, false, fmt.Errorf("update stream: %w", err)
	}
	if s.opts.BeforeCommit != nil {
		if err := s.opts.BeforeCommit(stream, evs); err != nil {
			return res, false, fmt.Errorf("before commit: %w", err)
		}
	}
	// One writer, rowids taken in order: the append's positions are
	// contiguous and end at the last rowid.
	return chronicle.AppendResult{
		StreamID:      stream,
		FirstVersion:  cur + 1,
		LastVersion:   cur + n,
		FirstPosition: last - n + 1,
		LastPosition:  last,
	}, true, nil
}

const insertCols = 12

// bytesText is b as a string, to bind as TEXT, without the copy string(b)
// makes: both drivers copy a bound string into SQLite's memory as they bind
// it, and b (an appended event's bytes) must not change during Append,
// copied here or not.
func bytesText(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// writeStmts are the write loop's statements, prepared once at open on the
// writer connection: parsing SQL again for every append cost about a tenth
// of the CPU of a write-heavy run.
type writeStmts struct {
	insert       [7]*sql.Stmt // inserts of 1<<k rows
	version      *sql.Stmt
	upsertStream *sql.Stmt
	savepoint    *sql.Stmt
	rollbackTo   *sql.Stmt
	release      *sql.Stmt
}

func (ws *writeStmts) all() []*sql.Stmt {
	return append(ws.insert[:len(ws.insert):len(ws.insert)],
		ws.version, ws.upsertStream, ws.savepoint, ws.rollbackTo, ws.release)
}

// prepareWrites prepares the write loop's statements, among them the
// multi-row inserts of 1, 2, 4, ... 64 rows (640 parameters at most, well
// under SQLite's limit). They are prepared on the pool, outside any
// transaction: the writer pool's one connection is busy during a batch.
func (s *Store) prepareWrites(ctx context.Context) error {
	prepare := func(dst **sql.Stmt, q string) error {
		st, err := s.wdb.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		*dst = st
		return nil
	}
	for k := range s.stmts.insert {
		var b strings.Builder
		b.WriteString("INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, recorded_at, append_first, hash, prev_hash) VALUES ")
		for i := range 1 << k {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?)")
		}
		if err := prepare(&s.stmts.insert[k], b.String()); err != nil {
			return err
		}
	}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&s.stmts.version, "SELECT version, last_hash FROM streams WHERE stream_id = ?"},
		{&s.stmts.upsertStream, `INSERT INTO streams (stream_id, stream_type, version, created_at, updated_at, last_hash)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at, last_hash = excluded.last_hash`},
		{&s.stmts.savepoint, "SAVEPOINT job"},
		{&s.stmts.rollbackTo, "ROLLBACK TO job"},
		{&s.stmts.release, "RELEASE job"},
	} {
		if err := prepare(p.dst, p.q); err != nil {
			return err
		}
	}
	return nil
}

// retried decides what an append whose ids may already be stored is. found
// is false when none of its ids is stored. Otherwise it is a retry (the
// original result, nil) only if every event is stored, in this stream, in
// this order at consecutive versions, with the same content, at a place
// that expected allows; anything else is a *DuplicateEventError.
func (s *Store) retried(w *wtx, stream string, expected chronicle.ExpectedVersion, evs []chronicle.Event) (res chronicle.AppendResult, err error, found bool) {
	type stored struct {
		stream, typ    string
		version, pos   int64
		schema         int
		data, metadata []byte
		appendFirst    sql.NullInt64
	}
	got := make(map[string]stored, len(evs))
	for off := 0; off < len(evs); off += 500 {
		chunk := evs[off:min(off+500, len(evs))]
		args := make([]any, len(chunk))
		for i, e := range chunk {
			args[i] = e.ID
		}
		q := "SELECT event_id, stream_id, event_type, version, position, schema_version, data, metadata, append_first FROM events WHERE event_id IN (?" +
			strings.Repeat(",?", len(chunk)-1) + ")"
		rows, err := w.tx.QueryContext(w.ctx, q, args...)
		if err != nil {
			return res, fmt.Errorf("look up event ids: %w", err), true
		}
		for rows.Next() {
			var id string
			var r stored
			if err := rows.Scan(&id, &r.stream, &r.typ, &r.version, &r.pos, &r.schema, &r.data, &r.metadata, &r.appendFirst); err != nil {
				rows.Close()
				return res, fmt.Errorf("look up event ids: %w", err), true
			}
			got[id] = r
		}
		if err := rows.Close(); err != nil {
			return res, fmt.Errorf("look up event ids: %w", err), true
		}
	}
	if len(got) == 0 {
		return res, nil, false
	}
	dup := func(id, reason string) error {
		return &chronicle.DuplicateEventError{Stream: stream, EventID: id, Reason: reason}
	}
	if len(got) < len(evs) {
		for _, e := range evs {
			if _, ok := got[e.ID]; ok {
				return res, dup(e.ID, "already stored, and the append only partly repeats an earlier one"), true
			}
		}
	}
	first := got[evs[0].ID]
	for i, e := range evs {
		r := got[e.ID]
		switch {
		case r.stream != stream:
			return res, dup(e.ID, fmt.Sprintf("already stored in stream %q", r.stream)), true
		case r.version != first.version+int64(i):
			return res, dup(e.ID, fmt.Sprintf("already stored at version %d, not in this order", r.version)), true
		case r.typ != e.Type || r.schema != e.SchemaVersion || !bytes.Equal(r.data, e.Data) || !bytes.Equal(r.metadata, e.Metadata):
			return res, dup(e.ID, "already stored with other content"), true
		}
	}
	// All of one earlier append: evs[0] began it, every event is of it, and
	// the event after evs' last is not. (Events stored before appends were
	// recorded cannot tell; they are taken as one append.)
	if recorded := slices.ContainsFunc(evs, func(e chronicle.Event) bool { return got[e.ID].appendFirst.Valid }); recorded {
		for _, e := range evs {
			if af := got[e.ID].appendFirst; !af.Valid || af.Int64 != first.version {
				return res, dup(e.ID, "already stored, but not as one append of exactly these events (partial overlap)"), true
			}
		}
		var longer bool
		err := w.tx.QueryRowContext(w.ctx, "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = ? AND version = ? AND append_first = ?)",
			stream, first.version+int64(len(evs)), first.version).Scan(&longer)
		if err != nil {
			return res, fmt.Errorf("look up event ids: %w", err), true
		}
		if longer {
			return res, dup(evs[0].ID, "already stored as part of a longer append (partial overlap)"), true
		}
	}
	placed := expected == chronicle.Any ||
		(expected == chronicle.StreamExists && first.version > 1) ||
		(expected >= 0 && first.version == int64(expected)+1)
	if !placed {
		return res, dup(evs[0].ID, fmt.Sprintf("already stored at version %d, which %s does not allow", first.version, expected)), true
	}
	return chronicle.AppendResult{
		StreamID:      stream,
		FirstVersion:  first.version,
		LastVersion:   first.version + int64(len(evs)) - 1,
		FirstPosition: first.pos,
		LastPosition:  got[evs[len(evs)-1].ID].pos,
	}, nil, true
}
