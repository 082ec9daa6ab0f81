package feed

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
)

func TestCheckpoint(t *testing.T) {
	for _, cp := range []chronicle.Checkpoint{{}, {TxID: 1, Position: 1}, {TxID: 1 << 63, Position: 1<<63 - 1}} {
		s := EncodeCheckpoint(cp)
		got, err := ParseCheckpoint(s)
		if err != nil || got != cp {
			t.Errorf("%+v -> %q -> %+v, %v", cp, s, got, err)
		}
	}
	good := EncodeCheckpoint(chronicle.Checkpoint{TxID: 7, Position: 7})
	for _, s := range []string{"", "x", good + "A", good[:21] + "B", strings.Repeat("/", 22),
		EncodeCheckpoint(chronicle.Checkpoint{TxID: 1, Position: -1}), EncodeCheckpoint(chronicle.Checkpoint{Position: 3})} {
		if _, err := ParseCheckpoint(s); !errors.Is(err, ErrBadCheckpoint) {
			t.Errorf("ParseCheckpoint(%q): %v, want ErrBadCheckpoint", s, err)
		}
	}
}

// fakeFeed serves events 1..n as Server-Sent Events after Last-Event-ID,
// at most cutAfter a connection, and records the Last-Event-IDs sent.
type fakeFeed struct {
	n         int
	cutAfter  int
	mu        sync.Mutex
	resumedAt []string
}

func (f *fakeFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer tok" {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	start := 1
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		cp, err := ParseCheckpoint(id)
		if err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		start = int(cp.Position) + 1
	}
	f.mu.Lock()
	f.resumedAt = append(f.resumedAt, r.Header.Get("Last-Event-ID"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	for i := start; i <= f.n && i < start+f.cutAfter; i++ {
		cp := EncodeCheckpoint(chronicle.Checkpoint{TxID: uint64(i), Position: int64(i)})
		fmt.Fprintf(w, ": heartbeat\n\nid: %s\nevent: T\ndata: {\"checkpoint\":%q,\"position\":%d,\"type\":\"T\"}\n\n", cp, cp, i)
	}
}

func TestSubscribeResumes(t *testing.T) {
	f := &fakeFeed{n: 10, cutAfter: 3}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx := context.Background()
	var got []int64
	errFull := errors.New("enough")
	err := Subscribe(ctx, srv.URL, "", func(_ context.Context, e Event) error {
		if e.Position == 8 && len(got) == 7 {
			return errFull // refuse event 8 once
		}
		got = append(got, e.Position)
		return nil
	}, Options{Token: "tok", MinBackoff: time.Millisecond})
	var he *HandlerError
	if !errors.As(err, &he) || !errors.Is(err, errFull) || he.Event.Position != 8 {
		t.Fatalf("Subscribe: %v, want a HandlerError at 8", err)
	}
	// Again from the last accepted event: 8 is delivered now.
	last := EncodeCheckpoint(chronicle.Checkpoint{TxID: 7, Position: 7})
	done := errors.New("done")
	err = Subscribe(ctx, srv.URL, last, func(_ context.Context, e Event) error {
		got = append(got, e.Position)
		if e.Position == 10 {
			return done
		}
		return nil
	}, Options{Token: "tok", MinBackoff: time.Millisecond})
	if !errors.Is(err, done) {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[1 2 3 4 5 6 7 8 9 10]" {
		t.Errorf("handled %v", got)
	}
	if !strings.Contains(fmt.Sprint(f.resumedAt), EncodeCheckpoint(chronicle.Checkpoint{TxID: 3, Position: 3})) {
		t.Errorf("resumed at %v: never after event 3", f.resumedAt)
	}
}

func TestSubscribeStatusError(t *testing.T) {
	srv := httptest.NewServer(&fakeFeed{n: 1, cutAfter: 1})
	defer srv.Close()
	err := Subscribe(context.Background(), srv.URL, "", func(context.Context, Event) error { return nil }, Options{Token: "wrong"})
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Subscribe: %v, want a StatusError 401", err)
	}
	if err := Subscribe(context.Background(), srv.URL, "bad", nil, Options{}); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("Subscribe from a bad checkpoint: %v", err)
	}
}
