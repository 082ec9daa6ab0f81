package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const envURL = "CHRONICLE_TEST_POSTGRES"

// testURL returns the test server's URL, skipping tb when none is set.
func testURL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv(envURL)
	if url == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal(envURL + " is not set in CI: the PostgreSQL tests must run there")
		}
		tb.Skip(envURL + " is not set: no PostgreSQL to test against (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	return url
}

// newSchema returns a fresh schema name, dropped when tb ends (after the
// stores using it closed: cleanups run last-registered first).
func newSchema(tb testing.TB) string {
	tb.Helper()
	url := testURL(tb)
	var b [8]byte
	rand.Read(b[:])
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

// openTest opens a store in a fresh schema, closed when tb ends.
func openTest(tb testing.TB, opts Options) *Store {
	tb.Helper()
	url := testURL(tb)
	if opts.Schema == "" {
		opts.Schema = newSchema(tb)
	}
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// settled waits until the log's readable end reaches its last commit: on
// a shared cluster another session's open transaction holds readers back
// (invariant 4), so a read right after an append may not show it yet.
func settled(tb testing.TB, s *Store) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		h, err := s.Head(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		if h.Position >= h.Committed {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("head still held back after 60s: %+v", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
