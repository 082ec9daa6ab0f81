package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
)

// Acceptance 9: one stream by version range, recorded time and limit.
func testReadStream(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	ctx := context.Background()
	const stream = "order-read"
	// Appends one at a time so that recorded times can differ.
	for i := range 10 {
		mustAppend(t, s, stream, chronicle.Exact(int64(i)), newEvents(1, "Step"))
	}
	mustAppend(t, s, "order-noise", chronicle.NoStream, newEvents(5, "Noise"))
	all := mustReadStream(t, s, stream, chronicle.ReadStreamOptions{})
	if len(all) != 10 {
		t.Fatalf("stream has %d events, want 10", len(all))
	}
	checkVersions(t, all, 1)
	checkOrdered(t, all, chronicle.Checkpoint{})
	span := func(from, to int) []chronicle.RecordedEvent { return all[from-1 : to] } // versions from..to

	tests := []struct {
		name string
		opts chronicle.ReadStreamOptions
		want []chronicle.RecordedEvent
	}{
		{"all", chronicle.ReadStreamOptions{}, all},
		{"from 1", chronicle.ReadStreamOptions{From: 1}, all},
		{"from 4", chronicle.ReadStreamOptions{From: 4}, span(4, 10)},
		{"from last", chronicle.ReadStreamOptions{From: 10}, span(10, 10)},
		{"from beyond", chronicle.ReadStreamOptions{From: 11}, nil},
		{"to 3", chronicle.ReadStreamOptions{To: 3}, span(1, 3)},
		{"to beyond", chronicle.ReadStreamOptions{To: 99}, all},
		{"from 3 to 6", chronicle.ReadStreamOptions{From: 3, To: 6}, span(3, 6)},
		{"from 6 to 6", chronicle.ReadStreamOptions{From: 6, To: 6}, span(6, 6)},
		{"from 7 to 6", chronicle.ReadStreamOptions{From: 7, To: 6}, nil},
		{"limit 4", chronicle.ReadStreamOptions{Limit: 4}, span(1, 4)},
		{"from 5 limit 2", chronicle.ReadStreamOptions{From: 5, Limit: 2}, span(5, 6)},
		{"from 8 limit 5", chronicle.ReadStreamOptions{From: 8, Limit: 5}, span(8, 10)},
		{"from 2 to 5 limit 10", chronicle.ReadStreamOptions{From: 2, To: 5, Limit: 10}, span(2, 5)},
		{"until before the first", chronicle.ReadStreamOptions{Until: all[0].RecordedAt.Add(-time.Microsecond)}, nil},
		{"until far future", chronicle.ReadStreamOptions{Until: time.Now().Add(time.Hour)}, all},
	}
	// Until each event's own recorded time: exactly the events recorded at or before it.
	for i, e := range all {
		var want []chronicle.RecordedEvent
		for _, f := range all {
			if !f.RecordedAt.After(e.RecordedAt) {
				want = append(want, f)
			}
		}
		tests = append(tests, struct {
			name string
			opts chronicle.ReadStreamOptions
			want []chronicle.RecordedEvent
		}{fmt.Sprintf("until v%d", i+1), chronicle.ReadStreamOptions{Until: e.RecordedAt}, want})
		// Combined with a version range and a limit.
		var want2 []chronicle.RecordedEvent
		for _, f := range want {
			if f.Version >= 2 && len(want2) < 3 {
				want2 = append(want2, f)
			}
		}
		tests = append(tests, struct {
			name string
			opts chronicle.ReadStreamOptions
			want []chronicle.RecordedEvent
		}{fmt.Sprintf("until v%d from 2 limit 3", i+1), chronicle.ReadStreamOptions{Until: e.RecordedAt, From: 2, Limit: 3}, want2})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSameEvents(t, "ReadStream", mustReadStream(t, s, stream, tt.opts), tt.want)
		})
	}
	t.Run("missing stream", func(t *testing.T) {
		for _, opts := range []chronicle.ReadStreamOptions{{}, {From: 3}, {Limit: 1}} {
			_, err := s.ReadStream(ctx, "order-missing", opts)
			if !errors.Is(err, chronicle.ErrStreamNotFound) {
				t.Errorf("ReadStream(missing, %+v) error = %v, want ErrStreamNotFound", opts, err)
			}
		}
		if v := mustVersion(t, s, "order-missing"); v != 0 {
			t.Errorf("StreamVersion(missing) = %d, want 0", v)
		}
		if v := mustVersion(t, s, stream); v != 10 {
			t.Errorf("StreamVersion = %d, want 10", v)
		}
	})
}

