package chronicle_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
)

// logStore is a Store whose ReadAll pages a fixed log; it records the reads.
type logStore struct {
	chronicle.Store // other methods: unused
	log             []chronicle.RecordedEvent
	failAt          int64 // ReadAll after this position fails; 0: never

	mu    sync.Mutex
	reads []chronicle.Checkpoint
	busy  int // reads in flight
	most  int // the most reads ever in flight at once
}

var errRead = errors.New("read failed")

func (s *logStore) ReadAll(ctx context.Context, from chronicle.Checkpoint, opts chronicle.ReadAllOptions) ([]chronicle.RecordedEvent, error) {
	s.mu.Lock()
	s.reads = append(s.reads, from)
	s.busy++
	s.most = max(s.most, s.busy)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy--
		s.mu.Unlock()
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.failAt > 0 && from.Position >= s.failAt {
		return nil, errRead
	}
	var out []chronicle.RecordedEvent
	for _, e := range s.log {
		if from.Before(e.Checkpoint()) && len(out) < opts.Limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func newLogStore(n int) *logStore {
	s := &logStore{}
	for i := 1; i <= n; i++ {
		// Two events a transaction: pages compare whole checkpoints.
		s.log = append(s.log, chronicle.RecordedEvent{Position: int64(i), TxID: uint64(100 + (i+1)/2)})
	}
	return s
}

func TestReadAhead(t *testing.T) {
	for _, tc := range []struct {
		n, limit int
		pages    []int // page sizes wanted
	}{
		{0, 10, nil},
		{5, 10, []int{5}},
		{10, 10, []int{10}}, // a full last page: one more read finds nothing
		{25, 10, []int{10, 10, 5}},
		{2500, 0, []int{1000, 1000, 500}}, // 0: the default limit
	} {
		s := newLogStore(tc.n)
		var got []int
		var seen []chronicle.RecordedEvent
		for page, err := range chronicle.ReadAhead(t.Context(), s, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: tc.limit}) {
			if err != nil {
				t.Fatalf("n=%d: %v", tc.n, err)
			}
			got = append(got, len(page))
			seen = append(seen, page...)
		}
		if !slices.Equal(got, tc.pages) {
			t.Errorf("n=%d limit=%d: pages %v, want %v", tc.n, tc.limit, got, tc.pages)
		}
		if len(seen) != tc.n {
			t.Fatalf("n=%d: read %d events", tc.n, len(seen))
		}
		for i, e := range seen {
			if e.Checkpoint() != s.log[i].Checkpoint() {
				t.Fatalf("n=%d: event %d is %+v, want %+v", tc.n, i, e, s.log[i])
			}
		}
		if s.most > 1 {
			t.Errorf("n=%d: %d reads in flight at once, want at most 1", tc.n, s.most)
		}
	}
}

func TestReadAheadFrom(t *testing.T) {
	s := newLogStore(30)
	from := s.log[11].Checkpoint()
	var first chronicle.RecordedEvent
	n := 0
	for page, err := range chronicle.ReadAhead(t.Context(), s, from, chronicle.ReadAllOptions{Limit: 7}) {
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			first = page[0]
		}
		n += len(page)
	}
	if n != 18 || first.Checkpoint() != s.log[12].Checkpoint() {
		t.Errorf("from %+v: %d events starting at %+v, want 18 starting at %+v", from, n, first, s.log[12])
	}
	if s.reads[0] != from {
		t.Errorf("first read from %+v, want %+v", s.reads[0], from)
	}
}

// The reader runs ahead of a caller that holds a page, up to four pages,
// and breaking out of the loop waits for the read in flight.
func TestReadAheadBreak(t *testing.T) {
	s := newLogStore(100)
	reads := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.reads)
	}
	const ahead = 4 // readAheadPages
	pages := 0
	for _, err := range chronicle.ReadAhead(t.Context(), s, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 10}) {
		if err != nil {
			t.Fatal(err)
		}
		if pages++; pages == 1 {
			// Holding page 1: the reader goes on to pages 2 to 5.
			deadline := time.Now().Add(10 * time.Second)
			for reads() < 1+ahead {
				if time.Now().After(deadline) {
					t.Fatalf("%d reads while the caller holds page 1, want %d", reads(), 1+ahead)
				}
				runtime.Gosched()
			}
		}
		if pages == 2 {
			break
		}
	}
	// The loop has returned: the read in flight has been waited for.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy != 0 {
		t.Errorf("%d reads still in flight after break", s.busy)
	}
	if s.most != 1 {
		t.Errorf("%d reads at once, want 1", s.most)
	}
	if len(s.reads) > 2+ahead {
		t.Errorf("%d reads for 2 pages, want at most %d", len(s.reads), 2+ahead)
	}
}

func TestReadAheadError(t *testing.T) {
	s := newLogStore(100)
	s.failAt = 20
	var n int
	var errs []error
	for page, err := range chronicle.ReadAhead(t.Context(), s, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 10}) {
		if err != nil {
			if page != nil {
				t.Errorf("a page with the error: %d events", len(page))
			}
			errs = append(errs, err)
			continue
		}
		n += len(page)
	}
	if n != 20 || len(errs) != 1 || !errors.Is(errs[0], errRead) {
		t.Errorf("read %d events, errors %v; want 20 events then errRead once", n, errs)
	}
}

func TestReadAheadCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for page, err := range chronicle.ReadAhead(ctx, newLogStore(10), chronicle.Checkpoint{}, chronicle.ReadAllOptions{}) {
		if !errors.Is(err, context.Canceled) || page != nil {
			t.Errorf("canceled: got %d events, %v", len(page), err)
		}
	}
}
