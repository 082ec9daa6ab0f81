package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// appendReq is one Append waiting for a committer.
type appendReq struct {
	ctx      context.Context
	stream   string
	expected chronicle.ExpectedVersion
	events   []chronicle.Event // prepared: ids assigned, schema versions set
	digests  [][2]audit.Hash   // the events' audit.Digests
	retries  int
	done     chan appendOutcome // buffered 1: a committer never blocks on it
	// Set by chain for each run: the stream's head the append expects, its
	// recorded_at, and the head's hash followed by the events' hashes.
	head   head
	at     time.Time
	hashes []audit.Hash
}

type appendOutcome struct {
	res chronicle.AppendResult
	err error
	// dup: an event id is already stored (or was being stored), or may be
	// (conflict is set); the requester decides whether this is a retry of
	// that append.
	dup      bool
	conflict error // the answer when dup turns out to find none of the ids
}

// maxRetries bounds how often an append is run again in a later transaction
// (after losing a race to create its stream, or to keep its stream's
// versions in transaction order); each time it sees the stream anew.
const maxRetries = 1000

// Append adds events to stream if its version satisfies expected. See
// chronicle.Store. Errors: *chronicle.InvalidError before anything is
// written, *chronicle.ConflictError, *chronicle.DuplicateEventError,
// chronicle.ErrClosed, ErrReadOnly on a Replica, ctx's error, or a wrapped
// database error (the append may or may not have landed then; retry it with
// the same event ids). Cancelling ctx abandons the wait, not a batch already
// committing others' appends too; an append committed alone (see
// commitAlone) is cancelled with it.
func (s *Store) Append(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, error) {
	if s.readOnly {
		return chronicle.AppendResult{}, fmt.Errorf("append %s: %w", stream, ErrReadOnly)
	}
	// The hash's canonical JSON, computed once by the caller as the input
	// is checked; the rest of the hash needs the stream's head, which the
	// committer knows (chain).
	evs, digests, err := audit.PrepareAppend(stream, expected, events, s.opts.Limits)
	if err != nil {
		return chronicle.AppendResult{}, err
	}
	for attempt := 0; ; attempt++ {
		out, err := s.submit(ctx, &appendReq{ctx: ctx, stream: stream, expected: expected, events: evs, digests: digests, done: make(chan appendOutcome, 1)})
		if err != nil {
			return chronicle.AppendResult{}, err
		}
		if !out.dup {
			return out.res, out.err
		}
		res, found, err := s.resolveDuplicate(ctx, stream, expected, evs)
		if found == 0 && err == nil && out.conflict != nil {
			return chronicle.AppendResult{}, out.conflict
		}
		if found == 0 && err == nil && attempt < maxRetries {
			// The append that held these ids rolled back: ours is new after all.
			continue
		}
		return res, err
	}
}

// submit hands r to group commit and waits for its outcome. When fewer
// than Options.Committers goroutines are committing, one more starts; if
// ctx can never be cancelled, that is the caller itself (a lone append
// costs no goroutine hand-offs). A caller whose ctx can end must not lead
// batches: a commit that hangs would hold it past its cancellation, and
// cancelling the commit would fail the other callers' appends. It only
// commits r alone, on ctx (commitAlone). Otherwise r waits in pending for
// a goroutine that is committing.
func (s *Store) submit(ctx context.Context, r *appendReq) (appendOutcome, error) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return appendOutcome{}, fmt.Errorf("append %s: %w", r.stream, chronicle.ErrClosed)
	}
	s.pending = append(s.pending, r)
	if !s.gatherUntil.IsZero() && len(s.pending) >= s.gatherTarget {
		s.wakeLeader()
	}
	lead := s.leaders < s.opts.Committers
	if lead {
		s.leaders++
		s.leading.Add(1)
	}
	s.mu.Unlock()
	alone := false
	switch {
	case lead && ctx.Done() == nil:
		s.lead(r)
	case lead:
		if alone = s.commitAlone(ctx, r); !alone {
			go s.lead(nil)
		}
	}
	select {
	case out := <-r.done:
		// A commit on ctx that failed once ctx had ended failed because of
		// it, whatever the driver's error says.
		if !alone || out.err == nil || ctx.Err() == nil {
			return out, nil
		}
	case <-ctx.Done():
	}
	return appendOutcome{}, fmt.Errorf("append %s: %w (the append may or may not have landed)", r.stream, ctx.Err())
}

// commitAlone commits r on its caller's goroutine and context when r is
// all that is pending and no other leader is committing or gathering: a lone
// writer (one client, one request at a time) then costs no hand-off to a
// leader goroutine and back, which on 2 cores was a quarter of the
// machine's CPU per append (BENCHMARKS.md, "Fourth pass"). No other
// caller's append is in its statement, so cancelling ctx cancels only r,
// whose outcome is then unknown, as for any cancelled Append.
//
// It takes over the leader place submit took for r, and reports false,
// changing nothing, when r is not alone. Once r has its outcome (it is in
// r.done) or goes back to pending to run again, a leader goroutine takes
// whatever is pending, r included: it runs again on no caller's context.
func (s *Store) commitAlone(ctx context.Context, r *appendReq) bool {
	s.mu.Lock()
	// Not when another leader is at work (submit counted this one): more
	// callers than one batch better together. Not while a gather waits for
	// the last batch's callers: r is one of them. Not with a BeforeCommit
	// hook: it may block where ctx cannot reach it.
	if len(s.pending) != 1 || s.pending[0] != r || s.inflight > 0 || s.leaders > 1 ||
		time.Now().Before(s.gatherUntil) || s.opts.BeforeCommit != nil {
		s.mu.Unlock()
		return false
	}
	s.pending = s.pending[:0]
	s.inflight++
	s.mu.Unlock()
	s.batches.Add(1)
	s.batched.Add(1)
	s.alone.Add(1)
	retry := s.commitBatch(ctx, []*appendReq{r})
	s.mu.Lock()
	s.inflight--
	s.pending = append(retry, s.pending...)
	if len(s.pending) == 0 {
		s.leaders--
		s.mu.Unlock()
		s.leading.Done()
		return true
	}
	s.mu.Unlock()
	go s.lead(nil) // takes over this leader place
	return true
}

