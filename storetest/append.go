package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
)

// Acceptance 1: every expected version against a missing and an existing stream.
func testExpectedVersion(t *testing.T, h Harness) {
	tests := []struct {
		name     string
		existing int64 // events in the stream before the append; 0 = missing
		exp      chronicle.ExpectedVersion
		ok       bool
	}{
		{"any/missing", 0, chronicle.Any, true},
		{"any/existing", 2, chronicle.Any, true},
		{"nostream/missing", 0, chronicle.NoStream, true},
		{"nostream/existing", 2, chronicle.NoStream, false},
		{"exists/missing", 0, chronicle.StreamExists, false},
		{"exists/existing", 2, chronicle.StreamExists, true},
		{"exact0/missing", 0, chronicle.Exact(0), true},
		{"exact0/existing", 2, chronicle.Exact(0), false},
		{"exact/missing", 0, chronicle.Exact(2), false},
		{"exact/existing", 2, chronicle.Exact(2), true},
		{"exactlower/existing", 2, chronicle.Exact(1), false},
		{"exacthigher/existing", 2, chronicle.Exact(3), false},
	}
	s := h.Open(t, Options{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := fmt.Sprintf("order-ev%d", i)
			if tt.existing > 0 {
				mustAppend(t, s, stream, chronicle.NoStream, newEvents(int(tt.existing), "Seeded"))
			}
			evs := newEvents(3, "Tested")
			res, err := s.Append(context.Background(), stream, tt.exp, evs)
			if !tt.ok {
				checkConflict(t, err, stream, tt.exp, tt.existing)
				if v := mustVersion(t, s, stream); v != tt.existing {
					t.Errorf("version after conflict = %d, want %d", v, tt.existing)
				}
				return
			}
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			want := chronicle.AppendResult{StreamID: stream, FirstVersion: tt.existing + 1, LastVersion: tt.existing + 3,
				FirstPosition: res.FirstPosition, LastPosition: res.LastPosition}
			if res != want {
				t.Errorf("result = %+v, want %+v", res, want)
			}
			got := mustReadStream(t, s, stream, chronicle.ReadStreamOptions{})
			checkVersions(t, got, 1)
			if len(got) != int(tt.existing)+3 {
				t.Fatalf("stream has %d events, want %d", len(got), tt.existing+3)
			}
			if got[tt.existing].Position != res.FirstPosition || got[len(got)-1].Position != res.LastPosition {
				t.Errorf("positions %d..%d, result says %d..%d", got[tt.existing].Position, got[len(got)-1].Position, res.FirstPosition, res.LastPosition)
			}
		})
	}
}

// What goes in comes out, with the fields the store fills in.
func testRecordedFields(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	stream := "order-ord_fields"
	in := []chronicle.Event{
		{ID: strings.ToUpper(chronicle.NewEventID()), Type: "OrderCreated", SchemaVersion: 3,
			Data:     []byte(`{"customer_id":"cust_1","total":9999,"items":[{"sku":"a","qty":2}],"note":"h\u00e9llo \ud83d\ude00 ü"}`),
			Metadata: chronicle.Metadata{CorrelationID: "corr-1", CausationID: "cause-1"}.JSON()},
		{Type: "Noted", Data: []byte(`"just a string"`)}, // id assigned, schema version defaulted
		{Type: "Counted", Data: []byte(`42`), Metadata: []byte(`{}`)},
	}
	before := time.Now().Add(-time.Minute)
	res := mustAppend(t, s, stream, chronicle.NoStream, in)
	after := time.Now().Add(time.Minute)
	got := mustReadStream(t, s, stream, chronicle.ReadStreamOptions{})
	if len(got) != len(in) {
		t.Fatalf("got %d events, want %d", len(got), len(in))
	}
	checkVersions(t, got, 1)
	checkOrdered(t, got, chronicle.Checkpoint{})
	for i, e := range got {
		if e.StreamID != stream || e.StreamType != "order" {
			t.Errorf("event %d: stream %q type %q", i, e.StreamID, e.StreamType)
		}
		if e.Position <= 0 || e.TxID == 0 {
			t.Errorf("event %d: position %d txid %d, want both > 0", i, e.Position, e.TxID)
		}
		if e.RecordedAt.Before(before) || e.RecordedAt.After(after) {
			t.Errorf("event %d: recorded at %v, not near now", i, e.RecordedAt)
		}
		if e.Type != in[i].Type || !jsonEqual(e.Data, in[i].Data) || !jsonEqual(e.Metadata, in[i].Metadata) {
			t.Errorf("event %d: got %s %s %s, want %s %s %s", i, e.Type, e.Data, e.Metadata, in[i].Type, in[i].Data, in[i].Metadata)
		}
		if _, err := chronicle.ParseEventID(e.ID); err != nil || e.ID != strings.ToLower(e.ID) {
			t.Errorf("event %d: id %q is not a canonical UUID", i, e.ID)
		}
	}
	if got[0].ID != strings.ToLower(in[0].ID) {
		t.Errorf("id = %q, want %q", got[0].ID, strings.ToLower(in[0].ID))
	}
	if got[0].SchemaVersion != 3 || got[1].SchemaVersion != 1 {
		t.Errorf("schema versions %d, %d, want 3, 1", got[0].SchemaVersion, got[1].SchemaVersion)
	}
	if len(got[1].Metadata) != 0 {
		t.Errorf("metadata of an event appended without any = %q, want empty", got[1].Metadata)
	}
	if res.FirstPosition != got[0].Position || res.LastPosition != got[2].Position || res.FirstVersion != 1 || res.LastVersion != 3 {
		t.Errorf("result %+v does not match stored events", res)
	}
}

