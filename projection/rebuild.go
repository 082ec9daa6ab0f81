package projection

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chronicle-es/chronicle"
)

// Progress reports a rebuild's advance, for progress bars.
type Progress struct {
	Projection   string        `json:"projection"`
	EventsDone   int64         `json:"events_done"`
	Position     int64         `json:"position"`
	HeadPosition int64         `json:"head_position"`
	EventsPerSec float64       `json:"events_per_sec"`
	Elapsed      time.Duration `json:"elapsed"`
	// ETA estimates the time left from the positions still ahead.
	ETA time.Duration `json:"eta"`
	// Swapped is set in the last report: the new tables are live.
	Swapped bool `json:"swapped"`
}

type page struct {
	events []chronicle.RecordedEvent // upcast, but for those in bad
	// bad holds the events whose upcast failed: an error for a projection
	// that applies them, nothing for one that skipped them.
	bad  map[chronicle.Checkpoint]error
	full bool
	head chronicle.Head
	err  error
}

// Rebuild builds projection name again from the start of the log into
// shadow tables while the current ones keep serving (and the live runner
// keeps following), then swaps them in: in one transaction it drops the old
// tables, renames the shadow ones into place and sets the checkpoint to the
// shadow's, so queries see either the old read model or the new one. The
// events written meanwhile (which the live runner applied to the old tables)
// are applied to the shadow tables before the swap, so the new read model is
// never behind the checkpoint the old one had reached. Events recorded as
// skipped are skipped again, even those whose upcast fails. progress, when
// not nil, is called after each batch and once after the swap.
//
// A projection that implements Builder is rebuilt through it rather than
// Apply, and one that implements Indexer gets its secondary indexes after
// the fill, just before the swap.
//
// Cancelling ctx abandons the rebuild (the shadow tables are dropped; the
// live read model is untouched). The shadow tables of a process killed
// during a rebuild are dropped by the next Setup or rebuild of the store. Errors: ErrUnknown; the projection's error
// at an event it cannot apply.
func (r *Runner) Rebuild(ctx context.Context, name string, progress func(Progress)) error {
	return r.RebuildAll(ctx, []string{name}, progress)
}

// RebuildAll rebuilds the projections named (every one when names is
// empty) as Rebuild does, but projections that read the same events (equal
// Filter) share one pass over the log and are swapped in together, in one
// transaction. progress is called for each projection.
// Errors: those of Rebuild.
func (r *Runner) RebuildAll(ctx context.Context, names []string, progress func(Progress)) error {
	if len(names) == 0 {
		names = r.Names()
	}
	var groups [][]*worker
	for _, name := range names {
		w, ok := r.byName[name]
		if !ok {
			return fmt.Errorf("%w: %q", ErrUnknown, name)
		}
		if w.sink != nil {
			return fmt.Errorf("%w: %q", ErrSink, name)
		}
		i := slices.IndexFunc(groups, func(g []*worker) bool { return sameFilter(g[0].filter, w.filter) })
		switch {
		case i < 0:
			groups = append(groups, []*worker{w})
		case !slices.Contains(groups[i], w):
			groups[i] = append(groups[i], w)
		}
	}
	if err := r.Setup(ctx); err != nil {
		return err
	}
	for _, g := range groups {
		if err := r.rebuild(ctx, g, progress); err != nil {
			return err
		}
	}
	return nil
}

func sameFilter(a, b chronicle.ReadAllOptions) bool {
	return slices.Equal(a.StreamTypes, b.StreamTypes) && slices.Equal(a.EventTypes, b.EventTypes)
}

// target is one projection of a rebuild pass.
type target struct {
	w      *worker
	shadow Tables
	ix     Indexer // nil: indexes come with the tables
	build  Build   // nil: Apply per page
	skip   map[chronicle.Checkpoint]bool
	done   int64
	err    error // of the last page
	// finished: the tables are complete (final write, indexes); later
	// events go through Apply.
	finished bool

	// A Build's writes run one at a time in the background, so that the
	// database writes while the pass decodes and folds the next pages.
	inflight chan error
}

// wait waits for the write in flight, if any, and returns its error.
func (t *target) wait() error {
	if t.inflight == nil {
		return nil
	}
	err := <-t.inflight
	t.inflight = nil
	return err
}

