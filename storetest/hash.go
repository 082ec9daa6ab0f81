package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// Every stored event carries the hash of API.md, chained to its stream's
// previous event, however it was appended: alone, several at once,
// concurrently with Any, in group commit, through the savepoint path, and
// retried.
func testHashChain(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"batch", Options{}},
		// BeforeCommit makes the backends append one by one under savepoints.
		{"savepoints", Options{BeforeCommit: func(string, []chronicle.Event) error { return nil }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.Open(t, tc.opts)
			ctx := context.Background()
			var streams []string

			// Single appends, with and without metadata, then a multi-event one.
			single := "order-hash-single"
			streams = append(streams, single)
			for i := range 3 {
				e := newEvent("Single", fmt.Sprintf(`{"b": [1, 2.50, "x"], "a": %d}`, i))
				if i == 1 {
					e.Metadata = json.RawMessage(`{"z": "\u00e9", "actor": "alice"}`)
				}
				mustAppend(t, s, single, chronicle.Any, []chronicle.Event{e})
			}
			multi := newEvents(5, "Multi")
			multi[2].SchemaVersion = 3
			multi[3].Metadata = json.RawMessage(`{}`)
			mustAppend(t, s, single, chronicle.Exact(3), multi)

			// A new stream, several events at once.
			created := "order-hash-created"
			streams = append(streams, created)
			mustAppend(t, s, created, chronicle.NoStream, newEvents(4, "Created"))
			mustAppend(t, s, created, chronicle.Exact(4), newEvents(2, "After"))

			// A retry writes nothing and changes no hash.
			before := mustReadStream(t, s, single, chronicle.ReadStreamOptions{})
			mustAppend(t, s, single, chronicle.Exact(3), multi)
			after := mustReadStream(t, s, single, chronicle.ReadStreamOptions{})
			for i := range after {
				if after[i].Hash != before[i].Hash {
					t.Fatalf("v%d: hash changed by a retried append", after[i].Version)
				}
			}

			// Concurrent appends with Any to one stream, and to many streams
			// at once (group commit puts them in one batch).
			const n = 40
			shared := "order-hash-shared"
			streams = append(streams, shared)
			for i := range n / 4 {
				streams = append(streams, fmt.Sprintf("order-hash-own%d", i))
			}
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					stream := shared
					if i%2 == 1 {
						stream = fmt.Sprintf("order-hash-own%d", i/4)
					}
					_, errs[i] = s.Append(ctx, stream, chronicle.Any, newEvents(1+i%3, "Concurrent"))
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("appender %d: %v", i, err)
				}
			}

			total := 0
			for _, stream := range streams {
				evs := mustReadStream(t, s, stream, chronicle.ReadStreamOptions{})
				checkHashChain(t, evs)
				total += len(evs)
			}
			// ReadAll returns the same hashes.
			all := readAllPaged(t, s, 7, chronicle.ReadAllOptions{})
			if len(all) != total {
				t.Fatalf("ReadAll: %d events, streams hold %d", len(all), total)
			}
			byStream := map[string][]chronicle.RecordedEvent{}
			for _, e := range all {
				byStream[e.StreamID] = append(byStream[e.StreamID], e)
			}
			for _, evs := range byStream {
				checkHashChain(t, evs)
			}
		})
	}
}

// checkHashChain recomputes the hash of every event of one stream (all of
// it, in version order) from what was read, and checks each link.
func checkHashChain(t testing.TB, evs []chronicle.RecordedEvent) {
	t.Helper()
	if len(evs) == 0 {
		t.Fatal("no events to check")
	}
	events := make([]audit.Event, len(evs))
	hashes := make([]audit.Hash, len(evs))
	for i, e := range evs {
		events[i] = audit.FromRecorded(e, e.PrevHash)
		hashes[i] = e.Hash
	}
	if evs[0].Version != 1 {
		t.Fatalf("%s starts at v%d", evs[0].StreamID, evs[0].Version)
	}
	if err := audit.CheckStream(events, hashes); err != nil {
		t.Fatal(err)
	}
}
