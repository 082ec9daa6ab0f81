package testbackends

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/sqlitestore"
	"github.com/jackc/pgx/v5"
)

// EnvPostgres names the variable holding the test PostgreSQL URL, e.g.
// postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable.
const EnvPostgres = "CHRONICLE_TEST_POSTGRES"

// Backend is what every chronicle backend provides: events, snapshots, and
// the SQL database that read models share.
type Backend interface {
	chronicle.Store
	chronicle.SnapshotStore
	chronicle.SQLDatabase
}

// Options tune the stores a test opens.
type Options struct {
	Limits chronicle.Limits
	// BeforeCommit is passed to the backend (fault injection).
	BeforeCommit func(stream string, events []chronicle.Event) error
	// SQLiteSynchronous is SQLite's synchronous setting. Default "NORMAL":
	// a test store need not survive power loss, and an fsync per commit
	// would dominate the run time of command-heavy tests.
	SQLiteSynchronous string
}

// Opener opens fresh stores of one backend.
type Opener struct {
	Name string // "sqlite" or "postgres": use it as the subtest name
	// Open returns a new, empty store, closed when tb ends. It skips tb
	// when the backend is not available (PostgreSQL without its URL).
	Open func(tb testing.TB, opts Options) Backend
}

// All returns an opener per backend, SQLite first.
func All() []Opener {
	return []Opener{{"sqlite", SQLite}, {"postgres", Postgres}}
}

// ForEach runs f as a subtest per backend, each with a fresh store.
func ForEach(t *testing.T, f func(t *testing.T, b Backend)) {
	t.Helper()
	ForEachOpts(t, Options{}, f)
}

// ForEachOpts is ForEach with options for the stores.
func ForEachOpts(t *testing.T, opts Options, f func(t *testing.T, b Backend)) {
	t.Helper()
	for _, o := range All() {
		t.Run(o.Name, func(t *testing.T) { f(t, o.Open(t, opts)) })
	}
}

// ForEachB runs f as a sub-benchmark per backend, each with a fresh store.
func ForEachB(b *testing.B, f func(b *testing.B, s Backend)) {
	b.Helper()
	for _, o := range All() {
		b.Run(o.Name, func(b *testing.B) { f(b, o.Open(b, Options{})) })
	}
}

// SQLite opens a store in a new file under tb's temporary directory.
func SQLite(tb testing.TB, opts Options) Backend {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(tb.TempDir(), "chronicle.db"), sqlitestore.Options{
		Limits: opts.Limits, BeforeCommit: opts.BeforeCommit, Synchronous: cmp.Or(opts.SQLiteSynchronous, "NORMAL"),
	})
	if err != nil {
		tb.Fatalf("sqlitestore.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close sqlite store: %v", err)
		}
	})
	return s
}

// PostgresURL returns the test server's URL, skipping tb when none is set.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv(EnvPostgres)
	if url == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal(EnvPostgres + " is not set in CI: the PostgreSQL tests must run there")
		}
		tb.Skip(EnvPostgres + " is not set, so there is no PostgreSQL to test against " +
			"(e.g. postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable, or run under scripts/with-postgres)")
	}
	return url
}

// Postgres opens a store in a fresh schema of the test server, dropped when
// tb ends. It skips tb when CHRONICLE_TEST_POSTGRES is unset.
func Postgres(tb testing.TB, opts Options) Backend {
	tb.Helper()
	url := PostgresURL(tb)
	schema := newSchema(tb, url)
	s, err := pgstore.Open(context.Background(), url, pgstore.Options{
		Schema: schema, Limits: opts.Limits, BeforeCommit: opts.BeforeCommit,
	})
	if err != nil {
		tb.Fatalf("pgstore.Open: %v", err)
	}
	// Registered after newSchema's cleanup, so it runs first: close, then drop.
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close postgres store: %v", err)
		}
	})
	return s
}

// newSchema returns a fresh schema name and drops the schema when tb ends.
func newSchema(tb testing.TB, url string) string {
	tb.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	name := "t_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}