// lead commits pending appends in batches until none are left, or, when
// own is set, until own has its answer: then a new goroutine takes over
// what is still pending, so the caller returns at once. Whenever pending is
// not empty some goroutine is leading (a leader only stops on an empty
// pending, under s.mu), so no append is stranded, even at Close.
//
// A batch costs the server about as much as a few appends, so leaders
// gather fuller ones: while another batch commits, a leader waits for its
// callers to come back with their next appends (at most s.gatherBusy), and
// after a batch has committed, the next one waits for that batch's callers
// (at most s.gatherIdle). A lone writer never waits: its one caller is
// all it waits for.
//
// One batch runs on one backend, so one batch at a time leaves a core idle
// while it runs and while its callers come back. From splitAt appends in
// flight or pending, two batches alternate instead: a leader with nothing
// in flight takes half of what is pending and another leader the rest, and
// each waits only for about half of the appends (see gatherTarget).
func (s *Store) lead(own *appendReq) {
	defer s.leading.Done()
	// Batches run on their own context: one caller giving up must not fail
	// the others' appends, and Close lets what is pending commit.
	ctx := context.Background()
	for {
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.leaders--
			s.mu.Unlock()
			return
		}
		if own != nil && len(own.done) > 0 {
			s.leading.Add(1)
			s.mu.Unlock()
			go s.lead(nil) // same leader count: this one hands over
			return
		}
		if s.gatherUntil.IsZero() && s.inflight > 0 {
			s.gather(s.gatherBusy, gatherTarget(len(s.pending)+s.inflight, 0))
		}
		if wait := time.Until(s.gatherUntil); wait > 0 && len(s.pending) < s.gatherTarget {
			if s.wake == nil {
				s.wake = make(chan struct{})
			}
			wake := s.wake
			s.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		s.gatherUntil = time.Time{}
		var batch []*appendReq
		if s.inflight == 0 && len(s.pending) >= splitAt && s.opts.Committers > 1 {
			half := (len(s.pending) + 1) / 2
			var rest []*appendReq
			batch, rest = s.pickBatch(s.pending[:half])
			s.pending = append(rest, s.pending[half:]...)
			s.overlap()
		} else {
			batch, s.pending = s.pickBatch(s.pending)
		}
		if s.inflight > 0 && len(batch) > 0 {
			s.overlapped.Add(1)
		}
		s.inflight += len(batch)
		s.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		s.batches.Add(1)
		s.batched.Add(int64(len(batch)))
		retry := s.commitBatch(ctx, batch)
		s.mu.Lock()
		s.inflight -= len(batch)
		s.pending = append(retry, s.pending...)
		// As many as this batch's callers, some of them maybe back already.
		s.gather(s.gatherIdle, gatherTarget(len(batch)+s.inflight, len(batch)))
		s.wakeLeader()
		s.mu.Unlock()
	}
}

// splitAt is how many appends in flight or pending make two batches
// alternate (see lead). Below it one batch at a time costs the server less
// per append; above it, on 2 cores, alternating batches gave W1 at 32
// clients about a fifth more appends per second (BENCHMARKS.md).
const splitAt = 16

// gatherTarget is how many pending appends a leader waits for when n are in
// flight or pending: all of them, or from splitAt on, half (own: a batch
// just committed, only its own callers).
func gatherTarget(n, own int) int {
	switch {
	case n < splitAt:
		return n
	case own > 0:
		return own
	}
	return n / 2
}

// overlap makes sure that another leader will take what is still pending
// while this one commits its half. s.mu is held.
func (s *Store) overlap() {
	if len(s.pending) == 0 {
		return
	}
	if s.leaders < s.opts.Committers {
		s.leaders++
		s.leading.Add(1)
		go s.lead(nil)
	}
	s.wakeLeader()
}

// Default bounds of the waits for fuller batches (see lead). A batch still
// committing is waited for at most gatherBusy; its callers, once answered,
// at most gatherIdle.
const (
	gatherBusy = 2 * time.Millisecond
	gatherIdle = 300 * time.Microsecond
)

// gather makes leaders wait until target appends are pending, at most for
// d (none when d is 0). s.mu is held.
func (s *Store) gather(d time.Duration, target int) {
	if d <= 0 {
		return
	}
	s.gatherUntil, s.gatherTarget = time.Now().Add(d), min(target, s.opts.MaxBatch)
}

