package projection

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Tx is the transaction projections write in: a *sql.Tx on the store's
// database and, in a rebuild on PostgreSQL, COPY within it. In the
// runner's live transactions on SQLite, ExecContext and QueryContext
// reuse statements prepared once (see stmtCache).
type Tx struct {
	*sql.Tx
	conn  *sql.Conn  // the connection under Tx; nil when Tx was made from a bare *sql.Tx
	stmts *stmtCache // nil: every statement is parsed where it runs
}

// ExecContext runs query in the transaction, as a prepared statement when
// the runner holds one for its text.
func (tx *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := tx.stmts.get(query); st != nil {
		return tx.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.Tx.ExecContext(ctx, query, args...)
}

// QueryContext runs query in the transaction, as a prepared statement when
// the runner holds one for its text.
func (tx *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := tx.stmts.get(query); st != nil {
		return tx.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.Tx.QueryContext(ctx, query, args...)
}

// stmtCache holds statements prepared on the database for the runner's
// live transactions. SQLite (modernc) parses SQL text on every call, and a
// live projection runs the same few statements batch after batch: parsing
// them again was a tenth of the projections' CPU under W8. (pgx caches
// prepared statements by text on its own, so PostgreSQL needs none.)
//
// A text met inside a transaction is only noted there: preparing it on
// the database may need a second connection, which a one-connection pool
// (an in-memory store) cannot give while the transaction holds its own.
// prepare runs after the transaction, with no connection held.
type stmtCache struct {
	db   *sql.DB
	mu   sync.Mutex
	m    map[string]*sql.Stmt
	want []string
}

// maxStmts bounds the cache: the live statements are a few dozen texts;
// anything beyond is parsed where it runs, as without a cache.
const maxStmts = 256

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

// get returns the prepared statement of query, or nil (noting query for
// prepare). A nil cache holds nothing.
func (c *stmtCache) get(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[query]
	if !ok && len(c.m)+len(c.want) < maxStmts && !slices.Contains(c.want, query) {
		c.want = append(c.want, query)
	}
	return st
}

// prepare prepares the texts noted since the last call. A text that fails
// to prepare (a table not there yet, say) is dropped: it runs unprepared
// and is noted again.
func (c *stmtCache) prepare(ctx context.Context) {
	if c == nil {
		return
	}
	c.mu.Lock()
	want := c.want
	c.want = nil
	c.mu.Unlock()
	for _, q := range want {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, dup := c.m[q]; dup {
			st.Close()
		} else {
			c.m[q] = st
		}
		c.mu.Unlock()
	}
}

// close closes every prepared statement.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
	c.want = nil
}

// ErrNoCopy: CopyFrom on a transaction that cannot COPY (see Tx.CanCopy).
var ErrNoCopy = errors.New("projection: COPY is not available in this transaction")

// pgxConn is the driver connection of pgx's database/sql adapter.
type pgxConn interface{ Conn() *pgx.Conn }

// CanCopy reports whether CopyFrom works: on PostgreSQL, in a transaction
// the runner began.
func (tx *Tx) CanCopy() bool {
	if tx.conn == nil {
		return false
	}
	ok := false
	tx.conn.Raw(func(dc any) error {
		_, ok = dc.(pgxConn)
		return nil
	})
	return ok
}

// CopyFrom inserts rows into the columns of table with COPY, within the
// transaction: on PostgreSQL several times faster than INSERT for the
// thousands of rows a rebuild writes at once. Values are those
// ExecContext takes (string, int64, nil for NULL...), in columns' order.
// Errors: ErrNoCopy; the database's.
func (tx *Tx) CopyFrom(ctx context.Context, table string, columns []string, rows [][]any) error {
	if tx.conn == nil {
		return ErrNoCopy
	}
	return tx.conn.Raw(func(dc any) error {
		c, ok := dc.(pgxConn)
		if !ok {
			return ErrNoCopy
		}
		_, err := c.Conn().CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows))
		return err
	})
}
