package projection

import (
	"context"
	"database/sql"
	"errors"

	"github.com/jackc/pgx/v5"
)

// Tx is the transaction a rebuild writes shadow tables in: a *sql.Tx on the
// store's database and, on PostgreSQL, COPY within it.
type Tx struct {
	*sql.Tx
	conn *sql.Conn // the connection under Tx; nil when Tx was made from a bare *sql.Tx
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
