package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// newReq prepares an append as Append does, for runBatch.
func newReq(t *testing.T, s *Store, stream string, expected chronicle.ExpectedVersion) *appendReq {
	t.Helper()
	evs, digests, err := audit.PrepareAppend(stream, expected, []chronicle.Event{ev("A", `{"n":1}`)}, s.opts.Limits)
	if err != nil {
		t.Fatal(err)
	}
	return &appendReq{ctx: context.Background(), stream: stream, expected: expected, events: evs, digests: digests, done: make(chan appendOutcome, 1)}
}

// TestCreateBatch: a batch of appends that all expect no stream
// (createBatchSQL) creates the new streams, and the one that exists
// already fails its version check with its actual version, writing
// nothing; the batch's other appends land.
func TestCreateBatch(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, "cb-old", chronicle.NoStream, []chronicle.Event{ev("A", `{}`), ev("A", `{}`)}); err != nil {
		t.Fatal(err)
	}
	batch := []*appendReq{newReq(t, s, "cb-1", chronicle.NoStream), newReq(t, s, "cb-old", chronicle.NoStream), newReq(t, s, "cb-2", chronicle.NoStream)}
	outs, err := s.runBatch(ctx, s.wpool, batch, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		o := outs[i].out
		if o.err != nil || o.dup || outs[i].retry || o.res.FirstVersion != 1 || o.res.LastVersion != 1 || o.res.FirstPosition == 0 {
			t.Errorf("%s: %+v, want version 1 appended", batch[i].stream, outs[i])
		}
	}
	var conflict *chronicle.ConflictError
	if o := outs[1]; o.retry || !errors.As(o.out.conflict, &conflict) || conflict.Actual != 2 {
		t.Errorf("cb-old: %+v, want a conflict at version 2", o)
	}
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE stream_id = 'cb-old'`).Scan(&n); err != nil || n != 2 {
		t.Errorf("cb-old has %d events (%v), want its 2", n, err)
	}
}

// TestNewStreamsBatch: a batch of creates of one to three events
// (newStreamsSQL) stores each stream's events at versions 1..n, at
// positions that follow the versions, with hashes that chain, and answers
// each append with its own versions and positions. Then the stream's next
// append, which the store hashes on the head it learnt, lands.
func TestNewStreamsBatch(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	var batch []*appendReq
	for i, n := range []int{2, 1, 3} {
		stream := fmt.Sprintf("nsb-%d", i)
		evs := make([]chronicle.Event, n)
		for j := range evs {
			evs[j] = ev("A", fmt.Sprintf(`{"i":%d,"j":%d}`, i, j))
		}
		prepared, digests, err := audit.PrepareAppend(stream, chronicle.NoStream, evs, s.opts.Limits)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, &appendReq{ctx: ctx, stream: stream, expected: chronicle.NoStream, events: prepared, digests: digests, done: make(chan appendOutcome, 1)})
	}
	outs, err := s.runBatch(ctx, s.wpool, batch, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range batch {
		o := outs[i]
		if o.out.err != nil || o.out.dup || o.retry {
			t.Fatalf("%s: %+v, want appended", r.stream, o)
		}
		stored, err := s.ReadStream(ctx, r.stream, chronicle.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != len(r.events) {
			t.Fatalf("%s: %d events stored, want %d", r.stream, len(stored), len(r.events))
		}
		res := o.out.res
		if res.FirstVersion != 1 || res.LastVersion != int64(len(r.events)) ||
			res.FirstPosition != stored[0].Position || res.LastPosition != stored[len(stored)-1].Position {
			t.Errorf("%s: answered %+v, stored at positions %d-%d", r.stream, res, stored[0].Position, stored[len(stored)-1].Position)
		}
		events := make([]audit.Event, len(stored))
		hashes := make([]audit.Hash, len(stored))
		for j, e := range stored {
			if e.Version != int64(j+1) || e.ID != r.events[j].ID || (j > 0 && e.Position <= stored[j-1].Position) {
				t.Errorf("%s: event %d stored as version %d at position %d, id %s (want %s)", r.stream, j, e.Version, e.Position, e.ID, r.events[j].ID)
			}
			events[j], hashes[j] = audit.FromRecorded(e, e.PrevHash), e.Hash
		}
		if err := audit.CheckStream(events, hashes); err != nil {
			t.Errorf("%s: %v", r.stream, err)
		}
		if _, err := s.Append(ctx, r.stream, chronicle.Exact(int64(len(r.events))), []chronicle.Event{ev("B", `{}`)}); err != nil {
			t.Errorf("%s: next append: %v", r.stream, err)
		}
	}
}

// TestCreateRace: writers of two stores racing to create the same streams
// in the same order, in batches: each stream is created exactly once,
// every other attempt gets a conflict, and no acknowledged append is lost.
// (TestCreateBatchLosesRace forces the case of a batch that loses.)
func TestCreateRace(t *testing.T) {
	s := openTest(t, Options{})
	other := openTest(t, Options{Schema: s.schema}) // another process's batches
	ctx := context.Background()
	const streams, racers = 60, 8
	var mu sync.Mutex
	won := map[string]int{}
	var wg sync.WaitGroup
	for w := range racers {
		st := s
		if w%2 == 1 {
			st = other
		}
		wg.Go(func() {
			for i := range streams {
				stream := fmt.Sprintf("race-%d-%d", w/2, i) // writer w/2 of each store
				_, err := st.Append(ctx, stream, chronicle.NoStream, []chronicle.Event{ev("A", `{}`)})
				var conflict *chronicle.ConflictError
				switch {
				case err == nil:
					mu.Lock()
					won[stream]++
					mu.Unlock()
				case errors.As(err, &conflict) && conflict.Actual == 1:
				default:
					t.Errorf("append %s: %v", stream, err)
				}
			}
		})
	}
	wg.Wait()
	for w := range racers / 2 {
		for i := range streams {
			stream := fmt.Sprintf("race-%d-%d", w, i)
			if won[stream] != 1 {
				t.Errorf("%s created %d times", stream, won[stream])
			}
		}
	}
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE stream_id LIKE 'race-%'`).Scan(&n); err != nil || n != streams*racers/2 {
		t.Errorf("%d events stored (%v), want %d", n, err, streams*racers/2)
	}
}

