package projection

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"hash/fnv"
	"strconv"
	"time"
)

// lockKey is the advisory-lock key of a projection: a hash of the schema and
// the name, so that stores in different schemas of one database do not
// exclude each other.
func lockKey(schema, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("chronicle/projection\x00"))
	h.Write([]byte(schema))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// LockKey returns the PostgreSQL advisory-lock key that leases projection
// name in schema (for operators looking at pg_locks, and for tests).
func LockKey(schema, name string) int64 { return lockKey(schema, name) }

// leaseTimeout is how long the server lets a lease holder's session sit
// idle (between its checks, or inside an apply transaction) before it ends
// the session, which releases the lease: three missed checks.
func (r *Runner) leaseTimeout() time.Duration { return 3 * r.opts.LeaseInterval }

// lease runs w whenever this process holds its lease, until ctx ends.
//
// On PostgreSQL the lease is a session advisory lock on a connection pinned
// for as long as it is held. A holder that dies loses its connection and
// with it the lock. One that is frozen (SIGSTOP, a VM paused) or cut off
// keeps its connection open, and TCP alone would take minutes or hours to
// notice: so the server is told to end the lease session when it has been
// idle for leaseTimeout (idle_session_timeout), and each apply transaction
// when it has been idle that long inside (idle_in_transaction_session_timeout;
// an open transaction would also hold back every reader of the log). The
// holder checks its connection every LeaseInterval, so it is never idle that
// long while it runs; a standby tries every LeaseInterval, and so takes over
// within about 4 x LeaseInterval of a holder freezing. A holder whose check
// fails, or takes longer than LeaseInterval, stops. The checkpoint
// compare-and-set fences any overlap in between: a holder that wakes up
// and commits before its next check is fenced off.
//
// SQLite is one process: the runner itself is the guard, and the CAS fences
// a second runner on the same file. A sink is the exception (see
// sqliteSinkLease).
func (r *Runner) lease(ctx context.Context, w *worker) {
	for ctx.Err() == nil {
		if r.d != Postgres {
			if w.sink != nil {
				r.sqliteSinkLease(ctx, w)
				return
			}
			r.hold(ctx, w)
			return
		}
		conn, ok := r.tryLock(ctx, w.name)
		if ok {
			held, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				r.hold(held, w)
			}()
			r.watch(held, cancel, conn)
			cancel()
			<-done
			r.unlock(conn, w.name)
		}
		if !wait(ctx, r.opts.LeaseInterval) {
			return
		}
	}
}

// sqliteSinkLease runs a sink on SQLite while this process holds an
// exclusive flock on a file beside the database (the file name plus
// "-NAME.lock"). A sink may run in another process than the store's serve
// (chronicle relay), and two of them would both publish: the checkpoint's
// CAS keeps the log's side right, not the broker's. The kernel drops the
// lock when its holder dies, so a standby takes over within LeaseInterval.
// Where flock is not available (not Unix) the sink just runs.
func (r *Runner) sqliteSinkLease(ctx context.Context, w *worker) {
	for ctx.Err() == nil {
		f, err := r.lockFile(ctx, "-"+w.name+".lock")
		if err == nil && f == nil {
			r.hold(ctx, w) // in memory: no other process sees it
			return
		}
		if err == nil {
			err = flock(f, true, false)
			if errors.Is(err, errors.ErrUnsupported) {
				err = nil
			}
			if err == nil {
				r.hold(ctx, w)
				f.Close() // releases the lock
				return
			}
			f.Close()
		}
		if !lockedElsewhere(err) {
			r.opts.Logger.Warn("projection: sink lease", "sink", w.name, "err", err)
		}
		if !wait(ctx, r.opts.LeaseInterval) {
			return
		}
	}
}

func (r *Runner) hold(ctx context.Context, w *worker) {
	w.setHeld(true)
	if h := r.opts.Hooks.Lease; h != nil {
		h(w.name, true)
	}
	defer func() {
		w.setHeld(false)
		if h := r.opts.Hooks.Lease; h != nil {
			h(w.name, false)
		}
	}()
	r.follow(ctx, w)
}

func (r *Runner) tryLock(ctx context.Context, name string) (*sql.Conn, bool) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, false
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey(r.schema, name)).Scan(&ok); err != nil || !ok {
		conn.Close()
		return nil, false
	}
	// The session now differs from the pool's others: unlock discards it.
	if _, err := conn.ExecContext(ctx, `SELECT set_config('idle_session_timeout', $1, false)`,
		strconv.FormatInt(r.leaseTimeout().Milliseconds(), 10)); err != nil {
		// PostgreSQL before 14: a frozen holder is then noticed only when
		// TCP gives up on its connection.
		r.opts.Logger.Warn("projection: cannot bound the lease session (idle_session_timeout needs PostgreSQL 14)",
			"projection", name, "err", err)
	}
	r.opts.Logger.Info("projection: lease taken", "projection", name)
	return conn, true
}

// watch returns when ctx ends or the lease connection fails, cancelling the
// holder in the latter case.
func (r *Runner) watch(ctx context.Context, cancel context.CancelFunc, conn *sql.Conn) {
	t := time.NewTicker(r.opts.LeaseInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Bounded: over a connection cut off, the check would otherwise
			// wait for TCP to give up.
			pctx, pcancel := context.WithTimeout(ctx, r.opts.LeaseInterval)
			_, err := conn.ExecContext(pctx, `SELECT 1`)
			pcancel()
			if err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("projection: lease connection lost", "err", err)
				cancel()
				return
			}
		}
	}
}

// unlock releases the lease and discards its connection: the session
// carries the lease's settings, and a lock left on it must not go back to
// the pool.
func (r *Runner) unlock(conn *sql.Conn, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, lockKey(r.schema, name))
	conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
	r.opts.Logger.Info("projection: lease released", "projection", name)
}