// write starts write f once the previous one is done.
func (t *target) write(ctx context.Context, r *Runner, f func(ctx context.Context, tx *Tx) error) error {
	if err := t.wait(); err != nil {
		return err
	}
	t.inflight = make(chan error, 1)
	go func(done chan<- error) {
		done <- r.shadowTx(ctx, func(tx *Tx) error { return f(ctx, tx) })
	}(t.inflight)
	return nil
}

// events returns the events of pg that t applies: those not recorded as
// skipped. An event skipped because its upcast failed is no error here.
func (t *target) events(pg page) ([]chronicle.RecordedEvent, error) {
	if len(t.skip) == 0 && len(pg.bad) == 0 {
		return pg.events, nil
	}
	apply := make([]chronicle.RecordedEvent, 0, len(pg.events))
	for _, e := range pg.events {
		cp := e.Checkpoint()
		if t.skip[cp] {
			continue
		}
		if err := pg.bad[cp]; err != nil {
			return nil, err
		}
		apply = append(apply, e)
	}
	return apply, nil
}

// fold applies one page of events to t's shadow tables.
func (t *target) fold(ctx context.Context, r *Runner, pg page, flushAt int) error {
	apply, err := t.events(pg)
	if err != nil {
		return err
	}
	t.done += int64(len(apply))
	if len(apply) == 0 {
		return nil
	}
	if t.build == nil || t.finished {
		return r.shadowTx(ctx, func(tx *Tx) error { return t.w.p.Apply(ctx, tx, r.d, t.shadow, apply) })
	}
	// Reads see every row written before: they wait for the write in flight.
	if err := t.build.Add(ctx, waitQuerier{q: r.db, wait: t.wait}, apply); err != nil {
		return err
	}
	if t.build.Pending() < flushAt {
		return nil
	}
	return t.write(ctx, r, t.build.Flush(false))
}

