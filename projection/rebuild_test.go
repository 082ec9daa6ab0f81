package projection_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// summariesAtStreams fails t unless every order's summary is at its
// stream's last version.
func summariesAtStreams(t testing.TB, b testbackends.Backend) {
	t.Helper()
	want := streamVersions(t, b)
	got := summaryVersions(t, b)
	behind := 0
	for id, v := range want {
		if got[id] != v {
			if behind++; behind <= 3 {
				t.Errorf("order %s: summary at version %d, stream at %d", id, got[id], v)
			}
		}
	}
	if behind > 0 {
		t.Fatalf("%d of %d summaries behind their stream", behind, len(want))
	}
}

// A rebuild under concurrent appends: the events the live runner applies
// to the old tables while the rebuild finishes are in the new tables too,
// the moment the rebuild returns.
func TestRebuildKeepsUpWithLiveRunner(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		sum := &lateSummaries{}
		r := newRunner(t, b, projection.Options{RebuildBatchSize: 50}, sum, orderview.StatusHistory{})
		w := startLoaded(t, b, r, 31, "rk", 200)

		// Appends go on while the rebuild reads the log; they stop as it
		// finishes, and then some more land, which the live runner applies
		// to the old tables before the swap.
		// (Stopped between steps, not by cancelling one: the workload
		// must know what it wrote.)
		var stop atomic.Bool
		stopLoad := func() { stop.Store(true) }
		var wg sync.WaitGroup
		var loadErr error
		wg.Go(func() {
			for !stop.Load() {
				if err := w.Step(ctx, b); err != nil {
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
		summariesAtStreams(t, b)
		verifyEqual(t, r)
	})
}

// A rebuild under a load that the live runner keeps up with: every time
// the rebuild is about to swap, more events land and the live runner
// applies them to the old tables first. The rebuild still swaps at its
// first attempt, with those events in the new tables, rather than reading
// on and losing the same race again (a rebuild under steady load could go
// on for minutes that way).
func TestRebuildSwapsWhileLiveRunnerLeads(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		logs := &logLines{}
		r := newRunner(t, b, projection.Options{RebuildBatchSize: 50, Logger: slog.New(logs)}, orderview.Summaries{}, orderview.StatusHistory{})
		w := startLoaded(t, b, r, 37, "rl", 200)
		attempts := 0
		r.SetRebuildHook(func(step string) {
			// A few times at most: a rebuild that retries must still end,
			// and then fail below on the count.
			if step != "swap" {
				return
			}
			if attempts++; attempts > 5 {
				return
			}
			if err := w.Run(ctx, b, 10); err != nil {
				t.Error(err)
			}
			caughtUp(t, r, b)
		})
		if err := r.RebuildAll(ctx, []string{orderview.SummariesName, orderview.HistoryName}, nil); err != nil {
			t.Fatalf("RebuildAll: %v", err)
		}
		if attempts != 1 {
			t.Errorf("the rebuild tried to swap %d times; want 1", attempts)
		}
		// The log says what the swap applied: the events that landed
		// before it, which the live runner had applied to the old tables.
		for _, name := range []string{orderview.SummariesName, orderview.HistoryName} {
			rec, ok := logs.find("projection: rebuilt", name)
			if !ok {
				t.Errorf("no \"projection: rebuilt\" line for %s; lines: %v", name, logs.messages())
				continue
			}
			if n := rec["events_at_swap"].Int64(); n < 1 {
				t.Errorf("%s: events_at_swap = %d, want the events applied at the swap (at least 1)", name, n)
			}
			if n := rec["events"].Int64(); n < rec["events_at_swap"].Int64() {
				t.Errorf("%s: events = %d, fewer than at the swap", name, n)
			}
			if d := rec["swap"].Duration(); d <= 0 {
				t.Errorf("%s: swap = %v, want its duration", name, d)
			}
		}
		summariesAtStreams(t, b)
		// The live runner goes on from the new tables' checkpoint.
		if err := w.Run(ctx, b, 20); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)
		verifyEqual(t, r)
	})
}

