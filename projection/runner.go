package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/chronicle-es/chronicle"
)

// Options tune a Runner. The zero value is usable.
type Options struct {
	// Upcaster turns stored events into their current shape before any
	// projection sees them. Nil passes events through unchanged.
	Upcaster Upcaster
	// BatchSize is how many events one transaction applies. Default 1000.
	BatchSize int
	// RebuildBatchSize is how many events a rebuild reads at a time.
	// Default 5000: a rebuild commits nothing that anyone reads until its
	// swap, so it favours throughput over latency.
	RebuildBatchSize int
	// MaxAttempts is how many times an event is tried before the projection
	// stops at it with status "failed". Default 5. Only the event's own
	// failures count: the database's (connection lost, busy, deadlock,
	// timeouts, disk full) are retried for as long as they last.
	MaxAttempts int
	// Backoff is the wait before the first retry of a failing event, or
	// after an error of the database; it doubles up to MaxBackoff.
	// Defaults 100ms and 5s.
	Backoff, MaxBackoff time.Duration
	// PollInterval is the safety poll while idle, in case a notification is
	// lost; notifications wake runners at once. Default 1s.
	PollInterval time.Duration
	// Gather, when positive, is the least time between two batches a live
	// projection applies while new events keep coming: woken sooner, it
	// waits for the rest, so that the events of many small appends gather
	// into one transaction. Each transaction takes the database's write
	// lock (on SQLite the only one, which appends wait for) and a commit;
	// a few milliseconds of read-model lag buy back most of them under
	// load. Default 0: apply at once.
	Gather time.Duration
	// LeaseInterval is how often a standby tries to take a lease, and a
	// holder checks its lease connection (PostgreSQL). Default 2s. A
	// holder that dies, freezes or is cut off from the database loses its
	// lease within 3 x LeaseInterval, and a standby takes over within
	// about 4 x LeaseInterval (8 s).
	LeaseInterval time.Duration
	// Logger receives operational messages. Default: discard.
	Logger *slog.Logger
	// Hooks observe the runner, for metrics.
	Hooks Hooks
	// BeforeCommit, when set, runs inside each apply transaction after the
	// projection wrote its changes and the checkpoint, just before commit;
	// an error rolls the transaction back and counts as a failed attempt.
	// It exists to inject faults in tests.
	BeforeCommit func(name string, events []chronicle.RecordedEvent) error
	// Now is the clock for status times. Default time.Now.
	Now func() time.Time
	// Sinks are run beside the projections (see Sink). Their batches are
	// of BatchSize events too.
	Sinks []Sink
	// Watch names sinks that other processes may run: Status lists each
	// one whose checkpoint exists, after the projections and Sinks.
	Watch []string
}

// Hooks are called by the runner; any may be nil. They must not block.
type Hooks struct {
	// Applied: a batch of n events was committed, moving the checkpoint to cp.
	Applied func(name string, n int, cp chronicle.Checkpoint, took time.Duration)
	// Failing: an attempt at an event failed; final means the projection
	// stopped at it (reported once the failure is recorded, so Status,
	// Retry and Skip already see it).
	Failing func(name string, f Failure, final bool)
	// Fenced: a commit found the checkpoint moved by someone else.
	Fenced func(name string)
	// Lease: this process started (held) or stopped running the
	// projection; on PostgreSQL, took or lost its lease.
	Lease func(name string, held bool)
}

// Runner runs projections against one store. Create it with New, prepare
// the tables with Setup (Run does it too), then Run.
type Runner struct {
	store   chronicle.Store
	db      *sql.DB
	d       Dialect
	opts    Options
	workers []*worker // the projections
	sinks   []*worker
	byName  map[string]*worker // projections and sinks

	setupOnce sync.Once
	setupErr  error
	schema    string     // PostgreSQL current_schema(), part of the lease keys
	stmts     *stmtCache // SQLite: the live transactions' statements, prepared once

	// rebuildHook, set by tests, is called at a rebuild's steps: "page"
	// after each page its catch-up applies, "swap" before it swaps.
	rebuildHook func(step string)
}

// worker is one projection's live state in this process.
type worker struct {
	p      Projection
	sink   Sink // instead of p
	name   string
	filter chronicle.ReadAllOptions
	wake   chan struct{} // Retry/Skip: look at the checkpoint row now

	mu       sync.Mutex
	held     bool // this process runs it (holds the lease)
	cp       chronicle.Checkpoint
	retrying *Failure // attempts in progress, not yet final
	progress chan struct{}
	rebuild  *Progress
	// waiters wait for a stream's version to be applied here, by stream:
	// an applied batch wakes only the waiters of its streams.
	waiters map[string][]*streamWaiter
	// recheck is closed when stream waiters must look again: held
	// changed, or the checkpoint moved under this runner (a rebuild's
	// swap, a skip, another runner), past events it did not apply itself.
	recheck chan struct{}
}