// rebuild rebuilds the projections of ws, which share a filter, in one
// pass over the log, and swaps them in together.
func (r *Runner) rebuild(ctx context.Context, ws []*worker, progress func(Progress)) error {
	// Leftovers of killed rebuilds first; then the lock that keeps any
	// other process from taking this one's tables for leftovers.
	r.dropLeftovers(ctx)
	release, err := r.lockRebuilds(ctx)
	if err != nil {
		return err
	}
	defer release() // after the shadow tables are dropped (deferred below)
	gen := shadowInfix + strconv.FormatInt(time.Now().UnixNano(), 36)
	ts := make([]*target, len(ws))
	for i, w := range ws {
		t := &target{w: w, shadow: Tables{}}
		for _, name := range w.p.Tables() {
			t.shadow[name] = name + gen
		}
		t.ix, _ = w.p.(Indexer)
		if b, ok := w.p.(Builder); ok {
			t.build = b.NewBuild(r.d, t.shadow)
		}
		ts[i] = t
	}
	swapped := false
	defer func() {
		for _, t := range ts {
			t.wait() // before dropping the tables it writes
			t.w.mu.Lock()
			t.w.rebuild = nil
			t.w.mu.Unlock()
			if !swapped {
				r.dropTables(context.WithoutCancel(ctx), t.shadow)
			}
		}
	}()
	for _, t := range ts {
		if err := r.shadowTx(ctx, func(tx *Tx) error {
			if t.ix != nil {
				return t.ix.CreateTables(ctx, tx.Tx, r.d, t.shadow)
			}
			return t.w.p.Create(ctx, tx.Tx, r.d, t.shadow)
		}); err != nil {
			return fmt.Errorf("projection %s: rebuild: create shadow tables: %w", t.w.name, err)
		}
		skip, err := r.skippedSet(ctx, r.db, t.w.name)
		if err != nil {
			return err
		}
		t.skip = skip
	}
	// Flushes of a few pages' rows: few statements and commits, yet short
	// transactions (on PostgreSQL an open writing transaction holds back
	// every reader of the log, live projections included).
	flushAt := 4 * r.opts.RebuildBatchSize

	// Read ahead while the previous page is applied: reading and writing
	// overlap, which is most of a rebuild's speed.
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	pages := make(chan page, 2)
	go r.readAhead(rctx, ws[0].filter, pages)

	start := time.Now()
	var cp chronicle.Checkpoint
	report := func(head chronicle.Head, swapped bool) {
		el := time.Since(start)
		for _, t := range ts {
			p := Progress{Projection: t.w.name, EventsDone: t.done, Position: cp.Position, HeadPosition: head.Position, Elapsed: el, Swapped: swapped}
			if s := el.Seconds(); s > 0 {
				p.EventsPerSec = float64(t.done) / s
			}
			if p.EventsPerSec > 0 && head.Position > cp.Position {
				p.ETA = time.Duration(float64(head.Position-cp.Position) / p.EventsPerSec * float64(time.Second))
			}
			t.w.mu.Lock()
			t.w.rebuild = &p
			t.w.mu.Unlock()
			if progress != nil {
				progress(p)
			}
		}
	}
	for {
		var pg page
		select {
		case pg = <-pages:
		case <-ctx.Done():
			return ctx.Err()
		}
		if pg.err != nil {
			return fmt.Errorf("projection %s: rebuild: %w", ws[0].name, pg.err)
		}
		// Projections of a pass fold the page side by side: folding is
		// CPU work, and each has its own tables.
		if len(ts) == 1 {
			ts[0].err = ts[0].fold(ctx, r, pg, flushAt)
		} else {
			var wg sync.WaitGroup
			for _, t := range ts {
				wg.Go(func() { t.err = t.fold(ctx, r, pg, flushAt) })
			}
			wg.Wait()
		}
		for _, t := range ts {
			if t.err != nil {
				return fmt.Errorf("projection %s: rebuild: after position %d: %w", t.w.name, cp.Position, t.err)
			}
		}
		if len(pg.events) > 0 {
			cp = pg.events[len(pg.events)-1].Checkpoint()
		}
		if pg.full {
			report(pg.head, false)
			continue
		}
		// Caught up with the log as of this page: finish the tables, catch
		// up with what was written since, and swap. Later events are the
		// live runner's, from the shadow's checkpoint on.
		for _, t := range ts {
			if err := r.finish(ctx, t); err != nil {
				return err
			}
		}
		cp, head, err := r.catchUp(ctx, ts, cp)
		if err != nil {
			return err
		}
		if r.rebuildHook != nil {
			r.rebuildHook("swap")
		}
		began := time.Now()
		before := make([]int64, len(ts))
		for i, t := range ts {
			before[i] = t.done
		}
		if cp, err = r.swap(ctx, ts, cp); err != nil {
			return err
		}
		swapped = true
		// The swap's transaction holds the live projection (and on SQLite
		// appends) while it applies what the live runner applied meanwhile:
		// its length (waiting for its locks included) is the operator's to
		// see.
		for i, t := range ts {
			r.opts.Logger.Info("projection: rebuilt", "projection", t.w.name, "events", t.done,
				"elapsed", time.Since(start).Round(time.Millisecond),
				"swap", time.Since(began).Round(time.Microsecond), "events_at_swap", t.done-before[i])
		}
		report(head, true)
		for _, t := range ts {
			t.w.poke()
		}
		return nil
	}
}

// catchUp applies the events after cp to the finished tables of ts, up to
// the head of the log as it is when catchUp begins, and returns the
// checkpoint reached and that head. It does not chase the head: under
// steady appends that could go on for as long as they do, a page of a few
// events and a write at a time. The swap applies what the live runners
// have applied beyond it.
func (r *Runner) catchUp(ctx context.Context, ts []*target, cp chronicle.Checkpoint) (chronicle.Checkpoint, chronicle.Head, error) {
	head, err := r.store.Head(ctx)
	if err != nil {
		return cp, head, fmt.Errorf("projection %s: rebuild: %w", ts[0].w.name, err)
	}
	if err := r.reloadSkipped(ctx, r.db, ts); err != nil {
		return cp, head, err
	}
	for cp.Before(head.Checkpoint) {
		pg := r.readPage(ctx, ts[0].w.filter, cp)
		if pg.err != nil {
			return cp, head, fmt.Errorf("projection %s: rebuild: %w", ts[0].w.name, pg.err)
		}
		if len(pg.events) == 0 {
			// The head was taken before the read: no event up to it is
			// left, and the live runner of a filtered projection may have
			// moved its checkpoint there.
			return head.Checkpoint, head, nil
		}
		for _, t := range ts {
			if err := t.fold(ctx, r, pg, 0); err != nil {
				return cp, head, fmt.Errorf("projection %s: rebuild: after position %d: %w", t.w.name, cp.Position, err)
			}
		}
		cp = pg.events[len(pg.events)-1].Checkpoint()
		if r.rebuildHook != nil {
			r.rebuildHook("page")
		}
	}
	return cp, head, nil
}

