package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"time"
)

// gate hands SQLite's one write lock from writer to writer inside this
// process: the write loop's batches and the read models' transactions on
// SQLDB. Left to SQLite, a writer that finds the lock taken polls for it
// with sleeps of 1, 2, 5, ... 100 ms (busy_timeout): under 32 HTTP clients
// the write loop spent a third of its time waiting so, and each projection
// commit about 50 ms. Waiting on a channel instead, the next writer starts
// as soon as the lock is free. Other processes still meet busy_timeout.
type gate chan struct{}

func newGate() gate { return make(gate, 1) }

// enter waits until the gate is free, then holds it. After wait it gives up
// and reports false: the caller goes on without the gate and meets SQLite's
// own busy handling, as it would without a gate (a stuck transaction then
// fails writers after busy_timeout instead of blocking them for ever).
func (g gate) enter(ctx context.Context, wait time.Duration) (bool, error) {
	select {
	case g <- struct{}{}:
		return true, nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case g <- struct{}{}:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (g gate) leave() { <-g }

// openGated opens a pool on dsn whose transactions hold g from BEGIN to
// COMMIT or ROLLBACK. Statements outside a transaction do not take it.
func openGated(dsn string, g gate, wait time.Duration) (*sql.DB, error) {
	probe, err := sql.Open(driverName, dsn) // connects to nothing; only finds the driver
	if err != nil {
		return nil, err
	}
	drv := probe.Driver()
	probe.Close()
	return sql.OpenDB(&gatedConnector{dsn: dsn, drv: drv, g: g, wait: wait}), nil
}

type gatedConnector struct {
	dsn  string
	drv  driver.Driver
	g    gate
	wait time.Duration
}

func (c *gatedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dc, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: dc, c: c}, nil
}

func (c *gatedConnector) Driver() driver.Driver { return c.drv }

// gatedConn is the driver's connection with its transactions gated. It
// passes every optional interface database/sql uses on to the driver's
// connection, or answers as database/sql does when that one lacks it.
type gatedConn struct {
	driver.Conn
	c *gatedConnector
}

var (
	_ driver.Connector          = (*gatedConnector)(nil)
	_ driver.ConnBeginTx        = (*gatedConn)(nil)
	_ driver.ConnPrepareContext = (*gatedConn)(nil)
	_ driver.ExecerContext      = (*gatedConn)(nil)
	_ driver.QueryerContext     = (*gatedConn)(nil)
	_ driver.SessionResetter    = (*gatedConn)(nil)
	_ driver.Validator          = (*gatedConn)(nil)
	_ driver.Pinger             = (*gatedConn)(nil)
	_ driver.NamedValueChecker  = (*gatedConn)(nil)
)

func (gc *gatedConn) Begin() (driver.Tx, error) {
	return gc.BeginTx(context.Background(), driver.TxOptions{})
}

func (gc *gatedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly {
		return gc.beginRead(ctx)
	}
	held, err := gc.c.g.enter(ctx, gc.c.wait)
	if err != nil {
		return nil, err
	}
	var tx driver.Tx
	if b, ok := gc.Conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = gc.Conn.Begin() //nolint:staticcheck // the driver has nothing newer
	}
	if err != nil {
		if held {
			gc.c.g.leave()
		}
		return nil, err
	}
	return &gatedTx{Tx: tx, g: gc.c.g, held: held}, nil
}

// beginRead begins a read transaction: BEGIN DEFERRED whatever the pool's
// _txlock says (the drivers would begin IMMEDIATE), and without the gate.
// It takes no write lock, so no writer of this or another process waits
// for it, and in WAL mode it reads one snapshot from its first read on.
func (gc *gatedConn) beginRead(ctx context.Context) (driver.Tx, error) {
	if _, err := gc.ExecContext(ctx, "BEGIN DEFERRED", nil); err != nil {
		return nil, err
	}
	return readTx{gc}, nil
}

// readTx ends a transaction begun by beginRead. Ending a read transaction
// does not wait for a lock, so it needs no context.
type readTx struct{ gc *gatedConn }

func (t readTx) Commit() error   { return t.end("COMMIT") }
func (t readTx) Rollback() error { return t.end("ROLLBACK") }

func (t readTx) end(stmt string) error {
	_, err := t.gc.ExecContext(context.Background(), stmt, nil)
	return err
}

func (gc *gatedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := gc.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return gc.Conn.Prepare(query)
}

func (gc *gatedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := gc.Conn.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (gc *gatedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := gc.Conn.(driver.QueryerContext); ok {
		return q.QueryContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (gc *gatedConn) ResetSession(ctx context.Context) error {
	if r, ok := gc.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (gc *gatedConn) IsValid() bool {
	if v, ok := gc.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (gc *gatedConn) Ping(ctx context.Context) error {
	if p, ok := gc.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (gc *gatedConn) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := gc.Conn.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// gatedTx leaves the gate when the transaction ends, whatever the outcome.
type gatedTx struct {
	driver.Tx
	g    gate
	held bool
}

func (t *gatedTx) Commit() error {
	defer t.done()
	return t.Tx.Commit()
}

func (t *gatedTx) Rollback() error {
	defer t.done()
	return t.Tx.Rollback()
}

func (t *gatedTx) done() {
	if t.held {
		t.held = false
		t.g.leave()
	}
}