// wakeLeader wakes the leaders waiting for a fuller batch. s.mu is held.
func (s *Store) wakeLeader() {
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

// maxBatchEvents bounds the events of one batch statement.
const maxBatchEvents = 10000

// pickBatch takes at most one append per stream (a statement cannot update a
// streams row twice), at most MaxBatch, leaving the others for the next
// batch in order. It answers appends whose callers have given up.
func (s *Store) pickBatch(pending []*appendReq) (batch, rest []*appendReq) {
	seen := make(map[string]bool, len(pending))
	n := 0
	for _, r := range pending {
		if err := r.ctx.Err(); err != nil {
			r.done <- appendOutcome{err: fmt.Errorf("append %s: %w", r.stream, err)}
			continue
		}
		if seen[r.stream] || len(batch) >= s.opts.MaxBatch || (len(batch) > 0 && n+len(r.events) > maxBatchEvents) {
			rest = append(rest, r)
			continue
		}
		seen[r.stream] = true
		n += len(r.events)
		batch = append(batch, r)
	}
	return batch, rest
}

// commitBatch commits batch and answers each append, except those that lost
// a race to create their stream: it returns them to be run again.
func (s *Store) commitBatch(ctx context.Context, batch []*appendReq) (retry []*appendReq) {
	if s.opts.BeforeCommit == nil {
		outs, err := s.runBatch(ctx, s.wq, batch, false)
		if err == nil {
			return s.answer(batch, outs)
		}
		// The batch failed as a whole (a concurrent duplicate id, a deadlock,
		// a lost connection): nothing of it committed. Run each append alone.
	}
	return s.commitEach(ctx, batch)
}

// answer delivers outcomes, returning the appends to run again.
func (s *Store) answer(batch []*appendReq, outs []batchOutcome) (retry []*appendReq) {
	wrote := false
	for i, r := range batch {
		o := outs[i]
		switch {
		case o.retry && r.retries < maxRetries:
			r.retries++
			retry = append(retry, r)
			continue
		case o.retry:
			o.out.err = fmt.Errorf("append %s: gave up after %d retries under contention", r.stream, r.retries)
		}
		if o.out.err == nil && !o.out.dup {
			wrote = true
		}
		r.done <- o.out
	}
	if wrote {
		s.broadcast() // our own subscribers need not wait for the NOTIFY round trip
		s.requestNotify()
	}
	return retry
}

type batchOutcome struct {
	out   appendOutcome
	retry bool
}

// querier is what runBatch needs: the pool (implicit transaction) or a tx.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// batchSQL appends a batch of appends in ONE statement.
//
// The UPDATE of the batch's existing streams rows is the version check: it
// locks each row and, under the lock, sees its latest version (a row changed
// since the statement began is re-read), so the check holds until commit.
// It only advances the appends that pass; the others' rows keep their
// version (and the no-op update tells their actual version). A stream that
// did not exist is inserted; losing that race to another writer shows as no
// row and the append is run again.
//
// streams.last_tx keeps a stream's versions in (tx_id, position) order, the
// order readers get: a transaction may only append to a stream whose last
// append has a lower transaction id. Otherwise (it took its id before
// waiting for that stream) the append is run again in a later transaction.
//
// Each append's events come hashed (chain), on the stream's head the
// committer expects: canAppend checks it.
//
// One row per append comes back: whether an id is already stored ($12), and the
// stream's version after the statement with whether this append advanced it,
// and its head.
const batchSQL = `
WITH ev AS MATERIALIZED (
	SELECT * FROM unnest($5::int4[], $6::int4[], $7::uuid[], $8::text[], $9::int4[], $10::text[], $11::text[], $17::bytea[], $18::bytea[])
		WITH ORDINALITY AS ev(i, off, event_id, event_type, schema_version, data, metadata, hash, prev_hash, k)
),
a AS MATERIALIZED (
	SELECT a.*, $12::bool AND EXISTS (
			SELECT 1 FROM ev JOIN events e ON e.event_id = ev.event_id WHERE ev.i = a.i
		) AS dup
	FROM unnest($1::text[], $2::text[], $3::int8[], $4::int4[], $13::int8[], $14::bytea[], $15::bytea[], $16::timestamptz[])
		WITH ORDINALITY AS a(stream_id, stream_type, expected, n, base, prev, last, at, i)
	ORDER BY a.stream_id COLLATE "C" -- one lock order for all batches
),
upd AS (
	UPDATE streams s SET
		version = s.version + CASE WHEN ` + canAppend + ` THEN a.n ELSE 0 END,
		last_tx = CASE WHEN ` + canAppend + ` THEN pg_current_xact_id() ELSE s.last_tx END,
		last_hash = CASE WHEN ` + canAppend + ` THEN a.last ELSE s.last_hash END,
		last_at = CASE WHEN ` + canAppend + ` THEN a.at ELSE s.last_at END
	FROM a
	WHERE s.stream_id = a.stream_id AND NOT a.dup
	RETURNING s.stream_id, s.version, s.last_tx = pg_current_xact_id() AS appended, s.last_hash, s.last_at
),
ins AS (
	INSERT INTO streams (stream_id, stream_type, version, last_hash, last_at)
	SELECT a.stream_id, a.stream_type, a.n, a.last, a.at FROM a
	WHERE NOT a.dup AND a.base = 0 AND a.expected IN (-1, 0)
		AND NOT EXISTS (SELECT 1 FROM streams s WHERE s.stream_id = a.stream_id)
	ORDER BY a.stream_id COLLATE "C"
	ON CONFLICT (stream_id) DO NOTHING -- lost the race: no row, run again
	RETURNING stream_id, version
),
won AS MATERIALIZED (
	SELECT stream_id, version FROM upd WHERE appended
	UNION ALL
	SELECT stream_id, version FROM ins
),
` + batchEventsSQL + `
SELECT a.dup, coalesce(ins.version, upd.version), ins.version IS NOT NULL OR coalesce(upd.appended, false),
	pos.first_pos, pos.last_pos, upd.last_hash, upd.last_at
FROM a
LEFT JOIN upd ON upd.stream_id = a.stream_id
LEFT JOIN ins ON ins.stream_id = a.stream_id
LEFT JOIN pos ON pos.stream_id = a.stream_id
ORDER BY a.i`

// newStreamsSQL is what a batch whose appends all expect no stream (W1,
// every new order) runs first: the streams rows and the events go in
// straight from the arguments, one row per element, with no lookup and no
// join between appends and events. Each event carries its stream, type,
// version and time. In batches of 8 that is about a quarter less work for
// the server per append than createBatchSQL, a third in batches of 16
// (BenchmarkBatchCPU). A stream that exists fails the statement on
// streams' key, and the batch then runs createBatchSQL, which answers such
// an append with a conflict.
//
// The streams rows go in first, in the order of their keys, and then the
// events, whose streams this transaction then holds: writers racing to
// create a stream wait on its streams row, whatever statement they run,
// and so cannot deadlock over the events' keys.
//
// Every row returned is one event's stream and position.
const newStreamsSQL = `
WITH ins AS (
	INSERT INTO streams (stream_id, stream_type, version, last_hash, last_at)
	SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::bytea[], $5::timestamptz[])
		AS a(stream_id, stream_type, n, last, at)
	ORDER BY a.stream_id COLLATE "C" -- one lock order for all batches
	RETURNING 1
)
INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata,
	recorded_at, hash, prev_hash)
SELECT ev.stream_id, ev.stream_type, ev.version, ev.event_id, ev.event_type, ev.schema_version,
	ev.data::json, ev.metadata::json, ev.at, ev.hash, ev.prev_hash
FROM (SELECT generate_series(1, cardinality($6::text[])) AS k, unnest($6::text[]) AS stream_id,
	unnest($7::text[]) AS stream_type, unnest($8::int4[]) AS version, unnest($9::uuid[]) AS event_id,
	unnest($10::text[]) AS event_type, unnest($11::int4[]) AS schema_version,
	unnest($12::text[]) AS data, unnest($13::text[]) AS metadata, unnest($14::timestamptz[]) AS at,
	unnest($15::bytea[]) AS hash, unnest($16::bytea[]) AS prev_hash) AS ev
WHERE (SELECT count(*) FROM ins) > 0 -- the streams rows first: see above
ORDER BY ev.k -- positions follow versions within an append
RETURNING stream_id, position`

// createBatchSQL is batchSQL for a batch of appends that all expect no
// stream, one of which (at least) found its stream existing when
// newStreamsSQL ran: the streams rows are inserted with no UPDATE tried
// first and no ON CONFLICT. A stream that exists comes back with its
// version and writes nothing. One created by a concurrent batch since this
// statement's snapshot fails the batch on streams' key, and its appends
// run again one by one (commitEach).
const createBatchSQL = `
WITH a AS MATERIALIZED (
	SELECT a.*, s.version AS existing
	FROM unnest($1::text[], $2::text[], $3::int4[], $4::bytea[], $5::timestamptz[])
		WITH ORDINALITY AS a(stream_id, stream_type, n, last, at, i)
	LEFT JOIN streams s ON s.stream_id = a.stream_id
),
ins AS (
	INSERT INTO streams (stream_id, stream_type, version, last_hash, last_at)
	SELECT a.stream_id, a.stream_type, a.n, a.last, a.at FROM a
	WHERE a.existing IS NULL
	ORDER BY a.stream_id COLLATE "C" -- one lock order for all batches
	RETURNING stream_id, version
),
ev AS MATERIALIZED (
	SELECT * FROM unnest($6::int4[], $7::int4[], $8::uuid[], $9::text[], $10::int4[], $11::text[], $12::text[], $13::bytea[], $14::bytea[])
		WITH ORDINALITY AS ev(i, off, event_id, event_type, schema_version, data, metadata, hash, prev_hash, k)
),
won AS (
	SELECT stream_id, version FROM ins
),
` + batchEventsSQL + `
SELECT false, coalesce(ins.version, a.existing), ins.version IS NOT NULL,
	pos.first_pos, pos.last_pos, NULL::bytea, NULL::timestamptz
FROM a
LEFT JOIN ins ON ins.stream_id = a.stream_id
LEFT JOIN pos ON pos.stream_id = a.stream_id
ORDER BY a.i`

// batchEventsSQL is the end of batchSQL and createBatchSQL: it inserts the
// events of the appends in won (the streams they advanced, each with the
// version it reached), and pos gives each stream's first and last position.
const batchEventsSQL = `new AS (
	INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata,
		recorded_at, hash, prev_hash)
	SELECT a.stream_id, a.stream_type, won.version - a.n + ev.off, ev.event_id, ev.event_type,
		ev.schema_version, ev.data::json, ev.metadata::json, a.at, ev.hash, ev.prev_hash
	FROM ev
	JOIN a ON a.i = ev.i
	JOIN won ON won.stream_id = a.stream_id
	ORDER BY ev.k -- positions follow versions within an append
	RETURNING stream_id, position
),
pos AS (
	SELECT stream_id, min(position) AS first_pos, max(position) AS last_pos
	FROM new GROUP BY stream_id
)`

// canAppend is batchSQL's check that append a may advance stream s: the
// expected version holds, the head the append's hashes chain on (base,
// prev and a time not before the last event's) is the stream's, and the
// stream's last append has a lower transaction id. A stale head is not a
// conflict: the append runs again on the head the statement returns.
const canAppend = `(s.last_tx < pg_current_xact_id()
			AND s.version = a.base AND s.last_hash = a.prev AND s.last_at <= a.at
			AND CASE a.expected WHEN -1 THEN true WHEN -2 THEN s.version > 0 ELSE s.version = a.expected END)`

// runBatch runs batchSQL for batch on q. On the pool it is one implicit
// transaction: one round trip, committed (durably) when it returns nil.
//
// checkDup looks for already stored event ids first, so that a retried
// append is answered without failing the statement. The batch path skips
// it: a duplicate there fails the batch on the unique index, which then
// runs again with savepoints and checks. That keeps the hot statement free
// of a lookup whose cached plan may not fit the table's size.
func (s *Store) runBatch(ctx context.Context, q querier, batch []*appendReq, checkDup bool) ([]batchOutcome, error) {
	if err := s.chain(ctx, batch); err != nil {
		return nil, err
	}
	if len(batch) == 1 && !checkDup {
		return s.runOne(ctx, q, batch[0])
	}
	if !checkDup && createBatches && newStreams && allCreate(batch) {
		outs, err := s.runNewStreams(ctx, q, batch)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23505" || pgErr.ConstraintName != "streams_pkey" {
			return outs, err
		}
		// A stream exists: nothing was written. createBatchSQL tells
		// which, and commits the others.
	}
	nev := eventCount(batch)
	var (
		streams  = make([]string, len(batch))
		types    = make([]string, len(batch))
		expected = make([]int64, len(batch))
		counts   = make([]int32, len(batch))
		evApp    = make([]int32, 0, nev)
		evOff    = make([]int32, 0, nev)
		evIDs    = make([][16]byte, 0, nev)
		evTypes  = make([]string, 0, nev)
		evSchema = make([]int32, 0, nev)
		evData   = make([]string, 0, nev)
		evMeta   = make([]*string, 0, nev)
		bases    = make([]int64, len(batch))
		prevs    = make([][]byte, len(batch))
		lasts    = make([][]byte, len(batch))
		ats      = make([]time.Time, len(batch))
		evHash   = make([][]byte, 0, nev)
		evPrev   = make([][]byte, 0, nev)
	)
	for i, r := range batch {
		streams[i] = r.stream
		types[i] = chronicle.StreamType(r.stream)
		expected[i] = int64(r.expected)
		counts[i] = int32(len(r.events))
		bases[i], prevs[i], lasts[i], ats[i] = r.head.version, r.hashes[0][:], r.hashes[len(r.events)][:], r.at
		for j, e := range r.events {
			evApp = append(evApp, int32(i+1))
			evOff = append(evOff, int32(j+1))
			evIDs = append(evIDs, uuidBytes(e.ID))
			evTypes = append(evTypes, e.Type)
			evSchema = append(evSchema, int32(e.SchemaVersion))
			evData = append(evData, bytesText(e.Data))
			evMeta = append(evMeta, metadataArg(e))
			evPrev = append(evPrev, r.hashes[j][:])
			evHash = append(evHash, r.hashes[j+1][:])
		}
	}
	var rows pgx.Rows
	var err error
	if !checkDup && createBatches && allCreate(batch) {
		rows, err = q.Query(ctx, createBatchSQL, streams, types, counts, lasts, ats,
			evApp, evOff, evIDs, evTypes, evSchema, evData, evMeta, evHash, evPrev)
	} else {
		rows, err = q.Query(ctx, batchSQL, streams, types, expected, counts,
			evApp, evOff, evIDs, evTypes, evSchema, evData, evMeta, checkDup,
			bases, prevs, lasts, ats, evHash, evPrev)
	}
	if err != nil {
		return nil, err
	}
	outs := make([]batchOutcome, 0, len(batch))
	for rows.Next() {
		var row resultRow
		if err := rows.Scan(&row.dup, &row.version, &row.appended, &row.first, &row.last, &row.lastHash, &row.lastAt); err != nil {
			rows.Close()
			return nil, err
		}
		if len(outs) == len(batch) {
			break
		}
		r := batch[len(outs)]
		s.learn(r, row)
		outs = append(outs, row.outcome(r))
	}
	// Close reads up to the end of the statement, commit included: an error
	// there means the batch did not commit (or we cannot know).
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(outs) != len(batch) {
		return nil, fmt.Errorf("pgstore: batch returned %d outcomes for %d appends", len(outs), len(batch))
	}
	return outs, nil
}

