package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-es/chronicle/internal/storeurl"
)

// target hands out fresh places on one backend.
type target struct {
	kind   string // storeurl.SQLite or storeurl.Postgres
	pgURL  string // PostgreSQL: the URL without schema
	dir    string // SQLite: the run's temporary directory
	sync   string // SQLite: synchronous level from the URL, "" = store default
	params string // SQLite: the URL's query (synchronous, mmap_size), for every place
	run    string // run id, in schema names
	keep   bool
	notes  map[string]bool
}

func newTarget(opts Options) (*target, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	t := &target{run: hex.EncodeToString(b[:]), keep: opts.Keep, notes: map[string]bool{}}
	if opts.Store == "" {
		dir, err := os.MkdirTemp("", "chronicle-bench-")
		if err != nil {
			return nil, err
		}
		t.kind, t.dir = storeurl.SQLite, dir
		return t, nil
	}
	loc, err := storeurl.Parse(opts.Store)
	if err != nil {
		return nil, err
	}
	t.kind = loc.Kind
	switch loc.Kind {
	case storeurl.Postgres:
		t.pgURL = loc.URL
	case storeurl.SQLite:
		if loc.Path == ":memory:" {
			return nil, errors.New("bench: an in-memory SQLite store cannot be benchmarked (W8's server needs a file): give a file path, whose directory bench then uses")
		}
		// Never the named file: fresh files beside it, on the same disk.
		if err := os.MkdirAll(filepath.Dir(loc.Path), 0o755); err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp(filepath.Dir(loc.Path), ".chronicle-bench-")
		if err != nil {
			return nil, err
		}
		t.dir, t.sync, t.params = dir, loc.Synchronous, loc.SQLiteParams()
	}
	return t, nil
}

// Describe says where the run's places are, for the report header.
func (t *target) describe() string {
	if t.kind == storeurl.Postgres {
		return fmt.Sprintf("postgres %s, schemas bench_%s_*", storeurl.Redact(t.pgURL), t.run)
	}
	return fmt.Sprintf("sqlite in %s, synchronous=%s", t.dir, syncLevel(t.sync))
}

func syncLevel(s string) string {
	if s == "" {
		return "FULL"
	}
	return strings.ToUpper(s)
}

func (t *target) close() {
	if t.dir != "" && !t.keep {
		os.RemoveAll(t.dir)
	}
}

// place is one fresh store (a schema or a file) and, with the baseline,
// the plain table beside it (in the schema, or in a file of its own).
type place struct {
	t         *target
	name      string
	url       string // store URL, for a server process
	schema    string
	path      string
	plainPath string         // SQLite: the plain table's file
	store     storeurl.Store // nil while not open
	plain     plainTable     // nil while not open, or without the baseline
	// plainConns is the plain pool's size (on SQLite, its readers'), 0
	// without the baseline.
	plainConns int
	plainMade  bool // the plain table exists
}

// newPlace makes a fresh place named name ("w1") and opens its store
// unless noOpen. plainConns > 0 also creates the plain table and a pool of
// that many connections on it (on SQLite, that many readers beside the one
// writer).
func (t *target) newPlace(ctx context.Context, name string, noOpen bool, plainConns int) (*place, error) {
	p := &place{t: t, name: name, plainConns: plainConns}
	switch t.kind {
	case storeurl.Postgres:
		p.schema = "bench_" + t.run + "_" + name
		u, err := url.Parse(t.pgURL)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("schema", p.schema)
		u.RawQuery = q.Encode()
		p.url = u.String()
	default:
		p.path = filepath.Join(t.dir, name+".db")
		p.url = "sqlite://" + p.path + t.params
		if plainConns > 0 {
			p.plainPath = filepath.Join(t.dir, name+"-plain.db")
		}
	}
	if noOpen {
		return p, nil
	}
	if err := p.open(ctx); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// open opens the place's store and, with the baseline, the plain table; a
// no-op when they are open.
func (p *place) open(ctx context.Context) error {
	if p.store != nil {
		return nil
	}
	loc, err := storeurl.Parse(p.url)
	if err != nil {
		return err
	}
	if p.store, err = storeurl.Open(ctx, loc, storeurl.Options{}); err != nil {
		return err
	}
	if p.plainConns > 0 {
		if err := p.openPlain(ctx); err != nil {
			p.release()
			return err
		}
	}
	return nil
}

// release closes the store and the plain table, keeping what they wrote.
func (p *place) release() {
	if p.plain != nil {
		p.plain.close()
		p.plain = nil
	}
	if p.store != nil {
		p.store.Close()
		p.store = nil
	}
}

// openPlain opens the plain table, creating it the first time.
func (p *place) openPlain(ctx context.Context) error {
	var (
		t   plainTable
		err error
	)
	switch p.t.kind {
	case storeurl.Postgres:
		t, err = openPGPlain(ctx, p.t.pgURL, p.schema, p.plainConns, !p.plainMade)
	default:
		t, err = openSQLitePlain(ctx, p.plainPath, p.t.sync, p.plainConns, !p.plainMade)
	}
	if err != nil {
		return err
	}
	p.plain, p.plainMade = t, true
	return nil
}

// close closes the place and, unless the run keeps them, drops its schema
// or removes its files.
func (p *place) close() {
	p.release()
	if p.t.keep {
		return
	}
	switch {
	case p.schema != "":
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, p.t.pgURL)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+p.schema+" CASCADE")
	case p.path != "":
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(p.path + suffix)
			if p.plainPath != "" {
				os.Remove(p.plainPath + suffix)
			}
		}
	}
}

// checkpoint flushes dirty pages before a measured run: CHECKPOINT on
// PostgreSQL (superuser or pg_checkpoint role), a truncating WAL
// checkpoint on SQLite, of the store's file and the plain table's. A
// failure is noted, not fatal.
func (r *runner) checkpoint(ctx context.Context, p *place) {
	q := "CHECKPOINT"
	if p.t.kind == storeurl.SQLite {
		q = "PRAGMA wal_checkpoint(TRUNCATE)"
	}
	if _, err := p.store.SQLDB().ExecContext(ctx, q); err != nil {
		r.note("checkpoint", fmt.Sprintf("%s failed (%v): runs measured without it", q, err))
	}
	if p.plain != nil {
		if err := p.plain.checkpoint(ctx); err != nil {
			r.note("checkpoint plain", fmt.Sprintf("the plain table's checkpoint failed (%v): runs measured without it", err))
		}
	}
}

// vacuum runs VACUUM ANALYZE on the place's tables (PostgreSQL only: on
// SQLite nothing is dead and the store's queries need no statistics).
func (r *runner) vacuum(ctx context.Context, p *place) {
	if p.t.kind != storeurl.Postgres {
		return
	}
	db := p.store.SQLDB()
	rows, err := db.QueryContext(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = $1", p.schema)
	var tables []string
	for err == nil && rows.Next() {
		var t string
		if err = rows.Scan(&t); err == nil {
			tables = append(tables, pgx.Identifier{p.schema, t}.Sanitize())
		}
	}
	if err == nil {
		err = rows.Err()
		rows.Close()
	}
	if err == nil && len(tables) > 0 {
		_, err = db.ExecContext(ctx, "VACUUM ANALYZE "+strings.Join(tables, ", "))
	}
	if err != nil {
		r.note("vacuum", fmt.Sprintf("VACUUM ANALYZE failed (%v): runs measured without it", err))
	}
}

// note prints a warning once per key.
func (r *runner) note(key, msg string) {
	if r.t.notes[key] {
		return
	}
	r.t.notes[key] = true
	r.prog.line("note: " + msg)
}
