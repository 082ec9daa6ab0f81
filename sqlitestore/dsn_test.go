package sqlitestore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/chronicle-es/chronicle/sqlitestore"
)

// TestDSN: a connection opened with DSN has the synchronous level and the
// busy timeout asked for, on a path that needs escaping, and a unique key
// refusing a row is a constraint violation.
func TestDSN(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		sync     string
		want     int // PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA
		busy     int
		wantBusy int
	}{
		{"", 2, 0, 10_000},
		{"normal", 1, 250, 250},
		{"EXTRA", 3, 0, 10_000},
		{"OFF", 0, 1, 1},
	} {
		path := filepath.Join(t.TempDir(), "a b?#.db")
		dsn, err := sqlitestore.DSN(path, tc.sync, tc.busy)
		if err != nil {
			t.Fatalf("DSN(%q): %v", tc.sync, err)
		}
		db, err := sql.Open(sqlitestore.DriverName, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var sync, busy int
		if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if sync != tc.want || busy != tc.wantBusy {
			t.Errorf("DSN(%q, %d): synchronous %d, busy_timeout %d, want %d, %d", tc.sync, tc.busy, sync, busy, tc.want, tc.wantBusy)
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE t (k TEXT PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		// The file is the one at path, not a name cut at '?' or '#'.
		var file string
		if err := db.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
			t.Fatal(err)
		}
		if file != path {
			t.Errorf("DSN(%q) opened %q, want %q", path, file, path)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES ('x')"); err != nil {
			t.Fatal(err)
		}
		_, err = db.ExecContext(ctx, "INSERT INTO t VALUES ('x')")
		if !sqlitestore.IsConstraintViolation(err) {
			t.Errorf("a duplicate key: %v, want a constraint violation", err)
		}
	}
	if _, err := sqlitestore.DSN(filepath.Join(t.TempDir(), "x.db"), "FAST", 0); err == nil {
		t.Error("DSN with synchronous FAST: no error")
	}
	if _, err := sqlitestore.DSN("", "", 0); err == nil {
		t.Error("DSN of an empty path: no error")
	}
	if sqlitestore.IsConstraintViolation(sql.ErrNoRows) {
		t.Error("sql.ErrNoRows is a constraint violation")
	}
}