var errInjected = errors.New("storetest: injected failure")

// Acceptance 2: an append that fails before commit leaves nothing behind.
func testAtomicAppend(t *testing.T, h Harness) {
	var mu sync.Mutex
	fail := false
	s := h.Open(t, Options{BeforeCommit: func(stream string, events []chronicle.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if fail && len(events) == 10 {
			return errInjected
		}
		return nil
	}})
	setFail := func(v bool) { mu.Lock(); fail = v; mu.Unlock() }
	ctx := context.Background()

	setFail(true)
	_, err := s.Append(ctx, "order-atomic", chronicle.NoStream, newEvents(10, "Failed"))
	if !errors.Is(err, errInjected) {
		t.Fatalf("Append with failing hook: error = %v, want the injected error", err)
	}
	checkEmpty(t, s, "order-atomic")

	setFail(false)
	res := mustAppend(t, s, "order-atomic", chronicle.NoStream, newEvents(10, "Landed"))
	if res.FirstVersion != 1 || res.LastVersion != 10 {
		t.Fatalf("append after rollback got versions %d..%d, want 1..10", res.FirstVersion, res.LastVersion)
	}
	settle(t, s) // so that Head cannot move on its own below
	headBefore, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A failure on an existing stream leaves it as it was.
	setFail(true)
	if _, err := s.Append(ctx, "order-atomic", chronicle.Exact(10), newEvents(10, "Failed")); !errors.Is(err, errInjected) {
		t.Fatalf("second failing append: error = %v, want the injected error", err)
	}
	setFail(false)
	if v := mustVersion(t, s, "order-atomic"); v != 10 {
		t.Fatalf("version after failed append = %d, want 10", v)
	}
	if h, err := s.Head(ctx); err != nil || h != headBefore {
		t.Fatalf("Head after failed append = %+v, %v, want %+v", h, err, headBefore)
	}
	mustAppend(t, s, "order-atomic", chronicle.Exact(10), newEvents(10, "Landed"))
	got := mustReadStream(t, s, "order-atomic", chronicle.ReadStreamOptions{})
	checkVersions(t, got, 1)
	if len(got) != 20 {
		t.Fatalf("stream has %d events, want 20", len(got))
	}
	for _, e := range readAllPaged(t, s, 1000, chronicle.ReadAllOptions{}) {
		if e.Type == "Failed" {
			t.Fatalf("event of a failed append is visible: %+v", e)
		}
	}
}