// A rebuild's catch-up under steady appends: every page it applies, one
// more event lands. It stops at the head it saw when it began and leaves
// the rest to the swap, rather than chasing the head a few events and a
// write at a time for as long as appends go on.
func TestRebuildCatchUpStopsAtHead(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sum := &lateSummaries{}
		r := newRunner(t, b, projection.Options{RebuildBatchSize: 50}, sum)
		w := startLoaded(t, b, r, 41, "rc", 200)
		// Events after the fill, for the catch-up to apply.
		sum.finishing = func() {
			if err := w.Run(ctx, b, 30); err != nil {
				t.Error(err)
			}
		}
		pages, appends := 0, 0
		r.SetRebuildHook(func(step string) {
			// A bounded load, so that a catch-up that chases still ends
			// and then fails below on the count.
			if step == "page" && appends < 20 {
				pages++
				appends++
				// A step that a rule refuses appends nothing: step on
				// until one event has landed.
				for before := headOf(t, b); headOf(t, b) == before; {
					if err := w.Step(ctx, b); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
		if err := r.Rebuild(ctx, orderview.SummariesName, nil); err != nil {
			t.Fatalf("Rebuild: %v", err)
		}
		if pages == 0 || pages > 2 {
			t.Errorf("the catch-up applied %d pages; want 1 or 2 (30 steps after the fill, pages of 50)", pages)
		}
		caughtUp(t, r, b)
		summariesAtStreams(t, b)
		verifyEqual(t, r)
	})
}

func headOf(t testing.TB, s chronicle.Store) chronicle.Head {
	t.Helper()
	h, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Verify sees a read model behind its checkpoint: the replay goes up to the
// checkpoint, the rows lack what came after the last apply.
func TestVerifySeesRowsBehindCheckpoint(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		r := newRunner(t, b, projection.Options{})
		stop := start(t, r)
		w := viewtest.NewWorkload(32, "vb")
		if err := w.Run(ctx, b, 50); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)
		stop()
		verifyEqual(t, r)
		if err := w.Run(ctx, b, 20); err != nil {
			t.Fatal(err)
		}
		// The checkpoint says the head, the rows are as before. The head
		// must include the 20 orders' events: on a shared cluster another
		// session's transaction can hold it back.
		head := settledHead(t, b)
		if _, err := b.SQLDB().ExecContext(ctx, r.Dialect().Rebind(`UPDATE projection_checkpoints SET tx_id = $1, position = $2 WHERE name = $3`),
			int64(head.Checkpoint.TxID), head.Checkpoint.Position, orderview.SummariesName); err != nil {
			t.Fatal(err)
		}
		d, err := r.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) == 0 {
			t.Fatal("Verify found no difference in summaries behind their checkpoint")
		}
		for _, x := range d {
			if x.Projection != orderview.SummariesName {
				t.Errorf("difference in %s, want only in %s: %v", x.Projection, orderview.SummariesName, x)
			}
		}
	})
}

// An event whose upcast fails, skipped by the operator, is skipped by a
// rebuild too, rather than failing it.
func TestRebuildSkipsUpcastPoison(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		poison, _ := order.StreamID("upcastpoison")
		r, failed := poisonRunner(t, b, poison, 10, orderview.Projections()...)
		start(t, r)
		w := viewtest.NewWorkload(33, "up")
		if err := w.Run(ctx, b, 30); err != nil {
			t.Fatal(err)
		}
		appendPoison(t, b, poison)
		if err := w.Run(ctx, b, 30); err != nil {
			t.Fatal(err)
		}
		for range r.Names() {
			select {
			case name := <-failed:
				// Not skipped yet: the rebuild stops at it, as the runner did.
				if err := r.Rebuild(ctx, name, nil); err == nil || !strings.Contains(err.Error(), "no upcaster for this shape") {
					t.Errorf("Rebuild(%s) before the skip = %v, want the upcast error", name, err)
				}
				if err := r.Skip(ctx, name); err != nil {
					t.Fatalf("Skip(%s): %v", name, err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("the projections did not stop at the event that cannot be upcast within 60 s")
			}
		}
		caughtUp(t, r, b)
		verifyEqual(t, r)
		for _, name := range r.Names() {
			if err := r.Rebuild(ctx, name, nil); err != nil {
				t.Fatalf("Rebuild(%s) after skipping an event that cannot be upcast: %v", name, err)
			}
		}
		if err := r.RebuildAll(ctx, nil, nil); err != nil {
			t.Fatalf("RebuildAll after skipping an event that cannot be upcast: %v", err)
		}
		caughtUp(t, r, b)
		verifyEqual(t, r)
	})
}