// reloadSkipped reads again the events recorded as skipped for each of ts.
// An operator may have skipped one since the rebuild began, where the live
// runner stopped at it; the events the catch-up and the swap apply are
// those the live runner went past, so they must skip it too. (The swap
// reads them in its transaction, with the checkpoint rows locked: no skip
// can land between that read and the swap.)
func (r *Runner) reloadSkipped(ctx context.Context, q Querier, ts []*target) error {
	for _, t := range ts {
		skip, err := r.skippedSet(ctx, q, t.w.name)
		if err != nil {
			return err
		}
		t.skip = skip
	}
	return nil
}

// finish completes t's shadow tables: last write, indexes, statistics.
func (r *Runner) finish(ctx context.Context, t *target) error {
	if t.build != nil {
		err := t.write(ctx, r, t.build.Flush(true))
		if err == nil {
			err = t.wait()
		}
		if err != nil {
			return fmt.Errorf("projection %s: rebuild: write: %w", t.w.name, err)
		}
	}
	if t.ix != nil {
		if err := r.shadowTx(ctx, func(tx *Tx) error { return t.ix.CreateIndexes(ctx, tx.Tx, r.d, t.shadow) }); err != nil {
			return fmt.Errorf("projection %s: rebuild: create indexes: %w", t.w.name, err)
		}
	}
	r.analyze(ctx, t.shadow)
	t.finished = true
	return nil
}

// readAhead sends pages of upcast events from the start of the log until a
// page is short (caught up) or ctx ends.
func (r *Runner) readAhead(ctx context.Context, filter chronicle.ReadAllOptions, out chan<- page) {
	var cp chronicle.Checkpoint
	send := func(p page) bool {
		select {
		case out <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		pg := r.readPage(ctx, filter, cp)
		if !send(pg) || pg.err != nil || !pg.full {
			return
		}
		cp = pg.events[len(pg.events)-1].Checkpoint()
	}
}

// readPage reads the page of events after cp and upcasts them. An event
// whose upcast fails stays in the page, recorded in bad: whether that is an
// error depends on the projection (it may have skipped the event).
func (r *Runner) readPage(ctx context.Context, filter chronicle.ReadAllOptions, cp chronicle.Checkpoint) page {
	head, err := r.store.Head(ctx)
	if err != nil {
		return page{err: err}
	}
	opts := filter
	opts.Limit = r.opts.RebuildBatchSize
	events, err := r.store.ReadAll(ctx, cp, opts)
	if err != nil {
		return page{err: err}
	}
	pg := page{events: events, full: len(events) == opts.Limit, head: head}
	for i, e := range events {
		u, err := r.opts.Upcaster.Upcast(e)
		if err != nil {
			if pg.bad == nil {
				pg.bad = map[chronicle.Checkpoint]error{}
			}
			pg.bad[e.Checkpoint()] = fmt.Errorf("upcast %s v%d (%s): %w", e.StreamID, e.Version, e.Type, err)
			continue
		}
		events[i] = u
	}
	return pg
}

// swap puts the shadow tables of ts in place of the live ones, in one
// transaction, and returns the checkpoint they are at: cp, or further on
// when a live runner applied events after cp to the old tables meanwhile.
// Those events are applied to the shadow tables in the same transaction,
// while the checkpoint rows are locked. (Failing instead and reading on,
// as this once did, lets a rebuild lose the same race again and again for
// as long as appends go on and the live runner keeps up with them.)
func (r *Runner) swap(ctx context.Context, ts []*target, cp chronicle.Checkpoint) (chronicle.Checkpoint, error) {
	at := cp
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		at = cp
		for _, t := range ts {
			// Lock the row first: on PostgreSQL this waits for an apply in
			// flight (which holds the row) and holds off the next; on SQLite
			// the transaction holds the write lock. The live runner's next
			// compare-and-set then fails, and it reloads and goes on from
			// the checkpoint set below, on the new tables; or it finds the
			// row where it left it, which is where the new tables are too.
			if _, err := r.exec(ctx, tx, `UPDATE projection_checkpoints SET status = status WHERE name = $1`, t.w.name); err != nil {
				return err
			}
			row, err := r.readCheckpoint(ctx, tx, t.w.name)
			if err != nil {
				return err
			}
			if at.Before(row.cp) {
				at = row.cp
			}
		}
		if err := r.reloadSkipped(ctx, tx, ts); err != nil {
			return err
		}
		if cp.Before(at) {
			if err := r.applyLead(ctx, &Tx{Tx: tx}, ts, cp, at); err != nil {
				return err
			}
		}
		for _, t := range ts {
			if _, err := r.exec(ctx, tx, `UPDATE projection_checkpoints
			SET tx_id = $1, position = $2, updated_at = $3, status = 'running', error = NULL, error_stream = NULL,
			error_version = NULL, error_position = NULL, error_tx_id = NULL, error_event_id = NULL,
			error_event_type = NULL, error_attempts = NULL, error_at = NULL
			WHERE name = $4`,
				int64(at.TxID), at.Position, nanos(r.now()), t.w.name); err != nil {
				return err
			}
			for _, name := range t.w.p.Tables() {
				if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+name); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `ALTER TABLE `+t.shadow[name]+` RENAME TO `+name); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		names := make([]string, len(ts))
		for i, t := range ts {
			names[i] = t.w.name
		}
		return cp, fmt.Errorf("projection %s: rebuild: swap: %w", strings.Join(names, ", "), err)
	}
	return at, nil
}

