package orderview

import (
	"context"
	"fmt"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/google/go-cmp/cmp"
)

// The rebuild folds, with a tiny cache, so that states are dropped and read
// back and open intervals are written open and closed later, write exactly
// what a replay of the log holds.
func TestFoldEviction(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		for i := range 3 {
			if err := viewtest.NewWorkload(uint64(40+i), fmt.Sprintf("e%d_", i)).Run(ctx, b, 120); err != nil {
				t.Fatal(err)
			}
		}
		events, err := b.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		reg := order.NewRegistry()
		for i, e := range events {
			if events[i], err = reg.Upcast(e); err != nil {
				t.Fatal(err)
			}
		}
		d := projection.Dialect(b.Dialect())
		db := b.SQLDB()
		inTx := func(f func(ctx context.Context, tx *projection.Tx) error) {
			t.Helper()
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if err := f(ctx, &projection.Tx{Tx: tx}); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			p interface {
				projection.Projection
				projection.Indexer
			}
			fold func(t projection.Tables) projection.Build
		}{
			{Summaries{}, func(t projection.Tables) projection.Build { return newSummaryFold(d, t, 3) }},
			{StatusHistory{}, func(t projection.Tables) projection.Build { return newHistoryFold(d, t, 3) }},
		} {
			tables := projection.Tables{}
			for _, n := range tc.p.Tables() {
				tables[n] = n + "_fold"
			}
			inTx(func(ctx context.Context, tx *projection.Tx) error { return tc.p.CreateTables(ctx, tx.Tx, d, tables) })
			f := tc.fold(tables)
			rep := tc.p.NewReplay()
			for start := 0; start < len(events); start += 5 {
				page := events[start:min(start+5, len(events))]
				if err := f.Add(ctx, db, page); err != nil {
					t.Fatal(err)
				}
				for _, e := range page {
					if err := rep.Apply(e); err != nil {
						t.Fatal(err)
					}
				}
				if f.Pending() >= 4 {
					inTx(f.Flush(false))
				}
			}
			inTx(f.Flush(true))
			inTx(func(ctx context.Context, tx *projection.Tx) error { return tc.p.CreateIndexes(ctx, tx.Tx, d, tables) })
			stored, err := tc.p.Load(ctx, db, d, tables)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(rep.Rows(), stored); diff != "" {
				t.Errorf("%s: folded rows (-replay +stored):\n%s", tc.p.Name(), diff)
			}
		}
	})
}
