package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
)

// TestStreamVersionBatched: StreamVersion calls that find the reader busy
// are answered together, and each answer is at least the version every
// append that ended before the call left (and at most what the stream
// reached before it returned): read-your-writes for every caller.
func TestStreamVersionBatched(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	const streams, readers, rounds = 4, 16, 30
	var committed [streams]struct {
		sync.Mutex
		v int64
	}
	for i := range streams {
		if _, err := s.Append(ctx, fmt.Sprintf("sv-%d", i), chronicle.NoStream, []chronicle.Event{ev("A", `{}`)}); err != nil {
			t.Fatal(err)
		}
		committed[i].v = 1
	}
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for i := range streams {
		writers.Go(func() {
			for v := int64(1); ; v++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Append(ctx, fmt.Sprintf("sv-%d", i), chronicle.Exact(v), []chronicle.Event{ev("A", `{}`)}); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				committed[i].Lock()
				committed[i].v = v + 1
				committed[i].Unlock()
			}
		})
	}
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			for k := range rounds {
				i := (r + k) % streams
				committed[i].Lock()
				before := committed[i].v
				committed[i].Unlock()
				v, err := s.StreamVersion(ctx, fmt.Sprintf("sv-%d", i))
				if err != nil {
					t.Errorf("stream version: %v", err)
					return
				}
				committed[i].Lock()
				after := committed[i].v
				committed[i].Unlock()
				// A write may have landed but not yet been recorded: one more.
				if v < before || v > after+1 {
					t.Errorf("sv-%d: version %d, want %d..%d", i, v, before, after+1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	writers.Wait()
	if v, err := s.StreamVersion(ctx, "sv-none"); err != nil || v != 0 {
		t.Errorf("a stream with no events: %d, %v; want 0", v, err)
	}
	if s.versioned.Load() == 0 {
		t.Errorf("no StreamVersion call was answered with others: %d readers never overlapped", readers)
	}
}

// TestStreamVersionCancel: a call waiting for a busy reader leaves when its
// context ends, and the calls after it are answered.
func TestStreamVersionCancel(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, "svc", chronicle.NoStream, []chronicle.Event{ev("A", `{}`)}); err != nil {
		t.Fatal(err)
	}
	// Hold the only reader's place, as a query that hangs would.
	s.vmu.Lock()
	s.vreaders = s.opts.VersionReaders
	s.vreading.Add(1)
	s.vmu.Unlock()
	cctx, cancel := context.WithCancel(ctx)
	got := make(chan error, 1)
	go func() {
		_, err := s.StreamVersion(cctx, "svc")
		got <- err
	}()
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", err)
	}
	// Give the place back as a reader ending with calls pending does.
	answered := make(chan int64, 1)
	go func() {
		v, err := s.StreamVersion(ctx, "svc")
		if err != nil {
			t.Error(err)
		}
		answered <- v
	}()
	waitFor(t, func() bool {
		s.vmu.Lock()
		defer s.vmu.Unlock()
		return len(s.vpending) == 2
	})
	s.vmu.Lock()
	go s.readVersions()
	s.vmu.Unlock()
	if v := <-answered; v != 1 {
		t.Errorf("version %d, want 1", v)
	}
}

// TestStreamVersionAbandoned: a grouped query whose callers have all given
// up is cancelled, so a query that hangs (here on a table lock) does not hold
// the reader's place for the calls that come after.
func TestStreamVersionAbandoned(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, "sva", chronicle.NoStream, []chronicle.Event{ev("A", `{}`)}); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE streams IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	readers := func() (int, int) {
		s.vmu.Lock()
		defer s.vmu.Unlock()
		return s.vreaders, len(s.vpending)
	}
	call := func(ctx context.Context) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := s.StreamVersion(ctx, "sva")
			done <- err
		}()
		return done
	}
	actx, acancel := context.WithCancel(ctx)
	a := call(actx) // reads alone, and waits for the lock
	waitFor(t, func() bool { n, _ := readers(); return n == 1 })
	bctx, bcancel := context.WithCancel(ctx)
	b := call(bctx) // waits for a's place
	waitFor(t, func() bool { _, p := readers(); return p == 1 })
	acancel() // b's query starts, and waits for the lock too
	if err := <-a; err == nil {
		t.Fatal("a: no error, want its cancellation")
	}
	bcancel()
	if err := <-b; !errors.Is(err, context.Canceled) {
		t.Fatalf("b: %v, want context.Canceled", err)
	}
	waitFor(t, func() bool { n, _ := readers(); return n == 0 }) // b's query given up
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := s.StreamVersion(ctx, "sva"); err != nil || v != 1 {
		t.Errorf("after the lock: %d, %v; want 1", v, err)
	}
}

// TestReplicaStreamVersion: a Replica answers StreamVersion as its primary
// does, one call alone and several at once (here the "standby" is the
// primary's own database).
func TestReplicaStreamVersion(t *testing.T) {
	s := openTest(t, Options{})
	r, err := OpenReplica(context.Background(), testURL(t), s, ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Append(ctx, "rsv", chronicle.NoStream, []chronicle.Event{ev("A", `{}`), ev("A", `{}`)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if v, err := r.StreamVersion(ctx, "rsv"); err != nil || v != 2 {
				t.Errorf("replica: %d, %v; want 2", v, err)
			}
		})
	}
	wg.Wait()
}
