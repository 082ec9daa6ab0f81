package projection

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"hash/fnv"
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

// lease runs w whenever this process holds its lease, until ctx ends.
//
// On PostgreSQL the lease is a session advisory lock on a connection pinned
// for as long as it is held: when the process dies, its connection closes
// and the server releases the lock, and a standby, which tries every
// LeaseInterval, takes over. The holder checks its connection on the same
// beat and stops when the connection is gone (its lock is then gone too).
// The checkpoint compare-and-set fences any overlap in between.
//
// SQLite is one process: the runner itself is the guard, and the CAS fences
// a second runner on the same file.
func (r *Runner) lease(ctx context.Context, w *worker) {
	for ctx.Err() == nil {
		if r.d != Postgres {
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

func (r *Runner) hold(ctx context.Context, w *worker) {
	w.mu.Lock()
	w.held = true
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.held = false
		w.mu.Unlock()
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
			if _, err := conn.ExecContext(ctx, `SELECT 1`); err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("projection: lease connection lost", "err", err)
				cancel()
				return
			}
		}
	}
}

// unlock releases the lease. The lock belongs to the session, so a
// connection going back to the pool must not keep it: when unlocking fails
// the connection is discarded instead.
func (r *Runner) unlock(conn *sql.Conn, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, lockKey(r.schema, name)).Scan(&ok); err != nil || !ok {
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	conn.Close()
	r.opts.Logger.Info("projection: lease released", "projection", name)
}
