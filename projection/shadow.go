package projection

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"strings"
	"time"
)

// A rebuild's shadow tables are named table + shadowInfix + a generation
// in base 36. A process killed during a rebuild leaves them behind; Setup
// and every rebuild drop such leftovers, unless a rebuild may be running
// now: each rebuild holds the store's rebuild lock, shared, while its
// shadow tables exist, and the cleanup runs only when it gets that lock
// exclusively. On PostgreSQL the lock is the session advisory lock
// LockKey(schema, "\x00rebuild"); on SQLite an flock of the file named as
// the database plus "-rebuild.lock". Either is released when its process
// dies.
const shadowInfix = "_rb"

// isShadowOf reports whether name is a shadow table of table.
func isShadowOf(name, table string) bool {
	gen, ok := strings.CutPrefix(name, table+shadowInfix)
	if !ok || gen == "" {
		return false
	}
	for _, c := range gen {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// rebuildLockName is the PostgreSQL lock key's name (see lockKey).
const rebuildLockName = "\x00rebuild"

// lockRebuilds takes the rebuild lock shared, waiting for a cleanup to
// finish, and returns its release.
func (r *Runner) lockRebuilds(ctx context.Context) (release func(), err error) {
	if r.d == Postgres {
		conn, err := r.db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("projection: rebuild lock: %w", err)
		}
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock_shared($1)`, lockKey(r.schema, rebuildLockName)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("projection: rebuild lock: %w", err)
		}
		return func() { r.unlockShared(conn) }, nil
	}
	f, err := r.rebuildLockFile(ctx)
	if err != nil || f == nil {
		return func() {}, err
	}
	if err := flock(f, false, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("projection: rebuild lock: %w", err)
	}
	return func() { f.Close() }, nil // closing releases the flock
}

// unlockShared releases the shared lock of conn, discarding the connection
// when that fails (the lock belongs to the session; see unlock).
func (r *Runner) unlockShared(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock_shared($1)`, lockKey(r.schema, rebuildLockName)).Scan(&ok); err != nil || !ok {
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	conn.Close()
}

// rebuildLockFile opens the SQLite rebuild lock file; nil for a database
// in memory, which no other process sees and no crash leaves behind.
func (r *Runner) rebuildLockFile(ctx context.Context) (*os.File, error) {
	f, err := r.lockFile(ctx, "-rebuild.lock")
	if err != nil {
		return nil, fmt.Errorf("projection: rebuild lock: %w", err)
	}
	return f, nil
}

// lockFile opens the file beside the SQLite database whose name ends in
// suffix, for flock; nil for a database in memory.
func (r *Runner) lockFile(ctx context.Context, suffix string) (*os.File, error) {
	var file string
	if err := r.db.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file); err != nil {
		return nil, err
	}
	if file == "" {
		return nil, nil
	}
	// Read-only is enough to lock, and lets any user who can read the
	// database take it.
	return os.OpenFile(file+suffix, os.O_RDONLY|os.O_CREATE, 0o644)
}

// dropLeftovers drops the shadow tables of this runner's projections that
// no running rebuild owns: those of rebuilds killed before their swap or
// cleanup. When a rebuild runs anywhere it does nothing (a later call will).
// Failures are logged: leftovers cost only space.
func (r *Runner) dropLeftovers(ctx context.Context) {
	if err := r.dropLeftoversErr(ctx); err != nil {
		r.opts.Logger.Warn("projection: drop leftover shadow tables", "err", err)
	}
}

func (r *Runner) dropLeftoversErr(ctx context.Context) error {
	if r.d == SQLite {
		f, err := r.rebuildLockFile(ctx)
		if err != nil || f == nil {
			return err
		}
		defer f.Close()
		if err := flock(f, true, false); err != nil {
			return nil // a rebuild is running (or locks are unsupported)
		}
	}
	return r.inTx(ctx, func(tx *sql.Tx) error {
		q := `SELECT name FROM sqlite_master WHERE type = 'table'`
		if r.d == Postgres {
			var ok bool
			if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, lockKey(r.schema, rebuildLockName)).Scan(&ok); err != nil || !ok {
				return err // !ok: a rebuild is running
			}
			q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
		}
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		var drop []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return err
			}
			for _, w := range r.workers {
				for _, table := range w.p.Tables() {
					if isShadowOf(name, table) {
						drop = append(drop, name)
					}
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, name := range drop {
			if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+name); err != nil {
				return err
			}
			r.opts.Logger.Info("projection: dropped a shadow table left by an interrupted rebuild", "table", name)
		}
		return nil
	})
}
