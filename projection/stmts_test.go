package projection_test

import (
	"context"
	"testing"

	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// An in-memory SQLite store has one connection for everything: the live
// transactions must not ask the pool for a second one to prepare their
// statements (see stmtCache), and the statements prepared in one batch
// serve the next ones with the same results.
func TestLiveOnOneConnection(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, ":memory:", sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := viewtest.NewWorkload(3, "mem_")
	if err := w.Run(ctx, s, 100); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, s, projection.Options{BatchSize: 7}) // many batches, of many sizes
	start(t, r)
	caughtUp(t, r, s)
	// Live batches on top of the catch-up, through the prepared statements.
	for range 3 {
		if err := w.Run(ctx, s, 50); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, s)
	}
	verifyEqual(t, r)
}
