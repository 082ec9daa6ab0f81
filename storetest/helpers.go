package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
)

// newEvent returns an event with a fresh id and the given type and data.
func newEvent(typ, data string) chronicle.Event {
	return chronicle.Event{ID: chronicle.NewEventID(), Type: typ, Data: json.RawMessage(data)}
}

// newEvents returns n events of type typ whose data says which one they are.
func newEvents(n int, typ string) []chronicle.Event {
	evs := make([]chronicle.Event, n)
	for i := range evs {
		evs[i] = newEvent(typ, fmt.Sprintf(`{"n":%d}`, i+1))
	}
	return evs
}

func mustAppend(t testing.TB, s Backend, stream string, exp chronicle.ExpectedVersion, evs []chronicle.Event) chronicle.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), stream, exp, evs)
	if err != nil {
		t.Fatalf("Append(%q, %s, %d events): %v", stream, exp, len(evs), err)
	}
	return res
}

func mustReadStream(t testing.TB, s Backend, stream string, opts chronicle.ReadStreamOptions) []chronicle.RecordedEvent {
	t.Helper()
	got, err := s.ReadStream(context.Background(), stream, opts)
	if err != nil {
		t.Fatalf("ReadStream(%q, %+v): %v", stream, opts, err)
	}
	return got
}

// readAllPaged reads the whole log (as opts filters it) in pages of limit.
func readAllPaged(t testing.TB, s Backend, limit int, opts chronicle.ReadAllOptions) []chronicle.RecordedEvent {
	t.Helper()
	settle(t, s)
	opts.Limit = limit
	var all []chronicle.RecordedEvent
	var from chronicle.Checkpoint
	for {
		page, err := s.ReadAll(context.Background(), from, opts)
		if err != nil {
			t.Fatalf("ReadAll(%+v, %+v): %v", from, opts, err)
		}
		if len(page) > limit {
			t.Fatalf("ReadAll with Limit %d returned %d events", limit, len(page))
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		from = page[len(page)-1].Checkpoint()
	}
}

func mustVersion(t testing.TB, s Backend, stream string) int64 {
	t.Helper()
	v, err := s.StreamVersion(context.Background(), stream)
	if err != nil {
		t.Fatalf("StreamVersion(%q): %v", stream, err)
	}
	return v
}

// checkEmpty fails unless the store holds no event at all, by every read path.
func checkEmpty(t testing.TB, s Backend, streams ...string) {
	t.Helper()
	ctx := context.Background()
	h, err := s.Head(ctx)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if h != (chronicle.Head{}) {
		t.Errorf("Head = %+v, want zero", h)
	}
	all, err := s.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{})
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if len(all) != 0 {
		t.Errorf("ReadAll returned %d events, want 0", len(all))
	}
	for _, st := range streams {
		if v := mustVersion(t, s, st); v != 0 {
			t.Errorf("StreamVersion(%q) = %d, want 0", st, v)
		}
		if _, err := s.ReadStream(ctx, st, chronicle.ReadStreamOptions{}); !errors.Is(err, chronicle.ErrStreamNotFound) {
			t.Errorf("ReadStream(%q) error = %v, want ErrStreamNotFound", st, err)
		}
	}
}

// checkConflict fails unless err is a *ConflictError for stream with the
// given expected and actual versions.
func checkConflict(t testing.TB, err error, stream string, exp chronicle.ExpectedVersion, actual int64) {
	t.Helper()
	if !errors.Is(err, chronicle.ErrWrongVersion) {
		t.Fatalf("error = %v, want ErrWrongVersion", err)
	}
	var ce *chronicle.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *ConflictError", err, err)
	}
	if ce.Stream != stream || ce.Expected != exp || ce.Actual != actual {
		t.Errorf("ConflictError = {%q, %s, %d}, want {%q, %s, %d}", ce.Stream, ce.Expected, ce.Actual, stream, exp, actual)
	}
}