// Acceptance 3: 100 appenders racing with the same expected version.
func testConcurrentSameVersion(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	const n = 100
	for _, tc := range []struct {
		name   string
		seed   int64
		expect chronicle.ExpectedVersion
	}{{"nostream", 0, chronicle.NoStream}, {"exact", 3, chronicle.Exact(3)}} {
		t.Run(tc.name, func(t *testing.T) {
			stream := "order-race_" + tc.name
			if tc.seed > 0 {
				mustAppend(t, s, stream, chronicle.NoStream, newEvents(int(tc.seed), "Seeded"))
			}
			results := make([]chronicle.AppendResult, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					results[i], errs[i] = s.Append(context.Background(), stream, tc.expect, newEvents(2, "Raced"))
				})
			}
			close(start)
			wg.Wait()
			winners := 0
			for i, err := range errs {
				if err == nil {
					winners++
					if results[i].FirstVersion != tc.seed+1 || results[i].LastVersion != tc.seed+2 {
						t.Errorf("winner got versions %d..%d", results[i].FirstVersion, results[i].LastVersion)
					}
					continue
				}
				checkConflict(t, err, stream, tc.expect, tc.seed+2)
			}
			if winners != 1 {
				t.Fatalf("%d appends succeeded, want exactly 1", winners)
			}
			got := mustReadStream(t, s, stream, chronicle.ReadStreamOptions{})
			checkVersions(t, got, 1)
			if len(got) != int(tc.seed)+2 {
				t.Fatalf("stream has %d events, want %d", len(got), tc.seed+2)
			}
		})
	}
}

// Acceptance 3: with Any, every append lands and none is lost.
func testConcurrentAny(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	const n = 100
	stream := "order-any"
	results := make([]chronicle.AppendResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.Append(context.Background(), stream, chronicle.Any, newEvents(1+i%3, "Any"))
		})
	}
	close(start)
	wg.Wait()
	total := 0
	owner := map[int64]int{} // version -> appender
	for i, err := range errs {
		if err != nil {
			t.Fatalf("appender %d: %v", i, err)
		}
		r := results[i]
		if int(r.LastVersion-r.FirstVersion)+1 != 1+i%3 {
			t.Errorf("appender %d: versions %d..%d for %d events", i, r.FirstVersion, r.LastVersion, 1+i%3)
		}
		for v := r.FirstVersion; v <= r.LastVersion; v++ {
			if j, dup := owner[v]; dup {
				t.Fatalf("version %d given to appenders %d and %d", v, j, i)
			}
			owner[v] = i
		}
		total += 1 + i%3
	}
	got := mustReadStream(t, s, stream, chronicle.ReadStreamOptions{})
	checkVersions(t, got, 1)
	if len(got) != total {
		t.Fatalf("stream has %d events, %d were acknowledged", len(got), total)
	}
	if v := mustVersion(t, s, stream); v != int64(total) {
		t.Fatalf("StreamVersion = %d, want %d", v, total)
	}
}

