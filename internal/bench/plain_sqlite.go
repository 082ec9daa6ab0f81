package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// The seed's table rendered for SQLite: data as TEXT, timestamps as text.
const plainSQLiteSchema = `
CREATE TABLE order_events (
	id TEXT PRIMARY KEY,
	order_id TEXT NOT NULL,
	event_type TEXT NOT NULL,
	version INTEGER NOT NULL,
	data TEXT NOT NULL,
	metadata TEXT,
	created_at TEXT DEFAULT CURRENT_TIMESTAMP,
	UNIQUE(order_id, version)
);
CREATE INDEX order_events_order_id ON order_events (order_id);`

const plainSQLiteInsert = `INSERT INTO order_events (id, order_id, event_type, version, data, metadata) VALUES `

// sqlitePlain is the table in a file of its own, through chronicle's
// SQLite driver, WAL, at the run's synchronous level.
//
// SQLite takes one writer at a time. Written the plain Go way, the writes
// go through a pool of one connection: database/sql queues the clients on
// it instead of letting them spin on SQLITE_BUSY, and each single-row
// INSERT is its own autocommit transaction, durable when it returns (at
// synchronous=FULL). Reads use a pool of their own, which WAL lets run
// beside the writer. No group commit: that is chronicle's.
//
// Statements are prepared once per connection, as pgx's statement cache
// does for the PostgreSQL table.
type sqlitePlain struct {
	w, r *sql.DB // the writer (one connection), the readers
	// On w.
	createStmt, addStmt, batchStmt *sql.Stmt
	// On r.
	versionStmt, streamStmt, pageStmt *sql.Stmt
}

var _ plainTable = (*sqlitePlain)(nil)