// jsonEqual reports whether a and b hold the same JSON value. The suite
// compares values, not bytes, so that a backend may normalise JSON (jsonb).
func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// checkSameEvents fails unless got and want are the same recorded events in
// the same order.
func checkSameEvents(t testing.TB, what string, got, want []chronicle.RecordedEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !sameRecorded(got[i], want[i]) {
			t.Fatalf("%s: event %d:\n got %+v\nwant %+v", what, i, got[i], want[i])
		}
	}
}

func sameRecorded(a, b chronicle.RecordedEvent) bool {
	return a.StreamID == b.StreamID && a.StreamType == b.StreamType && a.Version == b.Version &&
		a.Position == b.Position && a.TxID == b.TxID && a.RecordedAt.Equal(b.RecordedAt) &&
		a.ID == b.ID && a.Type == b.Type && a.SchemaVersion == b.SchemaVersion &&
		jsonEqual(a.Data, b.Data) && jsonEqual(a.Metadata, b.Metadata)
}

// checkVersions fails unless evs are versions first, first+1, ... in order.
func checkVersions(t testing.TB, evs []chronicle.RecordedEvent, first int64) {
	t.Helper()
	for i, e := range evs {
		if want := first + int64(i); e.Version != want {
			t.Fatalf("event %d has version %d, want %d", i, e.Version, want)
		}
	}
}

// checkOrdered fails unless the checkpoints of evs strictly increase, after from.
func checkOrdered(t testing.TB, evs []chronicle.RecordedEvent, from chronicle.Checkpoint) {
	t.Helper()
	for i, e := range evs {
		if !from.Before(e.Checkpoint()) {
			t.Fatalf("event %d: checkpoint %+v does not come after %+v", i, e.Checkpoint(), from)
		}
		from = e.Checkpoint()
	}
}

// tracked wraps a store under test and remembers where acknowledged appends
// landed, so that a test can wait until they are all visible to ReadAll
// before it reads the whole log. On PostgreSQL an acknowledged event stays
// invisible to ReadAll while any older transaction of the cluster is still
// open (invariant 4), and other tests share the cluster: reading straight
// after an append may legitimately come back short.
type tracked struct {
	Backend
	mu     sync.Mutex
	latest map[string]int64 // stream -> highest acknowledged version not yet settled
	max    chronicle.Checkpoint
}

func (s *tracked) Append(ctx context.Context, stream string, exp chronicle.ExpectedVersion, evs []chronicle.Event) (chronicle.AppendResult, error) {
	res, err := s.Backend.Append(ctx, stream, exp, evs)
	if err == nil {
		s.mu.Lock()
		if s.latest == nil {
			s.latest = map[string]int64{}
		}
		s.latest[stream] = max(s.latest[stream], res.LastVersion)
		s.mu.Unlock()
	}
	return res, err
}

// settle waits until every append acknowledged so far is visible to ReadAll.
func (s *tracked) settle(ctx context.Context) error {
	s.mu.Lock()
	latest := s.latest
	s.latest = nil
	s.mu.Unlock()
	for stream, v := range latest {
		evs, err := s.Backend.ReadStream(ctx, stream, chronicle.ReadStreamOptions{From: v, To: v})
		if err != nil || len(evs) != 1 {
			return fmt.Errorf("settle: read %s v%d: %d events, %v", stream, v, len(evs), err)
		}
		s.mu.Lock()
		if cp := evs[0].Checkpoint(); s.max.Before(cp) {
			s.max = cp
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	want := s.max
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		head, err := s.Backend.Head(ctx)
		if err != nil {
			return fmt.Errorf("settle: head: %w", err)
		}
		if !head.Checkpoint.Before(want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("settle: acknowledged event at %+v still invisible to readers after 60s (head %+v)", want, head.Checkpoint)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settle waits until s's acknowledged appends are all visible to ReadAll.
func settle(t testing.TB, s Backend) {
	t.Helper()
	if sb, ok := s.(sealBackend); ok {
		s = sb.Backend
	}
	if tr, ok := s.(*tracked); ok {
		if err := tr.settle(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// untracked returns the store under a tracked wrapper.
func untracked(b Backend) Backend {
	if sb, ok := b.(sealBackend); ok {
		b = sb.Backend
	}
	if tr, ok := b.(*tracked); ok {
		return tr.Backend
	}
	return b
}
