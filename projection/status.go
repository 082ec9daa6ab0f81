package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-es/chronicle"
)

// Status is a projection's progress, as GET /projections shows it.
type Status struct {
	Name         string `json:"name"`
	Position     int64  `json:"position"`
	TxID         uint64 `json:"tx_id"`
	HeadPosition int64  `json:"head_position"`
	// LagEvents is the distance in positions from the checkpoint to the
	// head: exact on SQLite, an estimate on PostgreSQL, where positions can
	// have gaps and commit out of order.
	LagEvents int64 `json:"lag_events"`
	// LagSeconds is how long ago the oldest event not yet applied was
	// recorded; 0 when caught up.
	LagSeconds float64 `json:"lag_seconds"`
	// Status is "running", "retrying" (an event is failing, attempts left)
	// or "failed" (stopped at Failure until Retry or Skip).
	Status string `json:"status"`
	// Held is true when this process runs the projection (holds its lease).
	Held      bool      `json:"held"`
	Failure   *Failure  `json:"failure,omitempty"`
	Rebuild   *Progress `json:"rebuild,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Status returns the status of every projection, in the order given to New,
// then of every sink: those of Options.Sinks, then the watched ones that
// have a checkpoint.
// It reads the checkpoint table, so it is right whichever process runs a
// projection.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	head, err := r.store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("projection: status: %w", err)
	}
	out := make([]Status, 0, len(r.workers)+len(r.sinks)+len(r.opts.Watch))
	for _, w := range append(r.workers[:len(r.workers):len(r.workers)], r.sinks...) {
		row, err := r.readCheckpoint(ctx, r.db, w.name)
		if err != nil {
			return nil, err
		}
		s, err := r.status(ctx, head, w.name, w.filter, row)
		if err != nil {
			return nil, err
		}
		w.mu.Lock()
		s.Held = w.held
		if w.rebuild != nil {
			p := *w.rebuild
			s.Rebuild = &p
		}
		if w.retrying != nil && s.Status == StatusRunning {
			f := *w.retrying
			s.Status, s.Failure = "retrying", &f
		}
		w.mu.Unlock()
		out = append(out, s)
	}
	for _, name := range r.opts.Watch {
		if _, ours := r.byName[name]; ours {
			continue
		}
		row, err := r.readCheckpoint(ctx, r.db, name)
		if errors.Is(err, chronicle.ErrNotFound) {
			continue // it never ran on this store
		}
		if err != nil {
			return nil, err
		}
		// Watched sinks read every event (the relay does).
		s, err := r.status(ctx, head, name, chronicle.ReadAllOptions{}, row)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// status is the status of name, whose checkpoint row is row and which reads
// the events filter selects, against head.
func (r *Runner) status(ctx context.Context, head chronicle.Head, name string, filter chronicle.ReadAllOptions, row cpRow) (Status, error) {
	s := Status{
		Name: name, Position: row.cp.Position, TxID: row.cp.TxID, HeadPosition: head.Position,
		Status: row.status, Failure: row.failure, UpdatedAt: row.updatedAt,
	}
	// Committed events that no reader can see yet (an older write
	// transaction is still open) are lag too, though no checkpoint can
	// pass them until it ends.
	if head.Committed > max(head.Position, row.cp.Position) {
		s.HeadPosition = head.Committed
		s.LagEvents = head.Committed - max(head.Position, row.cp.Position)
		s.LagSeconds = max(r.now().Sub(head.HeldSince).Seconds(), 0)
	}
	if row.cp.Before(head.Checkpoint) {
		s.LagEvents += max(head.Position-row.cp.Position, 1)
		opts := filter
		opts.Limit = 1
		next, err := r.store.ReadAll(ctx, row.cp, opts)
		if err != nil {
			return Status{}, fmt.Errorf("projection %s: status: %w", name, err)
		}
		if len(next) == 1 {
			s.LagSeconds = max(s.LagSeconds, r.now().Sub(next[0].RecordedAt).Seconds())
		} else {
			s.LagEvents -= max(head.Position-row.cp.Position, 1) // nothing this projection wants is readable
		}
	}
	return s, nil
}

// Names returns the projections' names, in the order given to New.
func (r *Runner) Names() []string {
	out := make([]string, len(r.workers))
	for i, w := range r.workers {
		out[i] = w.name
	}
	return out
}

// Checkpoint returns where projection name stands: the checkpoint this
// process last committed when it runs the projection, else the stored one.
// Errors: ErrUnknown.
func (r *Runner) Checkpoint(ctx context.Context, name string) (chronicle.Checkpoint, error) {
	w, ok := r.byName[name]
	if !ok {
		return chronicle.Checkpoint{}, fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	w.mu.Lock()
	held, cp := w.held, w.cp
	w.mu.Unlock()
	if held {
		return cp, nil
	}
	row, err := r.readCheckpoint(ctx, r.db, name)
	return row.cp, err
}

// remotePoll is how often a waiter re-reads a checkpoint that another
// process advances (this process gets no signal for it).
const remotePoll = 50 * time.Millisecond

// WaitFor returns when projection name has applied the log up to and
// including the event at checkpoint at (or skipped past it). Cancelling ctx
// abandons the wait and returns ctx's error. Errors: ErrUnknown.
func (r *Runner) WaitFor(ctx context.Context, name string, at chronicle.Checkpoint) error {
	w, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	for {
		// Take the signal before reading, so an advance in between wakes us.
		w.mu.Lock()
		ch, held, cp := w.progress, w.held, w.cp
		w.mu.Unlock()
		if !held {
			row, err := r.readCheckpoint(ctx, r.db, name)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			cp = row.cp
		}
		if !cp.Before(at) {
			return nil
		}
		var poll <-chan time.Time
		var t *time.Timer
		if !held {
			t = time.NewTimer(remotePoll)
			poll = t.C
		}
		select {
		case <-ch:
		case <-poll:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// WaitForStream returns when projection name has applied stream up to
// version (waiting for that version to be written, if need be). Cancelling
// ctx abandons the wait and returns ctx's error. Errors: ErrUnknown.
//
// While this process runs the projection, a waiter reads the stream once
// and is then woken only by the projection applying an event of that
// stream: many waiters cost nothing while other streams are written.
// Otherwise it looks again at each notification of a commit. stream must
// be one the projection reads (its Filter): a version not yet written of
// another stream is waited for until ctx ends.
func (r *Runner) WaitForStream(ctx context.Context, name, stream string, version int64) error {
	w, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	if version <= 0 {
		return nil
	}
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var notify <-chan struct{}
	for {
		// Register before looking, so an apply in between wakes us.
		w.mu.Lock()
		held, changed := w.held, w.recheck
		var sw *streamWaiter
		if held {
			sw = &streamWaiter{version: version, done: make(chan struct{})}
			w.waiters[stream] = append(w.waiters[stream], sw)
		}
		w.mu.Unlock()
		evs, err := r.store.ReadStream(ctx, stream, chronicle.ReadStreamOptions{From: version, To: version, Limit: 1})
		if err != nil && !errors.Is(err, chronicle.ErrStreamNotFound) {
			if sw != nil {
				w.unwait(stream, sw)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("projection %s: wait for %s v%d: %w", name, stream, version, err)
		}
		if len(evs) == 1 {
			if sw != nil {
				w.unwait(stream, sw)
			}
			return r.WaitFor(ctx, name, evs[0].Checkpoint())
		}
		if held {
			select {
			case <-sw.done:
				return nil
			case <-changed:
				w.unwait(stream, sw)
			case <-ctx.Done():
				w.unwait(stream, sw)
				return ctx.Err()
			}
			continue
		}
		if notify == nil {
			// Subscribe, then look again, so a write in between is not missed.
			notify = r.store.Notify(nctx)
			continue
		}
		select {
		case <-notify:
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