// streamWaiter is a WaitForStream call waiting for version of its stream.
type streamWaiter struct {
	version int64
	done    chan struct{} // closed once an event at or past version is applied
}

// unwait forgets sw, a waiter of stream, unless it was woken already.
func (w *worker) unwait(stream string, sw *streamWaiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.waiters[stream]
	for i, x := range ws {
		if x == sw {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(w.waiters, stream)
	} else {
		w.waiters[stream] = ws
	}
}

// setHeld records whether this process runs the projection, and wakes
// stream waiters to look again (how they wait depends on it).
func (w *worker) setHeld(held bool) {
	w.mu.Lock()
	w.held = held
	w.wakeWaiters()
	w.mu.Unlock()
}

// wakeWaiters makes every stream waiter look again. w.mu is held.
func (w *worker) wakeWaiters() {
	close(w.recheck)
	w.recheck = make(chan struct{})
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// advanced publishes a new checkpoint to waiters, and wakes the waiters of
// the streams of the events applied up to it.
func (w *worker) advanced(cp chronicle.Checkpoint, applied ...chronicle.RecordedEvent) {
	w.mu.Lock()
	w.cp = cp
	w.retrying = nil
	close(w.progress)
	w.progress = make(chan struct{})
	for i := 0; i < len(applied) && len(w.waiters) > 0; i++ {
		e := applied[i]
		ws := w.waiters[e.StreamID]
		if len(ws) == 0 {
			continue
		}
		kept := ws[:0]
		for _, sw := range ws {
			if sw.version <= e.Version {
				close(sw.done)
			} else {
				kept = append(kept, sw)
			}
		}
		if len(kept) == 0 {
			delete(w.waiters, e.StreamID)
		} else {
			w.waiters[e.StreamID] = kept
		}
	}
	w.mu.Unlock()
}

// New returns a runner of projections over store, which must implement
// chronicle.SQLDatabase (both backends do). Projection names must be unique.
// Errors: ErrNoSQL.
func New(store chronicle.Store, opts Options, projections ...Projection) (*Runner, error) {
	sdb, ok := store.(chronicle.SQLDatabase)
	if !ok {
		return nil, ErrNoSQL
	}
	d := Dialect(sdb.Dialect())
	if d != SQLite && d != Postgres {
		return nil, fmt.Errorf("projection: unsupported dialect %q", d)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.RebuildBatchSize <= 0 {
		opts.RebuildBatchSize = 5000
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.LeaseInterval <= 0 {
		opts.LeaseInterval = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Upcaster == nil {
		opts.Upcaster = UpcasterFunc(func(e chronicle.RecordedEvent) (chronicle.RecordedEvent, error) { return e, nil })
	}
	r := &Runner{store: store, db: sdb.SQLDB(), d: d, opts: opts, byName: map[string]*worker{}}
	if d == SQLite {
		r.stmts = newStmtCache(r.db)
	}
	for _, p := range projections {
		name := p.Name()
		if name == "" || len(p.Tables()) == 0 {
			return nil, fmt.Errorf("projection: %q: a projection needs a name and at least one table", name)
		}
		if _, dup := r.byName[name]; dup {
			return nil, fmt.Errorf("projection: duplicate projection name %q", name)
		}
		w := &worker{p: p, name: name, filter: p.Filter(), wake: make(chan struct{}, 1), progress: make(chan struct{}),
			waiters: map[string][]*streamWaiter{}, recheck: make(chan struct{})}
		w.filter.Limit = 0
		r.workers = append(r.workers, w)
		r.byName[name] = w
	}
	for _, k := range opts.Sinks {
		name := k.Name()
		if name == "" {
			return nil, errors.New("projection: a sink needs a name")
		}
		if _, dup := r.byName[name]; dup {
			return nil, fmt.Errorf("projection: duplicate projection name %q", name)
		}
		w := &worker{sink: k, name: name, filter: k.Filter(), wake: make(chan struct{}, 1), progress: make(chan struct{}),
			waiters: map[string][]*streamWaiter{}, recheck: make(chan struct{})}
		w.filter.Limit = 0
		r.sinks = append(r.sinks, w)
		r.byName[name] = w
	}
	return r, nil
}

// Dialect returns the dialect of the store's database.
func (r *Runner) Dialect() Dialect { return r.d }

// DB returns the store's database, where the read models live.
func (r *Runner) DB() *sql.DB { return r.db }

func (r *Runner) now() time.Time { return r.opts.Now() }

// Setup creates the checkpoint tables and every projection's tables that do
// not exist yet, and a checkpoint at the start of the log for each new
// projection. It is safe to call from several processes at once.
func (r *Runner) Setup(ctx context.Context) error {
	r.setupOnce.Do(func() { r.setupErr = r.setup(ctx) })
	return r.setupErr
}

func (r *Runner) setup(ctx context.Context) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("projection: setup: %w", err)
	}
	defer tx.Rollback()
	if r.d == Postgres {
		if err := tx.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&r.schema); err != nil {
			return fmt.Errorf("projection: setup: %w", err)
		}
		// Serialize concurrent setups: CREATE TABLE IF NOT EXISTS races.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(r.schema, "\x00setup")); err != nil {
			return fmt.Errorf("projection: setup: %w", err)
		}
	}
	for _, ddl := range checkpointDDL {
		if _, err := tx.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("projection: setup: %w", err)
		}
	}
	for _, w := range r.workers {
		exists, err := r.tableExists(ctx, tx, w.p.Tables()[0])
		if err != nil {
			return err
		}
		if !exists {
			if err := w.p.Create(ctx, tx, r.d, Tables{}); err != nil {
				return fmt.Errorf("projection %s: create tables: %w", w.name, err)
			}
		}
		if _, err := r.exec(ctx, tx, `INSERT INTO projection_checkpoints (name, updated_at) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING`, w.name, nanos(r.now())); err != nil {
			return fmt.Errorf("projection %s: setup: %w", w.name, err)
		}
	}
	for _, w := range r.sinks {
		if _, err := r.exec(ctx, tx, `INSERT INTO projection_checkpoints (name, updated_at) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING`, w.name, nanos(r.now())); err != nil {
			return fmt.Errorf("projection %s: setup: %w", w.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projection: setup: %w", err)
	}
	r.dropLeftovers(ctx)
	return nil
}

func (r *Runner) tableExists(ctx context.Context, q execer, table string) (bool, error) {
	var n int
	var err error
	if r.d == Postgres {
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1`, table).Scan(&n)
	} else {
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1`, table).Scan(&n)
	}
	if err != nil {
		return false, fmt.Errorf("projection: look for table %s: %w", table, err)
	}
	return n > 0, nil
}

// Run sets up the tables and runs every projection until ctx ends, each in
// its own goroutine, so one failing projection does not hold up another.
// On PostgreSQL a projection runs only while this process holds its lease.
// It returns nil when ctx ends, or the setup error.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.Setup(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, w := range append(r.workers[:len(r.workers):len(r.workers)], r.sinks...) {
		wg.Go(func() { r.lease(ctx, w) })
	}
	wg.Wait()
	r.stmts.close()
	return nil
}