// createBatches and newStreams: batches of creates run newStreamsSQL, then
// if need be createBatchSQL (BenchmarkBatchCPU turns them off to compare).
var createBatches, newStreams = true, true

// runNewStreams runs newStreamsSQL for batch, whose appends all expect no
// stream and are chained; see runBatch. An error means nothing of the
// batch was written (or, for the commit's, that we cannot know).
func (s *Store) runNewStreams(ctx context.Context, q querier, batch []*appendReq) ([]batchOutcome, error) {
	nev := eventCount(batch)
	var (
		streams = make([]string, len(batch))
		types   = make([]string, len(batch))
		counts  = make([]int32, len(batch))
		lasts   = make([][]byte, len(batch))
		ats     = make([]time.Time, len(batch))
		evSt    = make([]string, 0, nev)
		evStT   = make([]string, 0, nev)
		evVer   = make([]int32, 0, nev)
		evIDs   = make([][16]byte, 0, nev)
		evTypes = make([]string, 0, nev)
		evSch   = make([]int32, 0, nev)
		evData  = make([]string, 0, nev)
		evMeta  = make([]*string, 0, nev)
		evAt    = make([]time.Time, 0, nev)
		evHash  = make([][]byte, 0, nev)
		evPrev  = make([][]byte, 0, nev)
		index   = make(map[string]int, len(batch))
	)
	for i, r := range batch {
		typ := chronicle.StreamType(r.stream)
		streams[i], types[i], counts[i] = r.stream, typ, int32(len(r.events))
		lasts[i], ats[i] = r.hashes[len(r.events)][:], r.at
		index[r.stream] = i
		for j, e := range r.events {
			evSt, evStT, evVer = append(evSt, r.stream), append(evStT, typ), append(evVer, int32(j+1))
			evIDs, evTypes, evSch = append(evIDs, uuidBytes(e.ID)), append(evTypes, e.Type), append(evSch, int32(e.SchemaVersion))
			evData, evMeta, evAt = append(evData, bytesText(e.Data)), append(evMeta, metadataArg(e)), append(evAt, r.at)
			evPrev, evHash = append(evPrev, r.hashes[j][:]), append(evHash, r.hashes[j+1][:])
		}
	}
	rows, err := q.Query(ctx, newStreamsSQL, streams, types, counts, lasts, ats,
		evSt, evStT, evVer, evIDs, evTypes, evSch, evData, evMeta, evAt, evHash, evPrev)
	if err != nil {
		return nil, err
	}
	first := make([]int64, len(batch))
	last := make([]int64, len(batch))
	n := 0
	for rows.Next() {
		var stream string
		var pos int64
		if err := rows.Scan(&stream, &pos); err != nil {
			rows.Close()
			return nil, err
		}
		i, ok := index[stream]
		if !ok {
			rows.Close()
			return nil, fmt.Errorf("pgstore: batch returned a position for stream %q, not in it", stream)
		}
		if first[i] == 0 || pos < first[i] {
			first[i] = pos
		}
		last[i] = max(last[i], pos)
		n++
	}
	// Close reads up to the end of the statement, commit included.
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if n != nev {
		return nil, fmt.Errorf("pgstore: batch returned %d positions for %d events", n, nev)
	}
	outs := make([]batchOutcome, len(batch))
	for i, r := range batch {
		v := int64(len(r.events))
		row := resultRow{appended: true, version: &v, first: &first[i], last: &last[i]}
		s.learn(r, row)
		outs[i] = row.outcome(r)
	}
	return outs, nil
}