// An event the live runner stops at and an operator skips while a rebuild
// runs, after the rebuild loaded the skipped events: the rebuild skips it
// too, whether its catch-up or its swap meets it. Before, it failed there
// with the error the operator had skipped.
func TestRebuildSkipsWhatWasSkippedMeanwhile(t *testing.T) {
	for _, when := range []string{"catch-up", "swap"} {
		t.Run(when, func(t *testing.T) {
			testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				poison, _ := order.StreamID("poison-" + when)
				sum := &lateSummaries{}
				r, failed := poisonRunner(t, b, poison, 50, sum)
				w := startLoaded(t, b, r, 43, "rs", 100)
				// poisonAndSkip appends the event, waits for the live runner
				// to stop at it, skips it and lets the live runner go on.
				done := false
				poisonAndSkip := func() {
					if done {
						return
					}
					done = true
					appendPoison(t, b, poison)
					select {
					case <-failed:
					case <-ctx.Done():
						t.Fatal("the live runner did not stop at the event that cannot be upcast")
					}
					if err := r.Skip(ctx, orderview.SummariesName); err != nil {
						t.Fatalf("Skip: %v", err)
					}
					if err := w.Run(ctx, b, 10); err != nil {
						t.Fatal(err)
					}
					caughtUp(t, r, b)
				}
				if when == "catch-up" {
					sum.finishing = poisonAndSkip
				} else {
					r.SetRebuildHook(func(step string) {
						if step == "swap" {
							poisonAndSkip()
						}
					})
				}
				if err := r.Rebuild(ctx, orderview.SummariesName, nil); err != nil {
					t.Fatalf("Rebuild: %v", err)
				}
				if !done {
					t.Fatal("the rebuild never reached the step that appends the event")
				}
				verifyEqual(t, r)
			})
		})
	}
}

// startLoaded starts r, runs n steps of a workload of seed and prefix, and
// waits for r to catch up with them; the workload goes on from there.
func startLoaded(t *testing.T, b chronicle.Store, r *projection.Runner, seed uint64, prefix string, n int) *viewtest.Workload {
	t.Helper()
	start(t, r)
	w := viewtest.NewWorkload(seed, prefix)
	if err := w.Run(context.Background(), b, n); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, r, b)
	return w
}

// poisonRunner is a runner of ps whose upcaster fails on the events of
// stream poison, and which stops at an event after two attempts; failed
// receives the name of each projection that stops.
func poisonRunner(t *testing.T, b chronicle.Store, poison string, batch int, ps ...projection.Projection) (r *projection.Runner, failed <-chan string) {
	t.Helper()
	reg := order.NewRegistry()
	stopped := make(chan string, 10)
	r, err := projection.New(b, projection.Options{
		MaxAttempts: 2, Backoff: time.Millisecond, PollInterval: 50 * time.Millisecond, RebuildBatchSize: batch,
		Upcaster: projection.UpcasterFunc(func(e chronicle.RecordedEvent) (chronicle.RecordedEvent, error) {
			if e.StreamID == poison {
				return e, errors.New("no upcaster for this shape")
			}
			return reg.Upcast(e)
		}),
		Hooks: projection.Hooks{Failing: func(name string, _ projection.Failure, final bool) {
			if final {
				stopped <- name
			}
		}},
	}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	return r, stopped
}

// appendPoison creates stream poison with one order event.
func appendPoison(t *testing.T, b chronicle.Store, poison string) {
	t.Helper()
	if _, err := b.Append(context.Background(), poison, chronicle.NoStream, viewtest.Encode([]order.Event{order.OrderCreated{CustomerID: "c", Currency: "USD", Items: []order.Item{}, Total: 1}})); err != nil {
		t.Fatal(err)
	}
}

// logLines keeps the records logged through it.
type logLines struct {
	mu   sync.Mutex
	recs []map[string]slog.Value
	msgs []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }

func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]slog.Value{}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.Resolve()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs, l.msgs = append(l.recs, attrs), append(l.msgs, r.Message)
	return nil
}

// find returns the attributes of the last record with message msg about
// projection name.
func (l *logLines) find(msg, name string) (map[string]slog.Value, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.recs) - 1; i >= 0; i-- {
		if l.msgs[i] == msg && l.recs[i]["projection"].String() == name {
			return l.recs[i], true
		}
	}
	return nil, false
}

func (l *logLines) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}
