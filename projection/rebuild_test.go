package projection_test

import (
	"context"
	"sync"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
)

// lateSummaries is the summaries projection whose rebuild calls finishing
// once, when it takes its final write: after it read its last page, before
// the swap.
type lateSummaries struct {
	orderview.Summaries
	once      sync.Once
	finishing func()
}

func (p *lateSummaries) NewBuild(d projection.Dialect, t projection.Tables) projection.Build {
	return &lateBuild{Build: p.Summaries.NewBuild(d, t), p: p}
}

type lateBuild struct {
	projection.Build
	p *lateSummaries
}

func (b *lateBuild) Flush(final bool) func(ctx context.Context, tx *projection.Tx) error {
	if final && b.p.finishing != nil {
		b.p.once.Do(b.p.finishing)
	}
	return b.Build.Flush(final)
}

// streamVersions returns the last version of every order stream.
func streamVersions(t testing.TB, s chronicle.Store) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	var from chronicle.Checkpoint
	for {
		evs, err := s.ReadAll(context.Background(), from, chronicle.ReadAllOptions{StreamTypes: []string{order.StreamType}})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, e := range evs {
			id, _ := order.IDFromStream(e.StreamID)
			out[id] = max(out[id], e.Version)
		}
		from = evs[len(evs)-1].Checkpoint()
	}
}

// summaryVersions returns the version of every stored order summary.
func summaryVersions(t testing.TB, db chronicle.SQLDatabase) map[string]int64 {
	t.Helper()
	rows, err := db.SQLDB().Query(`SELECT order_id, version FROM ` + orderview.SummariesName)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A rebuild under concurrent appends: the events the live runner applies
// to the old tables while the rebuild finishes are in the new tables too,
// the moment the rebuild returns.
func TestRebuildKeepsUpWithLiveRunner(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		sum := &lateSummaries{}
		r := newRunner(t, b, projection.Options{RebuildBatchSize: 50}, sum, orderview.StatusHistory{})
		start(t, r)
		w := viewtest.NewWorkload(31, "rk")
		if err := w.Run(ctx, b, 200); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)

		// Appends go on while the rebuild reads the log; they stop as it
		// finishes, and then some more land, which the live runner applies
		// to the old tables before the swap.
		lctx, stopLoad := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var loadErr error
		wg.Go(func() {
			for lctx.Err() == nil {
				if err := w.Step(lctx, b); err != nil && lctx.Err() == nil {
					loadErr = err
					return
				}
			}
		})
		var late int
		sum.finishing = func() {
			stopLoad()
			wg.Wait()
			if err := w.Run(ctx, b, 30); err != nil {
				t.Error(err)
			}
			late = 30
			caughtUp(t, r, b)
		}
		if err := r.Rebuild(ctx, orderview.SummariesName, nil); err != nil {
			t.Fatalf("Rebuild: %v", err)
		}
		stopLoad()
		wg.Wait()
		if loadErr != nil {
			t.Fatal(loadErr)
		}
		if late == 0 {
			t.Fatal("the rebuild never took its final write")
		}
		// Right after the rebuild, with nothing appended since.
		want := streamVersions(t, b)
		got := summaryVersions(t, b)
		behind := 0
		for id, v := range want {
			if got[id] != v {
				if behind++; behind <= 3 {
					t.Errorf("order %s: summary at version %d after the rebuild, stream at %d", id, got[id], v)
				}
			}
		}
		if behind > 0 {
			t.Fatalf("%d of %d summaries behind their stream after the rebuild", behind, len(want))
		}
		verifyEqual(t, r)
	})
}