// Acceptance 4: a retried append is recognised; a reused id is not a retry.
func testIdempotentRetry(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	ctx := context.Background()

	// Original appends: a first one with NoStream, then more with Exact.
	first := newEvents(3, "Created")
	firstRes := mustAppend(t, s, "order-retry", chronicle.NoStream, first)
	second := newEvents(2, "Changed")
	second[1].Metadata = []byte(`{"correlation_id":"c1"}`)
	secondRes := mustAppend(t, s, "order-retry", chronicle.Exact(3), second)
	mustAppend(t, s, "order-other", chronicle.NoStream, newEvents(1, "Other"))
	settle(t, s) // so that Head cannot move on its own below
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}

	unchanged := func(t *testing.T) {
		t.Helper()
		if h2, err := s.Head(ctx); err != nil || h2 != head {
			t.Fatalf("Head = %+v, %v; want %+v (nothing written)", h2, err, head)
		}
		if n := len(mustReadStream(t, s, "order-retry", chronicle.ReadStreamOptions{})); n != 5 {
			t.Fatalf("stream has %d events, want 5", n)
		}
	}
	retries := []struct {
		name string
		exp  chronicle.ExpectedVersion
		evs  []chronicle.Event
		want chronicle.AppendResult
	}{
		{"exact", chronicle.Exact(3), second, secondRes},
		{"any", chronicle.Any, second, secondRes},
		{"exists", chronicle.StreamExists, second, secondRes},
		// The stream has moved on since; the retry is still the same append.
		{"nostream", chronicle.NoStream, first, firstRes},
		{"uppercase ids", chronicle.NoStream, withIDs(first, strings.ToUpper), firstRes},
	}
	for _, r := range retries {
		t.Run("retry/"+r.name, func(t *testing.T) {
			res, err := s.Append(ctx, "order-retry", r.exp, r.evs)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if res != r.want {
				t.Errorf("retry result = %+v, want the original %+v", res, r.want)
			}
			unchanged(t)
		})
	}

	otherData := clone(second)
	otherData[0].Data = []byte(`{"n":99}`)
	otherType := clone(second)
	otherType[1].Type = "Different"
	otherMeta := clone(second)
	otherMeta[1].Metadata = []byte(`{"correlation_id":"c2"}`)
	otherSchema := clone(second)
	otherSchema[0].SchemaVersion = 2
	partial := append(clone(second), newEvent("Changed", `{"n":3}`))
	partialFirstNew := append([]chronicle.Event{newEvent("Changed", `{"n":0}`)}, clone(second)...)
	swapped := []chronicle.Event{second[1], second[0]}

	dups := []struct {
		name   string
		stream string
		exp    chronicle.ExpectedVersion
		evs    []chronicle.Event
	}{
		{"other data", "order-retry", chronicle.Exact(3), otherData},
		{"other type", "order-retry", chronicle.Exact(3), otherType},
		{"other metadata", "order-retry", chronicle.Exact(3), otherMeta},
		{"other schema version", "order-retry", chronicle.Exact(3), otherSchema},
		{"partial overlap, new last", "order-retry", chronicle.Exact(3), partial},
		{"partial overlap, new first", "order-retry", chronicle.Any, partialFirstNew},
		{"other order", "order-retry", chronicle.Exact(3), swapped},
		{"other stream", "order-elsewhere", chronicle.Any, second},
		{"other place", "order-retry", chronicle.Exact(1), second},
		{"at the end", "order-retry", chronicle.Exact(5), second},
		// Stored, in order and in place, but not as one earlier append.
		{"subset, first events", "order-retry", chronicle.Exact(3), clone(second[:1])},
		{"subset, last events", "order-retry", chronicle.Exact(4), clone(second[1:])},
		{"subset, middle event", "order-retry", chronicle.Exact(1), clone(first[1:2])},
		{"subset, any", "order-retry", chronicle.Any, clone(first[:2])},
		{"two appends joined", "order-retry", chronicle.NoStream, append(clone(first), second...)},
		{"two appends joined, any", "order-retry", chronicle.Any, append(clone(first), second...)},
	}
	for _, d := range dups {
		t.Run("duplicate/"+d.name, func(t *testing.T) {
			_, err := s.Append(ctx, d.stream, d.exp, d.evs)
			if !errors.Is(err, chronicle.ErrDuplicateEvent) {
				t.Fatalf("error = %v, want ErrDuplicateEvent", err)
			}
			var de *chronicle.DuplicateEventError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DuplicateEventError", err, err)
			}
			unchanged(t)
			if d.stream != "order-retry" && mustVersion(t, s, d.stream) != 0 {
				t.Fatalf("stream %q was written", d.stream)
			}
		})
	}
}

func clone(evs []chronicle.Event) []chronicle.Event { return append([]chronicle.Event(nil), evs...) }

func withIDs(evs []chronicle.Event, f func(string) string) []chronicle.Event {
	out := clone(evs)
	for i := range out {
		out[i].ID = f(out[i].ID)
	}
	return out
}