// seedLog appends events of three stream types and three event types,
// interleaved, and returns the full log.
func seedLog(t *testing.T, s Backend) []chronicle.RecordedEvent {
	types := []string{"order", "invoice", "cart"}
	evTypes := []string{"Created", "Changed", "Closed"}
	for i := range 30 {
		stream := fmt.Sprintf("%s-s%d", types[i%3], i%7)
		evs := make([]chronicle.Event, 1+i%4)
		for j := range evs {
			evs[j] = newEvent(evTypes[(i+j)%3], fmt.Sprintf(`{"i":%d,"j":%d}`, i, j))
		}
		mustAppend(t, s, stream, chronicle.Any, evs)
	}
	mustAppend(t, s, "nodash", chronicle.Any, newEvents(2, "Created")) // stream type "nodash"
	all := readAllPaged(t, s, 1000, chronicle.ReadAllOptions{})
	checkOrdered(t, all, chronicle.Checkpoint{})
	return all
}

// Acceptance 9: paging the global log from checkpoints.
func testReadAllPaging(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	ctx := context.Background()
	all := seedLog(t, s)
	if len(all) != 75 {
		t.Fatalf("log has %d events, want 75", len(all))
	}
	// Every stream reads back as the log's events of that stream.
	byStream := map[string][]chronicle.RecordedEvent{}
	for _, e := range all {
		byStream[e.StreamID] = append(byStream[e.StreamID], e)
		if e.StreamType != chronicle.StreamType(e.StreamID) {
			t.Errorf("event of %q has stream type %q", e.StreamID, e.StreamType)
		}
	}
	for st, want := range byStream {
		checkSameEvents(t, "ReadStream "+st, mustReadStream(t, s, st, chronicle.ReadStreamOptions{}), want)
	}
	for _, limit := range []int{1, 2, 7, 74, 75, 76} {
		checkSameEvents(t, fmt.Sprintf("pages of %d", limit), readAllPaged(t, s, limit, chronicle.ReadAllOptions{}), all)
	}
	// From any checkpoint, the rest of the log.
	for i := range all {
		got, err := s.ReadAll(ctx, all[i].Checkpoint(), chronicle.ReadAllOptions{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		checkSameEvents(t, fmt.Sprintf("from event %d", i), got, all[i+1:])
	}
	// A page's events own their bytes: growing one event's data or
	// metadata in place changes no other event, nor a later read.
	t.Run("events own their bytes", func(t *testing.T) {
		page, err := s.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for i := range page {
			page[i].Data = append(page[i].Data, "xxxxxxxx"...)
			page[i].Metadata = append(page[i].Metadata, "xxxxxxxx"...)
		}
		for i, e := range page {
			if want := string(all[i].Data) + "xxxxxxxx"; string(e.Data) != want {
				t.Fatalf("event %d: data %q after appending to every event's, want %q", i, e.Data, want)
			}
			if want := string(all[i].Metadata) + "xxxxxxxx"; string(e.Metadata) != want {
				t.Fatalf("event %d: metadata %q after appending to every event's, want %q", i, e.Metadata, want)
			}
		}
		checkSameEvents(t, "read again", readAllPaged(t, s, 1000, chronicle.ReadAllOptions{}), all)
	})
	t.Run("default limit", func(t *testing.T) {
		mustAppend(t, s, "bulk-1", chronicle.NoStream, newEvents(chronicle.DefaultReadAllLimit+10, "Bulk"))
		settle(t, s)
		got, err := s.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != chronicle.DefaultReadAllLimit {
			t.Fatalf("ReadAll without a limit returned %d events, want %d", len(got), chronicle.DefaultReadAllLimit)
		}
		checkSameEvents(t, "first page", got[:len(all)], all)
		rest := readAllPaged(t, s, 333, chronicle.ReadAllOptions{})
		if len(rest) != len(all)+chronicle.DefaultReadAllLimit+10 {
			t.Fatalf("log has %d events, want %d", len(rest), len(all)+chronicle.DefaultReadAllLimit+10)
		}
		checkVersions(t, rest[len(all):], 1)
	})
}

// Acceptance 9: stream type and event type filters, alone, together and paged.
func testReadAllFilters(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	all := seedLog(t, s)
	tests := []chronicle.ReadAllOptions{
		{StreamTypes: []string{"order"}},
		{StreamTypes: []string{"invoice", "cart"}},
		{StreamTypes: []string{"nodash"}},
		{StreamTypes: []string{"nothing"}},
		{StreamTypes: []string{"ord"}}, // a prefix of a type is not the type
		{EventTypes: []string{"Created"}},
		{EventTypes: []string{"Changed", "Closed"}},
		{EventTypes: []string{"Missing"}},
		{StreamTypes: []string{"order", "cart"}, EventTypes: []string{"Closed"}},
		{StreamTypes: []string{"cart"}, EventTypes: []string{"Created", "Changed"}},
	}
	for _, opts := range tests {
		name := fmt.Sprintf("streams=%s events=%s", strings.Join(opts.StreamTypes, ","), strings.Join(opts.EventTypes, ","))
		t.Run(name, func(t *testing.T) {
			var want []chronicle.RecordedEvent
			for _, e := range all {
				if (opts.StreamTypes == nil || slices.Contains(opts.StreamTypes, e.StreamType)) &&
					(opts.EventTypes == nil || slices.Contains(opts.EventTypes, e.Type)) {
					want = append(want, e)
				}
			}
			for _, limit := range []int{1, 3, 1000} {
				got := readAllPaged(t, s, limit, opts)
				checkSameEvents(t, fmt.Sprintf("limit %d", limit), got, want)
			}
		})
	}
}

func testHead(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	ctx := context.Background()
	checkEmpty(t, s)
	for i := range 3 {
		res := mustAppend(t, s, fmt.Sprintf("order-h%d", i), chronicle.NoStream, newEvents(2+i, "Headed"))
		settle(t, s)
		head, err := s.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all := readAllPaged(t, s, 1000, chronicle.ReadAllOptions{})
		last := all[len(all)-1]
		want := chronicle.Head{Checkpoint: last.Checkpoint(), Position: last.Position, RecordedAt: last.RecordedAt}
		if head.Checkpoint != want.Checkpoint || head.Position != want.Position || !head.RecordedAt.Equal(want.RecordedAt) {
			t.Fatalf("Head = %+v, want %+v", head, want)
		}
		if head.Committed != head.Position || !head.HeldSince.IsZero() || head.Last != head.Checkpoint {
			t.Fatalf("Head = %+v: with every commit visible, Committed must equal Position, Last Checkpoint, and HeldSince be zero", head)
		}
		if head.Position != res.LastPosition {
			t.Fatalf("Head position %d, last append ended at %d", head.Position, res.LastPosition)
		}
		// Nothing after the head.
		if rest, err := s.ReadAll(ctx, head.Checkpoint, chronicle.ReadAllOptions{}); err != nil || len(rest) != 0 {
			t.Fatalf("ReadAll after the head: %d events, %v", len(rest), err)
		}
	}
}

func testEventByID(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	ctx := context.Background()
	all := seedLog(t, s)
	for _, e := range all[:10] {
		got, err := s.EventByID(ctx, e.ID)
		if err != nil {
			t.Fatalf("EventByID(%s): %v", e.ID, err)
		}
		checkSameEvents(t, "EventByID", []chronicle.RecordedEvent{got}, []chronicle.RecordedEvent{e})
		if got, err := s.EventByID(ctx, strings.ToUpper(e.ID)); err != nil || got.ID != e.ID {
			t.Fatalf("EventByID(upper case) = %s, %v; want %s", got.ID, err, e.ID)
		}
	}
	if _, err := s.EventByID(ctx, chronicle.NewEventID()); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("EventByID(unknown) error = %v, want ErrNotFound", err)
	}
}

func testNotify(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a := s.Notify(ctx)
	b := s.Notify(ctx)
	mustAppend(t, s, "order-n", chronicle.NoStream, newEvents(1, "Ping"))
	// Blocks until woken; a backend that never wakes fails by the test timeout.
	<-a
	<-b
	// Coalesced: many commits, at least one more wake-up, and the reader sees all.
	for i := range 5 {
		mustAppend(t, s, "order-n", chronicle.Exact(int64(i+1)), newEvents(1, "Ping"))
	}
	<-a
	if got := len(readAllPaged(t, s, 1000, chronicle.ReadAllOptions{})); got != 6 {
		t.Fatalf("after wake-up the log has %d events, want 6", got)
	}
	// A failed append may wake readers, but a later one must.
	if _, err := s.Append(ctx, "order-n", chronicle.NoStream, newEvents(1, "Ping")); !errors.Is(err, chronicle.ErrWrongVersion) {
		t.Fatalf("conflicting append: %v", err)
	}
	c := s.Notify(ctx)
	mustAppend(t, s, "order-n2", chronicle.NoStream, newEvents(1, "Ping"))
	<-c
	// Releasing a channel's context must not disturb the others.
	ctxD, cancelD := context.WithCancel(ctx)
	d := s.Notify(ctxD)
	cancelD()
	_ = d
	mustAppend(t, s, "order-n3", chronicle.NoStream, newEvents(1, "Ping"))
	<-c
}

// Snapshots: a cache keyed by stream, replaced by newer or other-schema ones.
func testSnapshots(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	ctx := context.Background()
	load := func(stream string) chronicle.Snapshot {
		t.Helper()
		snap, err := s.LoadSnapshot(ctx, stream)
		if err != nil {
			t.Fatalf("LoadSnapshot(%q): %v", stream, err)
		}
		return snap
	}
	check := func(stream string, version int64, schema int, data string) {
		t.Helper()
		got := load(stream)
		if got.StreamID != stream || got.Version != version || got.SchemaVersion != schema || !jsonEqual(got.Data, []byte(data)) {
			t.Fatalf("snapshot = {%q v%d schema %d %s}, want {%q v%d schema %d %s}", got.StreamID, got.Version, got.SchemaVersion, got.Data, stream, version, schema, data)
		}
		if got.TakenAt.IsZero() {
			t.Errorf("snapshot TakenAt is zero")
		}
	}
	save := func(stream string, version int64, schema int, data string) {
		t.Helper()
		if err := s.SaveSnapshot(ctx, chronicle.Snapshot{StreamID: stream, Version: version, SchemaVersion: schema, Data: []byte(data)}); err != nil {
			t.Fatalf("SaveSnapshot: %v", err)
		}
	}
	if _, err := s.LoadSnapshot(ctx, "order-snap"); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("LoadSnapshot(none) error = %v, want ErrNotFound", err)
	}
	save("order-snap", 5, 1, `{"v":5}`)
	check("order-snap", 5, 1, `{"v":5}`)
	save("order-snap", 3, 1, `{"v":3}`) // older, same schema: ignored
	check("order-snap", 5, 1, `{"v":5}`)
	save("order-snap", 8, 1, `{"v":8}`) // newer: replaces
	check("order-snap", 8, 1, `{"v":8}`)
	save("order-snap", 2, 2, `{"v":2,"schema":2}`) // other schema: replaces even if older
	check("order-snap", 2, 2, `{"v":2,"schema":2}`)
	save("order-snap", 1, 1, `{"v":1}`) // back to the old schema: replaces too
	check("order-snap", 1, 1, `{"v":1}`)

	save("order-other", 4, 1, `{"other":true}`)
	save("cart-x", 4, 1, `[1,2,3]`)
	if err := s.DeleteSnapshot(ctx, "order-snap"); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	if _, err := s.LoadSnapshot(ctx, "order-snap"); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("LoadSnapshot after delete: error = %v, want ErrNotFound", err)
	}
	if err := s.DeleteSnapshot(ctx, "order-snap"); err != nil {
		t.Fatalf("DeleteSnapshot of a missing snapshot: %v", err)
	}
	check("order-other", 4, 1, `{"other":true}`)
	check("cart-x", 4, 1, `[1,2,3]`)
	if err := s.DeleteAllSnapshots(ctx); err != nil {
		t.Fatalf("DeleteAllSnapshots: %v", err)
	}
	for _, st := range []string{"order-other", "cart-x"} {
		if _, err := s.LoadSnapshot(ctx, st); !errors.Is(err, chronicle.ErrNotFound) {
			t.Fatalf("LoadSnapshot(%q) after DeleteAllSnapshots: error = %v, want ErrNotFound", st, err)
		}
	}
	save("order-snap", 9, 1, `{"v":9}`)
	check("order-snap", 9, 1, `{"v":9}`)
}

// After Close, calls fail with ErrClosed, and closing again is harmless.
func testClosed(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	ctx := context.Background()
	mustAppend(t, s, "order-c", chronicle.NoStream, newEvents(1, "Before"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Append(ctx, "order-c", chronicle.Any, newEvents(1, "After")); !errors.Is(err, chronicle.ErrClosed) {
		t.Errorf("Append after Close: error = %v, want ErrClosed", err)
	}
	if _, err := s.ReadStream(ctx, "order-c", chronicle.ReadStreamOptions{}); !errors.Is(err, chronicle.ErrClosed) {
		t.Errorf("ReadStream after Close: error = %v, want ErrClosed", err)
	}
	if _, err := s.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{}); !errors.Is(err, chronicle.ErrClosed) {
		t.Errorf("ReadAll after Close: error = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
