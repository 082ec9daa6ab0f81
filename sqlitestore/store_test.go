package sqlitestore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chronicle-es/chronicle/sqlitestore"
	"github.com/chronicle-es/chronicle/storetest"
)

func openTemp(t testing.TB, opts sqlitestore.Options) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "chronicle.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// harness runs raw SQL (Exec) on a connection of its own to the store's
// file, as the sqlite3 shell would: none of the store's settings apply.
// rawPath gives the file of a store; "" means there is none to open
// (":memory:"), and the store's SQLDB is used.
func harness(open func(t *testing.T, opts sqlitestore.Options) *sqlitestore.Store, rawPath func(*sqlitestore.Store) string) storetest.Harness {
	return storetest.Harness{
		Open: func(t *testing.T, o storetest.Options) storetest.Backend {
			return open(t, sqlitestore.Options{Limits: o.Limits, BeforeCommit: o.BeforeCommit})
		},
		Exec: func(t *testing.T, b storetest.Backend, q string) error {
			s := b.(*sqlitestore.Store)
			path := rawPath(s)
			if path == "" {
				_, err := s.SQLDB().ExecContext(t.Context(), q)
				return err
			}
			db, err := sql.Open(sqlDriverName, "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			if _, err := db.ExecContext(t.Context(), "PRAGMA busy_timeout = 10000"); err != nil {
				t.Fatal(err)
			}
			_, err = db.ExecContext(t.Context(), q)
			return err
		},
		Replace: true,
	}
}

func TestConformance(t *testing.T) {
	var paths sync.Map // *Store -> its file
	open := func(t *testing.T, o sqlitestore.Options) *sqlitestore.Store {
		path := filepath.Join(t.TempDir(), "chronicle.db")
		s, err := sqlitestore.Open(context.Background(), path, o)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		paths.Store(s, path)
		return s
	}
	storetest.Run(t, harness(open, func(s *sqlitestore.Store) string {
		p, _ := paths.Load(s)
		return p.(string)
	}))
}

func TestConformanceMemory(t *testing.T) {
	h := harness(func(t *testing.T, o sqlitestore.Options) *sqlitestore.Store {
		s, err := sqlitestore.Open(context.Background(), ":memory:", o)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, func(*sqlitestore.Store) string { return "" })
	// The Go code is the file store's, whose full soak runs under -race;
	// only the connection setup differs, and the race detector makes
	// modernc's translated C about 8x slower.
	h.SmallSoak = raceEnabled
	storetest.Run(t, h)
}