// eventCount returns the number of events in batch.
func eventCount(batch []*appendReq) int {
	n := 0
	for _, r := range batch {
		n += len(r.events)
	}
	return n
}

// allCreate reports whether every append of batch expects no stream.
func allCreate(batch []*appendReq) bool {
	for _, r := range batch {
		if r.expected != chronicle.NoStream {
			return false
		}
	}
	return true
}

// oneSQL is batchSQL for a batch of one append, with the stream's values as
// scalars: the same checks and locks, without the joins that match events
// to appends, so a lone append (one client, or a quiet moment) costs about
// as much as two plain INSERTs.
//
// Here and in createSQL the event arrays are unnested in the select list,
// where PostgreSQL walks them in step, value by value (they have n elements
// each, so they end together). unnest in FROM first copies every array into
// a tuplestore: about a tenth of the server's time for a 100-event append
// (BenchmarkUnnestForms).
const oneSQL = `
WITH upd AS (
	UPDATE streams s SET
		version = s.version + CASE WHEN ` + canAppendOne + ` THEN $4::int4 ELSE 0 END,
		last_tx = CASE WHEN ` + canAppendOne + ` THEN pg_current_xact_id() ELSE s.last_tx END,
		last_hash = CASE WHEN ` + canAppendOne + ` THEN $12::bytea ELSE s.last_hash END,
		last_at = CASE WHEN ` + canAppendOne + ` THEN $13::timestamptz ELSE s.last_at END
	WHERE s.stream_id = $1
	RETURNING s.version, s.last_tx = pg_current_xact_id() AS appended, s.last_hash, s.last_at
),
ins AS (
	INSERT INTO streams (stream_id, stream_type, version, last_hash, last_at)
	SELECT $1, $2, $4, $12, $13 WHERE $3 IN (-1, 0) AND $10 = 0
		AND NOT EXISTS (SELECT 1 FROM streams s WHERE s.stream_id = $1)
	ON CONFLICT (stream_id) DO NOTHING -- lost the race: no row, run again
	RETURNING version
),
won AS MATERIALIZED (
	SELECT version FROM upd WHERE appended
	UNION ALL
	SELECT version FROM ins
),
new AS (
	INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata,
		recorded_at, hash, prev_hash)
	SELECT $1, $2, ev.version - $4 + ev.k, ev.event_id, ev.event_type, ev.schema_version, ev.data::json, ev.metadata::json,
		$13, ev.hash, ev.prev_hash
	FROM (SELECT won.version, generate_series(1, $4) AS k, unnest($5::uuid[]) AS event_id,
		unnest($6::text[]) AS event_type, unnest($7::int4[]) AS schema_version,
		unnest($8::text[]) AS data, unnest($9::text[]) AS metadata,
		unnest($14::bytea[]) AS hash, unnest($15::bytea[]) AS prev_hash
		FROM won) AS ev
	ORDER BY ev.k -- positions follow versions
	RETURNING position
)
SELECT false, coalesce((SELECT version FROM ins), (SELECT version FROM upd)),
	EXISTS (SELECT 1 FROM won), (SELECT min(position) FROM new), (SELECT max(position) FROM new),
	(SELECT last_hash FROM upd), (SELECT last_at FROM upd)`

