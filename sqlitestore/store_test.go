package sqlitestore_test

import (
	"context"
	"path/filepath"
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

func harness(open func(t *testing.T, opts sqlitestore.Options) *sqlitestore.Store) storetest.Harness {
	return storetest.Harness{
		Open: func(t *testing.T, o storetest.Options) storetest.Backend {
			return open(t, sqlitestore.Options{Limits: o.Limits, BeforeCommit: o.BeforeCommit})
		},
		Exec: func(t *testing.T, b storetest.Backend, q string) error {
			_, err := b.(*sqlitestore.Store).SQLDB().ExecContext(t.Context(), q)
			return err
		},
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, harness(func(t *testing.T, o sqlitestore.Options) *sqlitestore.Store { return openTemp(t, o) }))
}

func TestConformanceMemory(t *testing.T) {
	h := harness(func(t *testing.T, o sqlitestore.Options) *sqlitestore.Store {
		s, err := sqlitestore.Open(context.Background(), ":memory:", o)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
	// The Go code is the file store's, whose full soak runs under -race;
	// only the connection setup differs, and the race detector makes
	// modernc's translated C about 8x slower.
	h.SmallSoak = raceEnabled
	storetest.Run(t, h)
}
