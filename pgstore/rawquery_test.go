package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-es/chronicle"
)

// echo is one round trip of args through poolQuerier, read back as pgx
// would: NULLs, arrays with NULL elements and bytes included.
type echo struct {
	text  string
	n     *int64
	raw   []byte
	texts []*string
}

func queryEcho(ctx context.Context, q poolQuerier, in echo) (echo, error) {
	rows, err := q.Query(ctx, `SELECT $1::text, $2::int8, $3::bytea, $4::text[]`, in.text, in.n, in.raw, in.texts)
	if err != nil {
		return echo{}, err
	}
	defer rows.Close()
	var out echo
	n := 0
	for rows.Next() {
		if err := rows.Scan(&out.text, &out.n, &out.raw, &out.texts); err != nil {
			return echo{}, err
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return echo{}, err
	}
	if n != 1 {
		return echo{}, fmt.Errorf("%d rows, want 1", n)
	}
	return out, nil
}

func TestPoolQuerier(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	q := s.wq
	released := func(t *testing.T) {
		t.Helper()
		if n := s.wpool.Stat().AcquiredConns(); n != 0 {
			t.Fatalf("%d connections still acquired after the rows closed", n)
		}
	}
	cmpOpts := cmp.AllowUnexported(echo{})

	t.Run("values and NULLs", func(t *testing.T) {
		seven, x := int64(7), "x"
		for _, in := range []echo{
			{text: "a", n: &seven, raw: []byte{0, 1, 2}, texts: []*string{nil, &x}},
			{text: "", n: nil, raw: nil, texts: nil},
		} {
			out, err := queryEcho(ctx, q, in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(in, out, cmpOpts); d != "" {
				t.Errorf("read back (-sent +read):\n%s", d)
			}
			released(t)
		}
	})

	t.Run("wrong argument count", func(t *testing.T) {
		_, err := q.Query(ctx, `SELECT $1::int8`, int64(1), int64(2))
		if err == nil || !strings.Contains(err.Error(), "takes 1 arguments, got 2") {
			t.Fatalf("err = %v, want the argument count refused", err)
		}
		released(t)
	})

	t.Run("argument that does not encode", func(t *testing.T) {
		_, err := q.Query(ctx, `SELECT $1::int8`, struct{ A int }{1})
		if err == nil {
			t.Fatal("a struct encoded as int8")
		}
		released(t)
	})

	t.Run("statement error", func(t *testing.T) {
		rows, err := q.Query(ctx, `SELECT 1 / $1::int4`, int32(0))
		if err == nil {
			for rows.Next() {
			}
			rows.Close()
			err = rows.Err()
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
			t.Fatalf("err = %v, want division_by_zero", err)
		}
		released(t)
		// The connection is fine for the next statement.
		if _, err := queryEcho(ctx, q, echo{text: "after"}); err != nil {
			t.Fatal(err)
		}
		released(t)
	})

	t.Run("concurrent large arguments", func(t *testing.T) {
		// Buffers pass from query to query: each must read back exactly
		// what it sent, whatever ran beside it.
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Go(func() {
				for i := range 20 {
					n := int64(g*100 + i)
					big := strings.Repeat(string(rune('a'+g)), 1000*(i+1))
					texts := make([]*string, 50)
					for k := range texts {
						if k%3 != 0 {
							v := fmt.Sprintf("%d-%d-%d", g, i, k)
							texts[k] = &v
						}
					}
					in := echo{text: big, n: &n, raw: []byte(big[:i+1]), texts: texts}
					out, err := queryEcho(ctx, q, in)
					if err != nil {
						errs <- err
						return
					}
					if d := cmp.Diff(in, out, cmpOpts); d != "" {
						errs <- fmt.Errorf("client %d query %d read back (-sent +read):\n%s", g, i, d)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		released(t)
	})
}

// TestArgBufEncode checks NULL against empty values on a fresh buffer (nil
// until first used) and on a reused one: only a nil argument is NULL.
func TestArgBufEncode(t *testing.T) {
	m := pgtype.NewMap()
	sd := &pgconn.StatementDescription{ParamOIDs: []uint32{pgtype.TextOID, pgtype.ByteaOID, pgtype.Int8OID, pgtype.TextOID}}
	empty := ""
	args := []any{"", []byte{}, nil, &empty}
	b := new(argBuf)
	for round := range 2 {
		if err := b.encode(m, sd, args); err != nil {
			t.Fatal(err)
		}
		for i, want := range []bool{false, false, true, false} {
			if got := b.values[i] == nil; got != want {
				t.Errorf("round %d: argument %d NULL = %v, want %v", round+1, i+1, got, want)
			}
			if len(b.values[i]) != 0 {
				t.Errorf("round %d: argument %d is %q, want empty", round+1, i+1, b.values[i])
			}
		}
	}
}

// TestPoolQuerierModes: the append statements are prepared by name only in
// pgx's default mode; a URL's default_query_exec_mode (for a pooler that
// cannot keep prepared statements) is pgx's own path, preparing nothing.
func TestPoolQuerierModes(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		mode     string
		prepared int
	}{{"", 1}, {"cache_describe", 0}, {"describe_exec", 0}, {"exec", 0}} {
		name := c.mode
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			url := withParam(testURL(t), "pool_max_conns=1")
			if c.mode != "" {
				url = withParam(url, "default_query_exec_mode="+c.mode)
			}
			cfg, err := pgxpool.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			seven, x := int64(7), "x"
			in := echo{text: "a", n: &seven, raw: []byte{1}, texts: []*string{&x, nil}}
			out, err := queryEcho(ctx, newPoolQuerier(pool, cfg), in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(in, out, cmp.AllowUnexported(echo{})); d != "" {
				t.Errorf("read back (-sent +read):\n%s", d)
			}
			// The pool's one connection is the one the echo ran on.
			var n int
			err = pool.QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1::text, $2::int8%'`).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			if n != c.prepared {
				t.Errorf("%d prepared echo statements on the connection, want %d", n, c.prepared)
			}
		})
	}
}

func withParam(url, p string) string {
	if strings.Contains(url, "?") {
		return url + "&" + p
	}
	return url + "?" + p
}

// A URL whose default_query_exec_mode cannot send the appends' arguments
// (no parameter types) is refused at Open, before anything is created;
// the modes that describe their statements work, appends of one event and
// of many through pgx's own Query.
func TestOpenQueryExecModes(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"exec", "simple_protocol"} {
		schema := newSchema(t)
		s, err := Open(ctx, withParam(testURL(t), "default_query_exec_mode="+mode), Options{Schema: schema})
		if err == nil {
			s.Close()
			t.Fatalf("%s: Open succeeded", mode)
		}
		if !strings.Contains(err.Error(), "default_query_exec_mode="+mode+" is not supported") {
			t.Errorf("%s: err = %v, want the mode refused", mode, err)
		}
		conn, err := pgx.Connect(ctx, testURL(t))
		if err != nil {
			t.Fatal(err)
		}
		var exists bool
		err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists)
		conn.Close(ctx)
		if err != nil || exists {
			t.Errorf("%s: schema %s exists after the refused Open: %v, %v", mode, schema, exists, err)
		}
	}
	for _, mode := range []string{"cache_describe", "describe_exec"} {
		s, err := Open(ctx, withParam(testURL(t), "default_query_exec_mode="+mode), Options{Schema: newSchema(t)})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if _, err := s.Append(ctx, "order-1", chronicle.NoStream, []chronicle.Event{ev("A", `{"n":1}`)}); err != nil {
			t.Errorf("%s: one event: %v", mode, err)
		}
		evs := make([]chronicle.Event, 100)
		for i := range evs {
			evs[i] = ev("B", fmt.Sprintf(`{"n":%d}`, i))
		}
		res, err := s.Append(ctx, "order-2", chronicle.NoStream, evs)
		if err != nil || res.LastVersion != 100 {
			t.Errorf("%s: 100 events: %+v, %v", mode, res, err)
		}
		s.Close()
	}
}