// applyLead applies the events after cp up to and including to, which the
// live runners applied to the old tables, to the shadow tables of ts in tx.
func (r *Runner) applyLead(ctx context.Context, tx *Tx, ts []*target, cp, to chronicle.Checkpoint) error {
	for {
		pg := r.readPage(ctx, ts[0].w.filter, cp)
		if pg.err != nil {
			return pg.err
		}
		n := len(pg.events)
		end := slices.IndexFunc(pg.events, func(e chronicle.RecordedEvent) bool { return to.Before(e.Checkpoint()) })
		if end >= 0 {
			pg.events = pg.events[:end]
		}
		if len(pg.events) == 0 {
			return nil
		}
		for _, t := range ts {
			apply, err := t.events(pg)
			if err != nil {
				return fmt.Errorf("projection %s: after position %d: %w", t.w.name, cp.Position, err)
			}
			t.done += int64(len(apply))
			if len(apply) == 0 {
				continue
			}
			if err := t.w.p.Apply(ctx, tx, r.d, t.shadow, apply); err != nil {
				return fmt.Errorf("projection %s: after position %d: %w", t.w.name, cp.Position, err)
			}
		}
		cp = pg.events[len(pg.events)-1].Checkpoint()
		if end >= 0 || n < r.opts.RebuildBatchSize {
			return nil
		}
	}
}

func (r *Runner) dropTables(ctx context.Context, t Tables) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, name := range t {
		if _, err := r.db.ExecContext(ctx, `DROP TABLE IF EXISTS `+name); err != nil {
			r.opts.Logger.Warn("projection: drop shadow table", "table", name, "err", err)
		}
	}
}

// analyze gathers planner statistics on freshly filled tables, so that the
// first queries after the swap are planned from real figures (PostgreSQL;
// autovacuum would get there later). A failure only costs plan quality.
func (r *Runner) analyze(ctx context.Context, t Tables) {
	if r.d != Postgres {
		return
	}
	for _, name := range t {
		if _, err := r.db.ExecContext(ctx, `ANALYZE `+name); err != nil {
			r.opts.Logger.Warn("projection: analyze shadow table", "table", name, "err", err)
		}
	}
}

// inTx runs f in a transaction and commits it when f returns nil.
func (r *Runner) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// shadowTx runs f in a transaction that writes only shadow tables, on a
// connection of its own (for COPY), and commits it when f returns nil.
//
// On PostgreSQL its commit does not wait for the WAL flush. That loses
// nothing: the swap commits synchronously, which flushes all the WAL
// written before it, so the shadow tables are durable before they go live,
// and a crash before the swap leaves only shadow tables that nobody reads.
func (r *Runner) shadowTx(ctx context.Context, f func(tx *Tx) error) error {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	sqlTx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if r.d == Postgres {
		if _, err := sqlTx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			sqlTx.Rollback()
			return err
		}
	}
	if err := f(&Tx{Tx: sqlTx, conn: conn}); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// waitQuerier is a Querier whose reads first wait for a rebuild's write in
// flight (and fail with its error).
type waitQuerier struct {
	q    Querier
	wait func() error
}

func (w waitQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := w.wait(); err != nil {
		return nil, err
	}
	return w.q.QueryContext(ctx, query, args...)
}
