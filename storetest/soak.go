package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
)

// Acceptance 6: many writers, forced rollbacks, and a live subscriber that
// must see every committed event exactly once, in one order.
func testSoak(t *testing.T, h Harness) {
	writers, appends, streams := 16, 2000, 500
	if testing.Short() || h.SmallSoak {
		appends = 200
	}
	s := h.Open(t, Options{BeforeCommit: func(string, []chronicle.Event) error {
		// math/rand/v2's top-level functions are safe for concurrent use.
		if rand.IntN(10) == 0 {
			return errInjected
		}
		return nil
	}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	type appended struct {
		stream string
		ids    []string
		res    chronicle.AppendResult
	}
	committed := make([][]appended, writers)
	rolledBack := make([][]string, writers)
	writerErr := make([]error, writers)
	writersDone := make(chan struct{})

	var subGot []chronicle.RecordedEvent
	var subErr error
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		subGot, subErr = subscribe(ctx, s, writersDone)
	}()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range appends {
				n := rand.IntN(streams)
				stream := fmt.Sprintf("soak%d-s%d", n%4, n) // four stream types
				evs := make([]chronicle.Event, 1+rand.IntN(3))
				ids := make([]string, len(evs))
				for j := range evs {
					evs[j] = newEvent("Soaked", fmt.Sprintf(`{"w":%d,"i":%d,"j":%d}`, w, i, j))
					ids[j] = evs[j].ID
				}
				res, err := s.Append(ctx, stream, chronicle.Any, evs)
				switch {
				case err == nil:
					committed[w] = append(committed[w], appended{stream, ids, res})
				case errors.Is(err, errInjected):
					rolledBack[w] = append(rolledBack[w], ids...)
				default:
					writerErr[w] = fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(writersDone)
	<-subDone
	for _, err := range writerErr {
		if err != nil {
			t.Fatal(err)
		}
	}
	if subErr != nil {
		t.Fatalf("subscriber: %v", subErr)
	}

	full := readAllPaged(t, s, 1000, chronicle.ReadAllOptions{})
	checkOrdered(t, full, chronicle.Checkpoint{})
	// The subscriber saw the log exactly as a final read does: same events, same order.
	if len(subGot) != len(full) {
		t.Fatalf("subscriber received %d events, the log has %d", len(subGot), len(full))
	}
	for i := range full {
		if subGot[i].ID != full[i].ID || subGot[i].Checkpoint() != full[i].Checkpoint() {
			t.Fatalf("event %d: subscriber got %s at %+v, log has %s at %+v", i, subGot[i].ID, subGot[i].Checkpoint(), full[i].ID, full[i].Checkpoint())
		}
	}

	byID := make(map[string]chronicle.RecordedEvent, len(full))
	for _, e := range full {
		if _, dup := byID[e.ID]; dup {
			t.Fatalf("event %s appears twice in the log", e.ID)
		}
		byID[e.ID] = e
	}
	nCommitted, nRolledBack, nAppends := 0, 0, 0
	for w := range writers {
		for _, a := range committed[w] {
			nAppends++
			for j, id := range a.ids {
				e, ok := byID[id]
				if !ok {
					t.Fatalf("acknowledged event %s is missing from the log", id)
				}
				if e.StreamID != a.stream || e.Version != a.res.FirstVersion+int64(j) {
					t.Fatalf("event %s is %s v%d, the append said %s v%d", id, e.StreamID, e.Version, a.stream, a.res.FirstVersion+int64(j))
				}
				if (j == 0 && e.Position != a.res.FirstPosition) || (j == len(a.ids)-1 && e.Position != a.res.LastPosition) {
					t.Fatalf("event %s at position %d, the append said %d..%d", id, e.Position, a.res.FirstPosition, a.res.LastPosition)
				}
				nCommitted++
			}
		}
		for _, id := range rolledBack[w] {
			if _, ok := byID[id]; ok {
				t.Fatalf("event %s of a rolled-back append is in the log", id)
			}
			nRolledBack++
		}
	}
	if nCommitted != len(full) {
		t.Fatalf("%d events acknowledged, the log has %d", nCommitted, len(full))
	}
	if nRolledBack == 0 {
		t.Fatalf("no append was rolled back: the fault injection did not run")
	}
	// Every stream is exactly versions 1..n.
	perStream := map[string]int64{}
	for _, e := range full {
		perStream[e.StreamID]++
		if e.Version != perStream[e.StreamID] {
			t.Fatalf("stream %s: version %d follows %d", e.StreamID, e.Version, perStream[e.StreamID]-1)
		}
	}
	for st, n := range perStream {
		if v := mustVersion(t, s, st); v != n {
			t.Fatalf("StreamVersion(%s) = %d, the log holds %d events", st, v, n)
		}
	}
	t.Logf("%d appends (%d events) committed, %d events rolled back, %d streams", nAppends, nCommitted, nRolledBack, len(perStream))
}

// subscribe follows the log as a projection would: it reads from its
// checkpoint whenever Notify (or a slow safety poll) wakes it, and returns
// what it received once the writers are done and it has caught up.
func subscribe(ctx context.Context, s Backend, writersDone <-chan struct{}) ([]chronicle.RecordedEvent, error) {
	wake := s.Notify(ctx)
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	var got []chronicle.RecordedEvent
	seen := map[string]bool{}
	var from chronicle.Checkpoint
	const limit = 500
	for {
		done := false
		select {
		case <-writersDone:
			// Every append has returned: wait until all acknowledged ones
			// are visible, then read until nothing is left.
			if tr, ok := s.(*tracked); ok {
				if err := tr.settle(ctx); err != nil {
					return got, err
				}
			}
			done = true
		default:
		}
		page, err := s.ReadAll(ctx, from, chronicle.ReadAllOptions{Limit: limit})
		if err != nil {
			return got, err
		}
		for _, e := range page {
			if !from.Before(e.Checkpoint()) {
				return got, fmt.Errorf("checkpoint %+v after %+v: order went backwards", e.Checkpoint(), from)
			}
			if seen[e.ID] {
				return got, fmt.Errorf("event %s received twice", e.ID)
			}
			seen[e.ID] = true
			from = e.Checkpoint()
		}
		got = append(got, page...)
		switch {
		case len(page) > 0:
			continue // there may be more already
		case done:
			return got, nil // read after every append returned, and found nothing new
		}
		select {
		case <-wake:
		case <-poll.C:
		case <-writersDone:
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
}