// openSQLitePlain opens the file at path in WAL mode, with readers read
// connections at most; create creates the file and the table first.
func openSQLitePlain(ctx context.Context, path, synchronous string, readers int, create bool) (_ *sqlitePlain, err error) {
	dsn, err := sqlitestore.DSN(path, synchronous, 0)
	if err != nil {
		return nil, err
	}
	t := &sqlitePlain{}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.w, err = sql.Open(sqlitestore.DriverName, dsn); err != nil {
		return nil, err
	}
	t.w.SetMaxOpenConns(1)
	t.w.SetMaxIdleConns(1)
	var mode string
	if err := t.w.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return nil, fmt.Errorf("plain table: set WAL mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("plain table: set WAL mode: journal mode is %q", mode)
	}
	if t.r, err = sql.Open(sqlitestore.DriverName, dsn); err != nil {
		return nil, err
	}
	t.r.SetMaxOpenConns(readers)
	t.r.SetMaxIdleConns(readers)
	if create {
		if _, err := t.w.ExecContext(ctx, plainSQLiteSchema); err != nil {
			return nil, fmt.Errorf("create the plain table: %w", err)
		}
	}
	if err := t.prepare(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *sqlitePlain) prepare(ctx context.Context) error {
	rows := make([]string, plainBatch)
	for i := range rows {
		rows[i] = "(?, ?, 'ItemAdded', ?, ?, ?)"
	}
	for _, s := range []struct {
		db  *sql.DB
		to  **sql.Stmt
		sql string
	}{
		{t.w, &t.createStmt, plainSQLiteInsert + `(?, ?, 'OrderCreated', 1, ?, ?)`},
		{t.w, &t.addStmt, plainSQLiteInsert + `(?, ?, ?, ?, ?, ?)`},
		{t.w, &t.batchStmt, plainSQLiteInsert + strings.Join(rows, ", ")},
		{t.r, &t.versionStmt, `SELECT coalesce(max(version), 0) FROM order_events WHERE order_id = ?`},
		{t.r, &t.streamStmt, `SELECT id, order_id, event_type, version, data, metadata, created_at
FROM order_events WHERE order_id = ? ORDER BY version`},
		// Keyset paging by rowid: physical order, the counterpart of
		// PostgreSQL's ctid, with no global order either.
		{t.r, &t.pageStmt, `SELECT rowid, id, order_id, event_type, version, data, metadata, created_at
FROM order_events WHERE rowid > ? ORDER BY rowid LIMIT 1000`},
	} {
		var err error
		if *s.to, err = s.db.PrepareContext(ctx, s.sql); err != nil {
			return err
		}
	}
	return nil
}

func (t *sqlitePlain) create(ctx context.Context, stream string) error {
	_, err := t.createStmt.ExecContext(ctx, chronicle.NewEventID(), stream, Payload, Metadata)
	return err
}

func (t *sqlitePlain) command(ctx context.Context, stream string) error {
	var v int64
	if err := t.versionStmt.QueryRowContext(ctx, stream).Scan(&v); err != nil {
		return err
	}
	_, err := t.addStmt.ExecContext(ctx, chronicle.NewEventID(), stream, "ItemAdded", v+1, Payload, Metadata)
	if sqlitestore.IsConstraintViolation(err) {
		return fmt.Errorf("%w: %w", errPlainConflict, err)
	}
	return err
}

func (t *sqlitePlain) batch(ctx context.Context, stream string) error {
	// Every event's payload is a parameter, as chronicle gets it.
	args := make([]any, 0, 5*plainBatch)
	for v := 1; v <= plainBatch; v++ {
		args = append(args, chronicle.NewEventID(), stream, v, Payload, Metadata)
	}
	_, err := t.batchStmt.ExecContext(ctx, args...)
	return err
}

func (t *sqlitePlain) createEach(ctx context.Context, streams []string) error {
	return t.insertEach(ctx, streams, "OrderCreated", 1)
}

func (t *sqlitePlain) addEach(ctx context.Context, streams []string, version int) error {
	return t.insertEach(ctx, streams, "ItemAdded", version)
}

// insertEach inserts one event of every stream in one transaction, a
// statement per row.
func (t *sqlitePlain) insertEach(ctx context.Context, streams []string, typ string, version int) error {
	tx, err := t.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt := tx.StmtContext(ctx, t.addStmt)
	for _, s := range streams {
		if _, err := stmt.ExecContext(ctx, chronicle.NewEventID(), s, typ, version, Payload, Metadata); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (t *sqlitePlain) readStream(ctx context.Context, stream string) (int, error) {
	rows, err := t.streamStmt.QueryContext(ctx, stream)
	if err != nil {
		return 0, err
	}
	return scanSQLitePlain(rows, nil)
}

func (t *sqlitePlain) readPage(ctx context.Context, cursor string) (string, int, error) {
	var after int64
	if cursor != "" {
		var err error
		if after, err = strconv.ParseInt(cursor, 10, 64); err != nil {
			return cursor, 0, fmt.Errorf("plain cursor %q: %w", cursor, err)
		}
	}
	rows, err := t.pageStmt.QueryContext(ctx, after)
	if err != nil {
		return cursor, 0, err
	}
	n, err := scanSQLitePlain(rows, &after)
	if n > 0 {
		cursor = strconv.FormatInt(after, 10)
	}
	return cursor, n, err
}

func (t *sqlitePlain) checkpoint(ctx context.Context) error {
	_, err := t.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

func (t *sqlitePlain) close() {
	for _, s := range []*sql.Stmt{t.createStmt, t.addStmt, t.batchStmt, t.versionStmt, t.streamStmt, t.pageStmt} {
		if s != nil {
			s.Close()
		}
	}
	for _, db := range []*sql.DB{t.r, t.w} {
		if db != nil {
			db.Close()
		}
	}
}

// scanSQLitePlain reads plain rows, decoding data; with rowid set, the
// first column is the rowid, and the last one read is stored there.
func scanSQLitePlain(rows *sql.Rows, rowid *int64) (int, error) {
	defer rows.Close()
	var (
		id, orderID, typ, created string
		version                   int32
		data, meta                []byte
		n                         int
	)
	dest := []any{&id, &orderID, &typ, &version, &data, &meta, &created}
	if rowid != nil {
		dest = append([]any{rowid}, dest...)
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return n, err
		}
		if err := decode(data); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}
