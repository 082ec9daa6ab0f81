package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// The errors pgx really returns while PostgreSQL is unreachable or its
// backends are killed (pg_terminate_backend: the same FATAL 57P01 as a
// shutdown, and the same closed socket) must each classify as unavailable,
// wrapped as the store and aggregate layers wrap them. Each shape is made by
// a real connection, not written by hand.
func TestUnavailableRealPostgresErrors(t *testing.T) {
	url := testbackends.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	terminate := func(t *testing.T, pid uint32) {
		t.Helper()
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
			t.Fatal(err)
		}
		// Wait until the backend is gone, so the next use of its connection
		// meets a closed socket.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			var alive bool
			if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", pid).Scan(&alive); err != nil {
				t.Fatal(err)
			}
			if !alive {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("backend %d still alive after pg_terminate_backend", pid)
			}
		}
	}
	connect := func(t *testing.T) *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	// A port nothing listens on: a stopped server.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable&connect_timeout=5", l.Addr())
	l.Close()

	shapes := []struct {
		name string
		make func(t *testing.T) error
	}{
		{"connect to a stopped server", func(t *testing.T) error {
			_, err := pgx.Connect(ctx, closedURL)
			return err
		}},
		{"pool acquire from a stopped server", func(t *testing.T) error {
			p, err := pgxpool.New(ctx, closedURL)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			_, err = p.Begin(ctx)
			return err
		}},
		{"connect to a server that hangs up", func(t *testing.T) error {
			// A server that closes each connection at once, as one does
			// while it is being stopped.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			_, err = pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", l.Addr()))
			return err
		}},
		{"backend terminated mid-query", func(t *testing.T) error {
			c := connect(t)
			done := make(chan error, 1)
			go func() {
				_, err := c.Exec(ctx, "SELECT pg_sleep(60)")
				done <- err
			}()
			waitQuery(t, ctx, admin, c.PgConn().PID())
			if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", c.PgConn().PID()); err != nil {
				t.Fatal(err)
			}
			return <-done
		}},
		{"query on a connection whose backend is gone", func(t *testing.T) error {
			c := connect(t)
			terminate(t, c.PgConn().PID())
			if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
				t.Fatal("query on a terminated backend succeeded")
			}
			// pgx has closed the connection now: "conn closed".
			_, err := c.Exec(ctx, "SELECT 1")
			return err
		}},
		{"begin on a connection whose backend is gone", func(t *testing.T) error {
			c := connect(t)
			terminate(t, c.PgConn().PID())
			_, _ = c.Exec(ctx, "SELECT 1")
			_, err := c.Begin(ctx)
			return err
		}},
		{"commit whose outcome is unknown", func(t *testing.T) error {
			c := connect(t)
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			terminate(t, c.PgConn().PID())
			return tx.Commit(ctx)
		}},
		{"statement in a transaction after its backend died", func(t *testing.T) error {
			c := connect(t)
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			terminate(t, c.PgConn().PID())
			_, _ = tx.Exec(ctx, "SELECT 1")
			_, err = tx.Exec(ctx, "SELECT 1")
			return err
		}},
		{"commit after a statement failed on a dead backend", func(t *testing.T) error {
			c := connect(t)
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			terminate(t, c.PgConn().PID())
			_, _ = tx.Exec(ctx, "SELECT 1")
			return tx.Commit(ctx)
		}},
		{"pooled connection whose backend is gone", func(t *testing.T) error {
			p, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var pid uint32
			if err := p.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			terminate(t, pid)
			_, err = p.Exec(ctx, "SELECT 1")
			return err
		}},
		{"read model transaction (database/sql) after its backend died", func(t *testing.T) error {
			p, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			db := stdlib.OpenDBFromPool(p) // what pgstore.SQLDB is
			defer db.Close()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var pid uint32
			if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			terminate(t, pid)
			_, _ = tx.ExecContext(ctx, "SELECT 1")
			return tx.Commit()
		}},
		{"read model query (database/sql) after its backend died", func(t *testing.T) error {
			p, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			db := stdlib.OpenDBFromPool(p)
			defer db.Close()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var pid uint32
			if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			terminate(t, pid)
			_, _ = conn.ExecContext(ctx, "SELECT 1")
			_, err = conn.ExecContext(ctx, "SELECT 1")
			return err
		}},
	}
	for _, tc := range shapes {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.make(t)
			if err == nil {
				t.Fatal("no error")
			}
			// As the layers between the driver and a handler wrap it.
			for _, e := range []error{err,
				fmt.Errorf("append order-o1: %w", err),
				fmt.Errorf("aggregate: load order-o1: %w", fmt.Errorf("read order-o1: %w", err)),
				fmt.Errorf("projection order_summaries: wait for order-o1 v2: %w", err),
				errors.Join(errors.New("rollback failed"), err),
			} {
				if !unavailable(e) {
					t.Errorf("unavailable(%q) = false, want true (%T)", e, err)
				}
			}
		})
	}
}

// waitQuery waits until backend pid is running a query.
func waitQuery(t *testing.T, ctx context.Context, admin *pgx.Conn, pid uint32) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var active bool
		err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active')", pid).Scan(&active)
		if err != nil {
			t.Fatal(err)
		}
		if active {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d never ran its query", pid)
		}
	}
}