// wait blocks for d, or until ctx ends; it reports whether ctx is still live.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// The re-reads after a notification: 2, 4, ... 256 ms.
const (
	chaseFirst = 2 * time.Millisecond
	chaseMax   = 256 * time.Millisecond
)

// follow runs w while ctx (the lease) lasts: catch up, then follow live.
func (r *Runner) follow(ctx context.Context, w *worker) {
	log := r.opts.Logger.With("projection", w.name)
	notify := r.store.Notify(ctx)
	poll := time.NewTicker(r.opts.PollInterval)
	defer poll.Stop()

	var (
		cp        chronicle.Checkpoint
		loaded    bool
		limit     = r.opts.BatchSize
		slowUntil chronicle.Checkpoint // single-event mode until past this
		attempts  int
		errWait   = r.opts.Backoff
	)
	// After a notification, read again a few times at growing intervals:
	// on PostgreSQL a committed event stays invisible to ReadAll while an
	// older transaction (another projection's commit, say) is still open,
	// and no second notification comes when it becomes visible.
	var chase time.Duration
	var lastApplied time.Time
	// The head matters only when a filtered read finds nothing: it is
	// taken then, and the read repeated, rather than before every read
	// (a query per batch under a stream of events).
	filtered := len(w.filter.StreamTypes)+len(w.filter.EventTypes) > 0
	probeHead := false
	idle := func() bool {
		var chaseC <-chan time.Time
		if chase > 0 {
			t := time.NewTimer(chase)
			defer t.Stop()
			chaseC = t.C
		}
		select {
		case <-notify:
			chase = chaseFirst
		case <-chaseC:
			if chase *= 2; chase > chaseMax {
				chase = 0
			}
		case <-poll.C:
		case <-w.wake:
			return true // Retry or Skip: at once
		case <-ctx.Done():
			return false
		}
		if d := r.opts.Gather - time.Since(lastApplied); d > 0 {
			return wait(ctx, d)
		}
		return true
	}
	// transient waits after an infrastructure error (database down...).
	transient := func(op string, err error) bool {
		if ctx.Err() != nil {
			return false
		}
		log.Warn("projection: "+op, "err", err, "retry_in", errWait)
		ok := wait(ctx, errWait)
		errWait = min(errWait*2, r.opts.MaxBackoff)
		return ok
	}
	for ctx.Err() == nil {
		if !loaded {
			row, err := r.readCheckpoint(ctx, r.db, w.name)
			if err != nil {
				if !transient("load checkpoint", err) {
					return
				}
				continue
			}
			if row.status == StatusFailed {
				// Stopped at a poison event: wait for Retry or Skip, from
				// this process (wake) or another (poll).
				if !idle() {
					return
				}
				continue
			}
			cp, loaded, attempts = row.cp, true, 0
			w.advanced(cp)
			w.mu.Lock()
			w.wakeWaiters()
			w.mu.Unlock()
		}
		var head chronicle.Head
		if filtered && probeHead {
			// Taken before reading, so that an empty page proves every
			// matching event up to head has been seen (see below).
			h, err := r.store.Head(ctx)
			if err != nil {
				if !transient("read head", err) {
					return
				}
				continue
			}
			head = h
		}
		opts := w.filter
		opts.Limit = limit
		events, err := r.store.ReadAll(ctx, cp, opts)
		if err != nil {
			if !transient("read log", err) {
				return
			}
			continue
		}
		if len(events) == 0 {
			if filtered && !probeHead {
				// Read again with the head taken first: only then does
				// the empty page say how far the checkpoint may move.
				probeHead = true
				continue
			}
			// A filtered projection would otherwise lag behind events it
			// does not want; move its checkpoint to the head it has seen.
			if cp.Before(head.Checkpoint) {
				err := r.commit(ctx, w, cp, head.Checkpoint, nil)
				switch {
				case err == nil:
					cp = head.Checkpoint
					w.advanced(cp)
				case errors.Is(err, errFenced):
					loaded = false
				default:
					transient("advance checkpoint", err)
				}
				continue
			}
			errWait = r.opts.Backoff
			if !idle() {
				return
			}
			continue
		}
		probeHead = false
		if w.sink != nil {
			if r.deliver(ctx, w, &cp, events, transient) {
				errWait = r.opts.Backoff
			} else {
				loaded = false
			}
			if len(events) < opts.Limit && !idle() {
				return
			}
			continue
		}
		upcast, bad, upErr := r.upcastAll(events)
		if upErr == nil || len(upcast) > 0 {
			start := time.Now()
			next := upcast[len(upcast)-1].Checkpoint()
			err = r.commit(ctx, w, cp, next, upcast)
			if err == nil {
				lastApplied = time.Now()
				if h := r.opts.Hooks.Applied; h != nil {
					h(w.name, len(upcast), next, time.Since(start))
				}
				cp, attempts, errWait = next, 0, r.opts.Backoff
				w.advanced(cp, upcast...)
				if limit == 1 && !cp.Before(slowUntil) {
					limit = r.opts.BatchSize
				}
				if len(events) < opts.Limit && upErr == nil {
					if !idle() {
						return
					}
				}
				continue
			}
			if errors.Is(err, errFenced) {
				if h := r.opts.Hooks.Fenced; h != nil {
					h(w.name)
				}
				loaded = false
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if dbTrouble(err) {
				// Not the events' fault: the same batch again, once the
				// database is back, however long that takes.
				if !transient("apply", err) {
					return
				}
				continue
			}
			if len(upcast) > 1 {
				// Find the event that fails: go one event at a time over
				// this batch.
				limit, slowUntil = 1, upcast[len(upcast)-1].Checkpoint()
				continue
			}
			bad = upcast[0]
		} else {
			err = upErr
		}
		// One event fails: retry with backoff, then stop at it.
		attempts++
		f := Failure{
			Error: err.Error(), StreamID: bad.StreamID, Version: bad.Version, Position: bad.Position,
			TxID: bad.TxID, EventID: bad.ID, EventType: bad.Type, Attempts: attempts, At: r.now().UTC(),
		}
		final := attempts >= r.opts.MaxAttempts
		if h := r.opts.Hooks.Failing; h != nil && !final {
			h(w.name, f, false)
		}
		if !final {
			w.mu.Lock()
			w.retrying = &f
			w.mu.Unlock()
			log.Warn("projection: event failed, retrying", "stream", f.StreamID, "version", f.Version, "attempt", attempts, "err", err)
			if !wait(ctx, min(r.opts.Backoff<<(attempts-1), r.opts.MaxBackoff)) {
				return
			}
			continue
		}
		log.Error("projection: stopped at event", "stream", f.StreamID, "version", f.Version, "position", f.Position, "err", err)
		if err := r.markFailed(ctx, w.name, cp, f); err != nil {
			if !transient("record failure", err) {
				return
			}
		} else if h := r.opts.Hooks.Failing; h != nil {
			h(w.name, f, true) // after the failure is visible to Status, Retry, Skip
		}
		w.mu.Lock()
		w.retrying = nil
		w.mu.Unlock()
		loaded = false
	}
}

// deliver hands a batch to w's sink and moves the checkpoint, at *cp,
// past it. Errors of either are retried with backoff (transient) for as
// long as they last; it returns false when the checkpoint was fenced (or
// ctx ended), so that it must be read again.
func (r *Runner) deliver(ctx context.Context, w *worker, cp *chronicle.Checkpoint, events []chronicle.RecordedEvent,
	transient func(string, error) bool) bool {
	start := time.Now()
	for {
		err := w.sink.Deliver(ctx, events)
		if err == nil {
			break
		}
		if !transient("deliver", err) {
			return false
		}
	}
	next := events[len(events)-1].Checkpoint()
	for {
		err := r.commit(ctx, w, *cp, next, nil)
		switch {
		case err == nil:
			if h := r.opts.Hooks.Applied; h != nil {
				h(w.name, len(events), next, time.Since(start))
			}
			*cp = next
			w.advanced(next, events...)
			return true
		case errors.Is(err, errFenced):
			if h := r.opts.Hooks.Fenced; h != nil {
				h(w.name)
			}
			return false
		case !transient("advance checkpoint", err):
			return false
		}
	}
}

// upcastAll upcasts events in place (callers own what ReadAll returned);
// on an error it returns the events before the bad one, the bad one and
// the error.
func (r *Runner) upcastAll(events []chronicle.RecordedEvent) ([]chronicle.RecordedEvent, chronicle.RecordedEvent, error) {
	for i, e := range events {
		u, err := r.opts.Upcaster.Upcast(e)
		if err != nil {
			return events[:i], e, fmt.Errorf("upcast %s v%d (%s): %w", e.StreamID, e.Version, e.Type, err)
		}
		events[i] = u
	}
	return events, chronicle.RecordedEvent{}, nil
}

// commit applies events and moves the checkpoint from old to next in one
// transaction. errFenced: the checkpoint was not at old.
func (r *Runner) commit(ctx context.Context, w *worker, old, next chronicle.Checkpoint, events []chronicle.RecordedEvent) error {
	err := r.commitTx(ctx, w, old, next, events)
	// With the transaction over, prepare the statements it met (see
	// stmtCache).
	r.stmts.prepare(ctx)
	return err
}

func (r *Runner) commitTx(ctx context.Context, w *worker, old, next chronicle.Checkpoint, events []chronicle.RecordedEvent) error {
	sqlTx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("projection %s: begin: %w", w.name, err)
	}
	defer sqlTx.Rollback()
	if r.d == Postgres {
		// A holder frozen inside this transaction would keep its lease's
		// checkpoint row locked and every reader of the log held back:
		// the server ends the transaction instead (see lease).
		if _, err := sqlTx.ExecContext(ctx, `SELECT set_config('idle_in_transaction_session_timeout', $1, true)`,
			strconv.FormatInt(r.leaseTimeout().Milliseconds(), 10)); err != nil {
			return fmt.Errorf("projection %s: begin: %w", w.name, err)
		}
	}
	tx := &Tx{Tx: sqlTx, stmts: r.stmts}
	// Checkpoint first: a fenced runner learns it before doing any work, and
	// on PostgreSQL competing runners queue on this row.
	if err := r.casCheckpoint(ctx, tx, w.name, old, next); err != nil {
		return err
	}
	if len(events) > 0 {
		if err := w.p.Apply(ctx, tx, r.d, Tables{}, events); err != nil {
			return err
		}
		if h := r.opts.BeforeCommit; h != nil {
			if err := h(w.name, events); err != nil {
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projection %s: commit: %w", w.name, err)
	}
	return nil
}
