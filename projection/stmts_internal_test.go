package projection

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/chronicle-es/chronicle/sqlitestore"
)

func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "c.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db := s.SQLDB()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	c := newStmtCache(db)
	run := func(k int) {
		t.Helper()
		sqlTx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		tx := &Tx{Tx: sqlTx, stmts: c}
		if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, k, "x"); err != nil {
			t.Fatal(err)
		}
		var n int
		rows, err := tx.QueryContext(ctx, `SELECT count(*) FROM t WHERE k <= ?`, k)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		rows.Close()
		if n != k {
			t.Errorf("count after %d inserts: got %d", k, n)
		}
		if err := sqlTx.Commit(); err != nil {
			t.Fatal(err)
		}
		c.prepare(ctx)
	}
	run(1)
	if got := len(c.m); got != 2 {
		t.Fatalf("prepared after the first transaction: got %d, want 2", got)
	}
	first := c.m[`INSERT INTO t (k, v) VALUES (?, ?)`]
	run(2)
	run(3)
	if got := c.m[`INSERT INTO t (k, v) VALUES (?, ?)`]; got != first || len(c.m) != 2 {
		t.Errorf("statements prepared again: %d in the cache", len(c.m))
	}
	// A nil cache (rebuilds, PostgreSQL) runs statements as they come.
	sqlTx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlTx.Rollback()
	if _, err := (&Tx{Tx: sqlTx}).ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, 4, "y"); err != nil {
		t.Fatal(err)
	}
	c.close()
	if len(c.m) != 0 {
		t.Errorf("close left %d statements", len(c.m))
	}
}
