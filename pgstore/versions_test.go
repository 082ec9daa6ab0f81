package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

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