// TestHeadsGenerations: the heads cache keeps at most maxHeads entries,
// keeps the latest half whole, and forgets a stream in both generations.
func TestHeadsGenerations(t *testing.T) {
	var c heads
	for i := range 3 * maxHeads {
		c.set(fmt.Sprint(i), head{version: int64(i)})
	}
	if n := len(c.m) + len(c.old); n > maxHeads {
		t.Errorf("%d heads cached, want at most %d", n, maxHeads)
	}
	for i := 3*maxHeads - maxHeads/2; i < 3*maxHeads; i++ {
		if h, ok := c.get(fmt.Sprint(i)); !ok || h.version != int64(i) {
			t.Fatalf("head %d: %v %v, want it cached", i, h, ok)
		}
	}
	if _, ok := c.get("0"); ok {
		t.Error("the oldest head is still cached")
	}
	old := fmt.Sprint(3*maxHeads - maxHeads) // in the old generation
	if _, ok := c.old[old]; !ok {
		t.Fatalf("head %s not in the old generation", old)
	}
	c.set(old, head{version: -1})
	if h, _ := c.get(old); h.version != -1 {
		t.Errorf("head %s: version %d, want the newer -1", old, h.version)
	}
	c.forget(old)
	if _, ok := c.get(old); ok {
		t.Errorf("head %s still cached after forget", old)
	}
}

// TestCreateBatchLosesRace: a create batch that inserts a stream another
// transaction created after the batch's snapshot fails on streams' key as
// a whole; its appends then run one by one: the lost one is a conflict,
// the other lands.
func TestCreateBatchLosesRace(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var pid int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO streams (stream_id, stream_type, version, last_hash, last_at) VALUES ('lr-taken', 'lr', 1, $1, now())`, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	batch := []*appendReq{newReq(t, s, "lr-free", chronicle.NoStream), newReq(t, s, "lr-taken", chronicle.NoStream)}
	retried := make(chan []*appendReq, 1)
	go func() { retried <- s.commitBatch(ctx, batch) }()
	waitFor(t, func() bool { // the batch waits for our transaction
		var n int
		if err := s.wpool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-retried; len(r) != 0 {
		t.Fatalf("%d appends to run again, want none", len(r))
	}
	if out := <-batch[0].done; out.err != nil || out.dup || out.res.LastVersion != 1 {
		t.Errorf("lr-free: %+v, want version 1 appended", out)
	}
	var conflict *chronicle.ConflictError
	if out := <-batch[1].done; !out.dup || !errors.As(out.conflict, &conflict) || conflict.Actual != 1 {
		t.Errorf("lr-taken: %+v, want a conflict at version 1", out)
	}
}