// appendOneSQL is oneSQL for one event to a stream whose head the store
// knows, the common command on an existing order: the streams row is
// updated only when all of canAppendOne's checks hold, and the event is
// inserted from what the update returns. It has none of the CASEs and
// branches with which oneSQL answers every other case, and costs the
// server about 30% less (BenchmarkBackendCPU/chronicle/W2). No row
// back means that a check failed or that the stream has no row, and that
// nothing was written: runOne then runs oneSQL, which answers it.
const appendOneSQL = `
WITH upd AS (
	UPDATE streams s SET version = s.version + 1, last_tx = pg_current_xact_id(), last_hash = $11, last_at = $12
	WHERE s.stream_id = $1 AND s.last_tx < pg_current_xact_id()
		AND s.version = $9::int8 AND s.last_hash = $10::bytea AND s.last_at <= $12::timestamptz
		AND CASE $3::int8 WHEN -1 THEN true WHEN -2 THEN s.version > 0 ELSE s.version = $3 END
	RETURNING s.version
)
INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata,
	recorded_at, hash, prev_hash)
SELECT $1, $2, upd.version, $4::uuid, $5::text, $6::int4, $7::text::json, $8::text::json, $12, $11, $10 FROM upd
RETURNING position, version`

// canAppendOne is canAppend for oneSQL.
const canAppendOne = `(s.last_tx < pg_current_xact_id()
			AND s.version = $10::int8 AND s.last_hash = $11::bytea AND s.last_at <= $13::timestamptz
			AND CASE $3::int8 WHEN -1 THEN true WHEN -2 THEN s.version > 0 ELSE s.version = $3 END)`

// createSQL is oneSQL for an append expecting no stream: the stream's row
// is inserted, or the append fails, with no UPDATE tried first; about a
// quarter less work for the server (pgstore BenchmarkBackendCPU). No row
// inserted means the stream exists (ON CONFLICT waits for a concurrent
// creator to end): runOne then reads its version.
const createSQL = `
WITH ins AS (
	INSERT INTO streams (stream_id, stream_type, version, last_hash, last_at) VALUES ($1, $2, $3, $9, $10)
	ON CONFLICT (stream_id) DO NOTHING
	RETURNING version
),
new AS (
	INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata,
		recorded_at, hash, prev_hash)
	SELECT $1, $2, ev.k, ev.event_id, ev.event_type, ev.schema_version, ev.data::json, ev.metadata::json,
		$10, ev.hash, ev.prev_hash
	FROM (SELECT generate_series(1, $3) AS k, unnest($4::uuid[]) AS event_id,
		unnest($5::text[]) AS event_type, unnest($6::int4[]) AS schema_version,
		unnest($7::text[]) AS data, unnest($8::text[]) AS metadata,
		unnest($11::bytea[]) AS hash, unnest($12::bytea[]) AS prev_hash
		FROM ins) AS ev
	ORDER BY ev.k -- positions follow versions
	RETURNING position
)
SELECT false, (SELECT version FROM ins), EXISTS (SELECT 1 FROM ins), min(position), max(position),
	NULL::bytea, NULL::timestamptz FROM new`

// runOne runs oneSQL (or createSQL, or for one event create) for r; see
// runBatch.
func (s *Store) runOne(ctx context.Context, q querier, r *appendReq) ([]batchOutcome, error) {
	var (
		ids    = make([][16]byte, len(r.events))
		types  = make([]string, len(r.events))
		schema = make([]int32, len(r.events))
		data   = make([]string, len(r.events))
		meta   = make([]*string, len(r.events))
	)
	hashes, prevs := r.hashArgs()
	for i, e := range r.events {
		ids[i], types[i], schema[i] = uuidBytes(e.ID), e.Type, int32(e.SchemaVersion)
		data[i], meta[i] = bytesText(e.Data), metadataArg(e)
	}
	create := r.expected == chronicle.NoStream
	if b, ok := q.(batchSender); ok && create && len(r.events) == 1 {
		return s.create(ctx, b, r, ids, types, schema, data, meta, hashes, prevs)
	}
	if !create && len(r.events) == 1 && r.head.version > 0 && !s.oneSQLOnly {
		row, err := s.appendKnown(ctx, q, r, ids[0], types[0], schema[0], data[0], meta[0], hashes[0], prevs[0])
		if err != nil {
			return nil, err
		}
		if row.appended {
			s.known.Add(1)
			s.learn(r, row)
			return []batchOutcome{row.outcome(r)}, nil
		}
		// A check failed, or the stream has no row: oneSQL answers that.
	}
	var rows pgx.Rows
	var err error
	if create {
		rows, err = q.Query(ctx, createSQL, r.stream, chronicle.StreamType(r.stream), int64(len(r.events)),
			ids, types, schema, data, meta, r.hashes[len(r.events)][:], r.at, hashes, prevs)
	} else {
		rows, err = q.Query(ctx, oneSQL, r.stream, chronicle.StreamType(r.stream), int64(r.expected), int32(len(r.events)),
			ids, types, schema, data, meta, r.head.version, r.hashes[0][:], r.hashes[len(r.events)][:], r.at, hashes, prevs)
	}
	if err != nil {
		return nil, err
	}
	var row resultRow
	n := 0
	for rows.Next() {
		if err := rows.Scan(&row.dup, &row.version, &row.appended, &row.first, &row.last, &row.lastHash, &row.lastAt); err != nil {
			rows.Close()
			return nil, err
		}
		n++
	}
	rows.Close() // reads up to the end of the statement, commit included
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if n != 1 {
		return nil, fmt.Errorf("pgstore: append returned %d rows, want 1", n)
	}
	if create && !row.appended {
		if err := s.existing(ctx, r, &row); err != nil {
			return nil, err
		}
	}
	s.learn(r, row)
	return []batchOutcome{row.outcome(r)}, nil
}

