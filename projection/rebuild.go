package projection

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
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
	events []chronicle.RecordedEvent
	full   bool
	head   chronicle.Head
	err    error
}

// Rebuild builds projection name again from the start of the log into
// shadow tables while the current ones keep serving (and the live runner
// keeps following), then swaps them in: in one transaction it drops the old
// tables, renames the shadow ones into place and sets the checkpoint to the
// shadow's, so queries see either the old read model or the new one. Events
// recorded as skipped are skipped again. progress, when not nil, is called
// after each batch and once after the swap.
//
// Cancelling ctx abandons the rebuild (the shadow tables are dropped; the
// live read model is untouched). Errors: ErrUnknown; the projection's error
// at an event it cannot apply.
func (r *Runner) Rebuild(ctx context.Context, name string, progress func(Progress)) (err error) {
	w, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	if err := r.Setup(ctx); err != nil {
		return err
	}
	gen := "_rb" + strconv.FormatInt(time.Now().UnixNano(), 36)
	shadow := Tables{}
	for _, t := range w.p.Tables() {
		shadow[t] = t + gen
	}
	if err := r.inTx(ctx, func(tx *sql.Tx) error {
		return w.p.Create(ctx, tx, r.d, shadow)
	}); err != nil {
		return fmt.Errorf("projection %s: rebuild: create shadow tables: %w", name, err)
	}
	swapped := false
	defer func() {
		w.mu.Lock()
		w.rebuild = nil
		w.mu.Unlock()
		if !swapped {
			r.dropTables(context.WithoutCancel(ctx), shadow)
		}
	}()
	skip, err := r.skippedSet(ctx, r.db, name)
	if err != nil {
		return err
	}

	// Read ahead while the previous page is applied: reading and writing
	// overlap, which is most of a rebuild's speed.
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	pages := make(chan page, 2)
	go r.readAhead(rctx, w, pages)

	start := time.Now()
	var (
		cp   chronicle.Checkpoint
		done int64
	)
	report := func(head chronicle.Head, swapped bool) {
		el := time.Since(start)
		p := Progress{Projection: name, EventsDone: done, Position: cp.Position, HeadPosition: head.Position, Elapsed: el, Swapped: swapped}
		if s := el.Seconds(); s > 0 {
			p.EventsPerSec = float64(done) / s
		}
		if p.EventsPerSec > 0 && head.Position > cp.Position {
			p.ETA = time.Duration(float64(head.Position-cp.Position) / p.EventsPerSec * float64(time.Second))
		}
		w.mu.Lock()
		w.rebuild = &p
		w.mu.Unlock()
		if progress != nil {
			progress(p)
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
			return fmt.Errorf("projection %s: rebuild: %w", name, pg.err)
		}
		apply := pg.events[:0:0]
		for _, e := range pg.events {
			if !skip[e.Checkpoint()] {
				apply = append(apply, e)
			}
		}
		if len(pg.events) > 0 {
			if err := r.inTx(ctx, func(tx *sql.Tx) error {
				if len(apply) == 0 {
					return nil
				}
				return w.p.Apply(ctx, tx, r.d, shadow, apply)
			}); err != nil {
				return fmt.Errorf("projection %s: rebuild: after position %d: %w", name, cp.Position, err)
			}
			cp = pg.events[len(pg.events)-1].Checkpoint()
			done += int64(len(apply))
		}
		if pg.full {
			report(pg.head, false)
			continue
		}
		// Caught up with the log as of this page: swap. Later events are
		// the live runner's, from the shadow's checkpoint on.
		if err := r.swap(ctx, w, shadow, cp); err != nil {
			return err
		}
		swapped = true
		report(pg.head, true)
		w.poke()
		return nil
	}
}

// readAhead sends pages of upcast events from the start of the log until a
// page is short (caught up) or ctx ends.
func (r *Runner) readAhead(ctx context.Context, w *worker, out chan<- page) {
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
		head, err := r.store.Head(ctx)
		if err != nil {
			send(page{err: err})
			return
		}
		opts := w.filter
		opts.Limit = r.opts.BatchSize
		events, err := r.store.ReadAll(ctx, cp, opts)
		if err != nil {
			send(page{err: err})
			return
		}
		up, _, err := r.upcastAll(events)
		if err != nil {
			send(page{err: err})
			return
		}
		full := len(events) == opts.Limit
		if !send(page{events: up, full: full, head: head}) || !full {
			return
		}
		cp = events[len(events)-1].Checkpoint()
	}
}

// swap puts the shadow tables in place of the live ones and the checkpoint
// at cp, in one transaction.
func (r *Runner) swap(ctx context.Context, w *worker, shadow Tables, cp chronicle.Checkpoint) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		// The checkpoint row first: on PostgreSQL this waits for an apply in
		// flight (which holds the row) and makes the live runner's next
		// compare-and-set fail, so it reloads and continues from cp on the
		// new tables.
		if _, err := r.exec(ctx, tx, `UPDATE projection_checkpoints
		SET tx_id = $1, position = $2, updated_at = $3, status = 'running', error = NULL, error_stream = NULL,
		error_version = NULL, error_position = NULL, error_tx_id = NULL, error_event_id = NULL,
		error_event_type = NULL, error_attempts = NULL, error_at = NULL WHERE name = $4`,
			int64(cp.TxID), cp.Position, nanos(r.now()), w.name); err != nil {
			return err
		}
		for _, t := range w.p.Tables() {
			if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `ALTER TABLE `+shadow[t]+` RENAME TO `+t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("projection %s: rebuild: swap: %w", w.name, err)
	}
	return nil
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