// Invariant 3 under concurrency: an append and retries of it (same ids,
// same content, same place) racing each other all get the one result, as
// they would one after another, and the events land once. A retry told
// "conflict" would make its caller append again under new ids.
func testConcurrentRetry(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"grouped", Options{}},
		// A BeforeCommit hook, even one that does nothing, may make a
		// backend commit appends one by one (PostgreSQL: a savepoint each).
		{"one by one", Options{BeforeCommit: func(string, []chronicle.Event) error { return nil }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.Open(t, tc.opts)
			const rounds, streams, copies = 20, 8, 4
			expects := []chronicle.ExpectedVersion{chronicle.Exact(1), chronicle.NoStream, chronicle.Any, chronicle.StreamExists}
			failures := 0
			for round := range rounds {
				type attempt struct {
					stream string
					exp    chronicle.ExpectedVersion
					evs    []chronicle.Event
					res    [copies]chronicle.AppendResult
					err    [copies]error
				}
				atts := make([]*attempt, streams)
				for j := range atts {
					a := &attempt{stream: fmt.Sprintf("order-rr%d_%d", round, j), exp: expects[j%len(expects)], evs: newEvents(2, "Retried")}
					if a.exp != chronicle.NoStream {
						mustAppend(t, s, a.stream, chronicle.NoStream, newEvents(1, "Seeded"))
					}
					atts[j] = a
				}
				var wg sync.WaitGroup
				start := make(chan struct{})
				for _, a := range atts {
					for c := range copies {
						wg.Go(func() {
							<-start
							a.res[c], a.err[c] = s.Append(context.Background(), a.stream, a.exp, clone(a.evs))
						})
					}
				}
				close(start)
				wg.Wait()
				for _, a := range atts {
					seed := int64(1)
					if a.exp == chronicle.NoStream {
						seed = 0
					}
					var first *chronicle.AppendResult
					for c := range copies {
						if err := a.err[c]; err != nil {
							failures++
							t.Errorf("round %d, %s, %s, copy %d: %v", round, a.stream, a.exp, c, err)
							continue
						}
						got := a.res[c]
						if first == nil {
							first = &got
						}
						if got.FirstVersion != seed+1 || got.LastVersion != seed+2 || got != *first {
							t.Errorf("round %d, %s, copy %d: result %+v, another copy got %+v, want versions %d..%d",
								round, a.stream, c, got, *first, seed+1, seed+2)
						}
					}
					got := mustReadStream(t, s, a.stream, chronicle.ReadStreamOptions{})
					checkVersions(t, got, 1)
					if len(got) != int(seed)+2 {
						t.Fatalf("round %d, %s: %d events, want %d", round, a.stream, len(got), seed+2)
					}
				}
			}
			if failures > 0 {
				t.Fatalf("%d of %d appends failed", failures, rounds*streams*copies)
			}
		})
	}
}

// Cancelling an append abandons its wait even while the transaction it is
// in is held up before its commit (store.go: the append may or may not land
// then). The caller that happens to be committing the batch is no
// exception. A retry with the same ids then tells what happened.
func testCancelDuringCommit(t *testing.T, h Harness) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	s := h.Open(t, Options{BeforeCommit: func(stream string, _ []chronicle.Event) error {
		if stream == "order-held" {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		return nil
	}})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the store closes: Close waits for the held append

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := newEvents(2, "Held")
	errc := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "order-held", chronicle.NoStream, clone(evs))
		errc <- err
	}()
	select {
	case <-entered:
	case err := <-errc:
		t.Fatalf("Append returned %v before its transaction was held", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the append's transaction did not start within 30s")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Append: error = %v, want context.Canceled", err)
		}
		if errors.Is(err, chronicle.ErrWrongVersion) || errors.Is(err, chronicle.ErrDuplicateEvent) {
			t.Fatalf("cancelled Append: error = %v claims an outcome it cannot know", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Append still blocked 10s after its context was cancelled")
	}
	unblock()
	// The held transaction goes on and commits: the retry finds it.
	res := mustAppend(t, s, "order-held", chronicle.NoStream, clone(evs))
	if res.FirstVersion != 1 || res.LastVersion != 2 {
		t.Fatalf("retry after cancel: versions %d..%d, want 1..2", res.FirstVersion, res.LastVersion)
	}
	got := mustReadStream(t, s, "order-held", chronicle.ReadStreamOptions{})
	if len(got) != 2 || got[0].ID != evs[0].ID || got[1].ID != evs[1].ID {
		t.Fatalf("stream holds %d events, want exactly the 2 appended", len(got))
	}
	// Others' appends were not held up for good by the cancelled one.
	mustAppend(t, s, "order-after", chronicle.NoStream, newEvents(1, "After"))
}