// appendKnown runs appendOneSQL for r, one event to a stream with a known
// head. A row not appended means nothing was written.
func (s *Store) appendKnown(ctx context.Context, q querier, r *appendReq, id [16]byte, typ string, schema int32, data string, meta *string, hash, prev []byte) (resultRow, error) {
	var row resultRow
	rows, err := q.Query(ctx, appendOneSQL, r.stream, chronicle.StreamType(r.stream), int64(r.expected),
		id, typ, schema, data, meta, r.head.version, prev, hash, r.at)
	if err != nil {
		return row, err
	}
	var version, position int64
	n := 0
	for rows.Next() {
		if err := rows.Scan(&position, &version); err != nil {
			rows.Close()
			return row, err
		}
		n++
	}
	rows.Close() // reads up to the end of the statement, commit included
	if err := rows.Err(); err != nil {
		return row, err
	}
	if n == 1 {
		row.version, row.appended, row.first, row.last = &version, true, &position, &position
	}
	return row, nil
}

// existing sets row's version to that of r's stream, which r expected not
// to exist: its version makes the conflict (or, if a retry of this very
// append created it, resolveDuplicate finds it).
func (s *Store) existing(ctx context.Context, r *appendReq, row *resultRow) error {
	var v int64
	err := s.wpool.QueryRow(ctx, `SELECT version FROM streams WHERE stream_id = $1`, r.stream).Scan(&v)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	row.version = &v
	return nil
}

// batchSender runs several statements in one round trip and one implicit
// transaction (the pool).
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// createStreamSQL and createEventSQL are createSQL for one event as two
// plain INSERTs sent together: one round trip and one implicit
// transaction, about a quarter less work for the server than the statement
// that joins them (pgstore BenchmarkBackendCPU, W1). A stream that exists
// fails the first on its key (after waiting for a concurrent creator to
// end), and nothing is written.
const (
	createStreamSQL = `INSERT INTO streams (stream_id, stream_type, version, last_hash, last_at) VALUES ($1, $2, $3, $4, $5)`
	createEventSQL  = `INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata,
	recorded_at, hash, prev_hash)
VALUES ($1, $2, 1, $3, $4, $5, $6::text::json, $7::text::json, $8, $9, $10)
RETURNING position, position`
)

// create runs r, one event expecting no stream, with createStreamSQL and
// createEventSQL; see runOne.
func (s *Store) create(ctx context.Context, q batchSender, r *appendReq, ids [][16]byte, types []string, schema []int32, data []string, meta []*string, hashes, prevs [][]byte) ([]batchOutcome, error) {
	typ := chronicle.StreamType(r.stream)
	b := &pgx.Batch{}
	b.Queue(createStreamSQL, r.stream, typ, int64(1), hashes[0], r.at)
	b.Queue(createEventSQL, r.stream, typ, ids[0], types[0], schema[0], data[0], meta[0], r.at, hashes[0], prevs[0])
	br := q.SendBatch(ctx, b)
	var row resultRow
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&row.first, &row.last)
	}
	if cerr := br.Close(); err == nil {
		err = cerr // the commit's
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		v := int64(1)
		row.version, row.appended = &v, true
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "streams_pkey":
		if err := s.existing(ctx, r, &row); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	s.learn(r, row)
	return []batchOutcome{row.outcome(r)}, nil
}

// uuidBytes returns the bytes of a canonical UUID (event ids are checked
// before they get here). pgx sends a [16]byte in binary; a string it cannot,
// and it builds an error for each one before falling back to text.
func uuidBytes(id string) [16]byte {
	var u [16]byte
	j := 0
	for i := 0; i+1 < len(id) && j < 16; i++ {
		if id[i] == '-' {
			continue
		}
		u[j] = unhex(id[i])<<4 | unhex(id[i+1])
		i++
		j++
	}
	return u
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

func metadataArg(e chronicle.Event) *string {
	if len(e.Metadata) == 0 {
		return nil
	}
	m := bytesText(e.Metadata)
	return &m
}

// resultRow is one append's row of batchSQL or oneSQL.
type resultRow struct {
	dup, appended bool
	version       *int64 // nil: the stream did not exist for this statement
	first, last   *int64
	lastHash      []byte     // the stream's head after the statement, when it
	lastAt        *time.Time // updated the stream's row
}

// outcome turns r's row into its answer.
func (row resultRow) outcome(r *appendReq) batchOutcome {
	var current int64
	if row.version != nil {
		current = *row.version
	}
	var o batchOutcome
	switch {
	case row.dup:
		o.out.dup = true
	case row.appended && row.first != nil && row.last != nil:
		n := int64(len(r.events))
		o.out.res = chronicle.AppendResult{
			StreamID:      r.stream,
			FirstVersion:  current - n + 1,
			LastVersion:   current,
			FirstPosition: *row.first,
			LastPosition:  *row.last,
		}
	case !r.expected.Check(current):
		// A retry of an append that landed fails its version check: look
		// for its ids before answering with the conflict. Also when the
		// statement looked for them itself: it did so on a snapshot taken
		// before it waited for the stream's lock, and the append holding
		// the lock may have been the one that stored them.
		o.out.dup = true
		o.out.conflict = &chronicle.ConflictError{Stream: r.stream, Expected: r.expected, Actual: current}
	default:
		// Lost the race to create the stream, its last append has a later
		// transaction id, or the head the append was hashed on is stale:
		// run it again in a later transaction.
		o.retry = true
	}
	return o
}

// savepointBatch bounds the appends of one savepoint transaction: each
// append that writes is a subtransaction with its own id, and PostgreSQL
// caches only 64 of those per transaction before every snapshot in the
// cluster gets slower.
const savepointBatch = 32

// commitEach runs batch in explicit transactions with a savepoint per
// append, so an append that fails (duplicate id, BeforeCommit error) rolls
// back alone.
func (s *Store) commitEach(ctx context.Context, batch []*appendReq) (retry []*appendReq) {
	// The same lock order as the batch statement's.
	slices.SortFunc(batch, func(a, b *appendReq) int { return strings.Compare(a.stream, b.stream) })
	for chunk := range slices.Chunk(batch, savepointBatch) {
		retry = append(retry, s.commitChunk(ctx, chunk)...)
	}
	return retry
}

func (s *Store) commitChunk(ctx context.Context, batch []*appendReq) (retry []*appendReq) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		for _, r := range batch {
			r.done <- appendOutcome{err: s.opErr("append "+r.stream, err)}
		}
		return nil
	}
	defer tx.Rollback(ctx)
	outs := make([]batchOutcome, len(batch))
	for i, r := range batch {
		outs[i] = s.appendOne(ctx, tx, r, i == 0)
	}
	if err := tx.Commit(ctx); err != nil {
		// What was written is lost (or, if the connection broke, unknown);
		// the answers that wrote nothing stand.
		for i, r := range batch {
			if outs[i].out.err == nil && !outs[i].out.dup && !outs[i].retry {
				outs[i].out = appendOutcome{err: s.opErr("append "+r.stream, err)}
			}
		}
	}
	return s.answer(batch, outs)
}

// appendOne runs one append inside tx, under savepoint "a", in one round
// trip (the previous append's release and this savepoint are pipelined with
// the statement). An append that writes nothing rolls back to its savepoint,
// which also drops the row locks it took, so it cannot hold up other
// transactions until commit.
func (s *Store) appendOne(ctx context.Context, tx pgx.Tx, r *appendReq, first bool) batchOutcome {
	prefix := []string{"RELEASE SAVEPOINT a", "SAVEPOINT a"}
	if first {
		prefix = prefix[1:]
	}
	rollback := func() { tx.Exec(ctx, "ROLLBACK TO SAVEPOINT a") }
	outs, err := s.runBatch(ctx, pipeline{tx, prefix}, []*appendReq{r}, true)
	if err != nil {
		rollback()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			switch {
			case pgErr.Code == "23505" && pgErr.ConstraintName == "events_event_id_key":
				return batchOutcome{out: appendOutcome{dup: true}}
			case pgErr.Code == "40P01":
				// Deadlock with another batch over an event id or stream:
				// run it again in a later transaction, after ours has
				// released what the other one waits for.
				return batchOutcome{retry: true}
			}
		}
		return batchOutcome{out: appendOutcome{err: s.opErr("append "+r.stream, err)}}
	}
	o := outs[0]
	if o.out.err != nil || o.out.dup || o.retry {
		rollback()
		return o
	}
	if s.opts.BeforeCommit != nil {
		if err := s.opts.BeforeCommit(r.stream, r.events); err != nil {
			rollback()
			return batchOutcome{out: appendOutcome{err: fmt.Errorf("append %s: %w", r.stream, err)}}
		}
	}
	return o
}

// pipeline is a querier that sends its prefix statements and the query in
// one round trip.
type pipeline struct {
	tx     pgx.Tx
	prefix []string
}

func (p pipeline) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	b := &pgx.Batch{}
	for _, q := range p.prefix {
		b.Queue(q)
	}
	b.Queue(sql, args...)
	br := p.tx.SendBatch(ctx, b)
	for range p.prefix {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// batchRows closes its batch with the rows and reports the batch's error.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		r.err = r.br.Close()
		r.br = nil
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// resolveDuplicate decides whether an append whose event ids are already
// stored is a retry of the append that stored them: same stream, same
// events in the same order with the same content, all of one earlier
// append, at the place expected puts them. found is how many of the ids are
// stored.
func (s *Store) resolveDuplicate(ctx context.Context, stream string, expected chronicle.ExpectedVersion, evs []chronicle.Event) (res chronicle.AppendResult, found int, err error) {
	ids := make([][16]byte, len(evs))
	for i, e := range evs {
		ids[i] = uuidBytes(e.ID)
	}
	rows, err := s.pool.Query(ctx, `
SELECT event_id::text, stream_id, version, position, tx_id, event_type, schema_version, data, metadata
FROM events WHERE event_id = ANY($1::uuid[])`, ids)
	if err != nil {
		return res, 0, s.opErr("append "+stream, err)
	}
	type stored struct {
		stream       string
		version, pos int64
		tx           uint64
		typ          string
		schema       int
		data, meta   []byte
	}
	got := make(map[string]stored, len(evs))
	for rows.Next() {
		var id string
		var e stored
		if err := rows.Scan(&id, &e.stream, &e.version, &e.pos, &e.tx, &e.typ, &e.schema, &e.data, &e.meta); err != nil {
			rows.Close()
			return res, 0, s.opErr("append "+stream, err)
		}
		got[id] = e
	}
	if err := rows.Err(); err != nil {
		return res, 0, s.opErr("append "+stream, err)
	}
	if len(got) == 0 {
		return res, 0, nil
	}
	dupErr := func(id, reason string, args ...any) error {
		return &chronicle.DuplicateEventError{Stream: stream, EventID: id, Reason: fmt.Sprintf(reason, args...)}
	}
	first, ok := got[evs[0].ID]
	for i, e := range evs {
		g, there := got[e.ID]
		switch {
		case !ok || !there:
			// Some ids stored, some not: a partial overlap, never a retry.
			for _, e := range evs {
				if _, there := got[e.ID]; there {
					return res, len(got), dupErr(e.ID, "already stored, but this append's other events are not (partial overlap)")
				}
			}
		case g.stream != stream:
			return res, len(got), dupErr(e.ID, "already stored in stream %q", g.stream)
		case g.tx != first.tx || g.version != first.version+int64(i):
			return res, len(got), dupErr(e.ID, "already stored, but not as this append's event %d", i)
		case g.typ != e.Type || g.schema != e.SchemaVersion || !bytes.Equal(g.data, e.Data) || !bytes.Equal(g.meta, e.Metadata):
			return res, len(got), dupErr(e.ID, "already stored with other content")
		}
	}
	// Exactly one earlier append? A stream gets at most one append per
	// transaction, so its events in that transaction are that append.
	var n int64
	var minPos, maxPos int64
	err = s.pool.QueryRow(ctx, `
SELECT count(*), min(position), max(position) FROM events WHERE tx_id = $1 AND stream_id = $2`,
		first.tx, stream).Scan(&n, &minPos, &maxPos)
	if err != nil {
		return res, len(got), s.opErr("append "+stream, err)
	}
	if n != int64(len(evs)) {
		return res, len(got), dupErr(evs[0].ID, "already stored as part of an append of %d events, not %d (partial overlap)", n, len(evs))
	}
	place := true
	switch {
	case expected == chronicle.Any:
	case expected == chronicle.StreamExists:
		place = first.version > 1
	default:
		place = first.version == int64(expected)+1
	}
	if !place {
		return res, len(got), dupErr(evs[0].ID, "already stored at version %d, not where %s puts it", first.version, expected)
	}
	return chronicle.AppendResult{
		StreamID:      stream,
		FirstVersion:  first.version,
		LastVersion:   first.version + int64(len(evs)) - 1,
		FirstPosition: minPos,
		LastPosition:  maxPos,
	}, len(got), nil
}
