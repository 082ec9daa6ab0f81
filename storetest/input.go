package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle"
)

// Acceptance 7: bad input is refused with *InvalidError and writes nothing.
func testBadInput(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	ctx := context.Background()
	good := func() chronicle.Event { return newEvent("Good", `{"ok":true}`) }
	withData := func(d string) []chronicle.Event {
		e := good()
		e.Data = json.RawMessage(d)
		return []chronicle.Event{good(), e} // the bad one is not first: nothing of the append may land
	}
	withMeta := func(m string) []chronicle.Event {
		e := good()
		e.Metadata = json.RawMessage(m)
		return []chronicle.Event{e}
	}
	withType := func(typ string) []chronicle.Event {
		e := good()
		e.Type = typ
		return []chronicle.Event{good(), e}
	}
	withID := func(id string) []chronicle.Event {
		e := good()
		e.ID = id
		return []chronicle.Event{e}
	}
	const stream = "order-bad"
	tests := []struct {
		name   string
		stream string
		exp    chronicle.ExpectedVersion
		evs    []chronicle.Event
	}{
		{"invalid JSON", stream, chronicle.Any, withData(`{"a":`)},
		{"trailing garbage", stream, chronicle.Any, withData(`{"a":1} x`)},
		{"two values", stream, chronicle.Any, withData(`1 2`)},
		{"empty data", stream, chronicle.Any, withData(``)},
		{"NUL escape", stream, chronicle.Any, withData(`{"a":"x\u0000y"}`)},
		{"NUL escape in key", stream, chronicle.Any, withData(`{"\u0000":1}`)},
		{"lone high surrogate", stream, chronicle.Any, withData(`{"a":"\ud800"}`)},
		{"lone low surrogate", stream, chronicle.Any, withData(`{"a":"\udc00"}`)},
		{"high surrogate then letter", stream, chronicle.Any, withData(`{"a":"\ud800x"}`)},
		{"high surrogate then non-surrogate escape", stream, chronicle.Any, withData(`{"a":"\ud800\u0041"}`)},
		{"two high surrogates", stream, chronicle.Any, withData(`["\ud800\ud800"]`)},
		{"invalid UTF-8", stream, chronicle.Any, withData("{\"a\":\"\xff\xfe\"}")},
		{"truncated UTF-8", stream, chronicle.Any, withData("\"\xe2\x82\"")},
		{"metadata not an object", stream, chronicle.Any, withMeta(`[1,2]`)},
		{"metadata a string", stream, chronicle.Any, withMeta(`"x"`)},
		{"metadata invalid JSON", stream, chronicle.Any, withMeta(`{`)},
		{"metadata NUL", stream, chronicle.Any, withMeta(`{"a":"\u0000"}`)},
		{"metadata lone surrogate", stream, chronicle.Any, withMeta(`{"a":"\udfff"}`)},
		{"empty stream id", "", chronicle.Any, []chronicle.Event{good()}},
		{"over-long stream id", "order-" + strings.Repeat("x", chronicle.MaxNameLength-5), chronicle.Any, []chronicle.Event{good()}},
		{"stream id with control character", "order-a\nb", chronicle.Any, []chronicle.Event{good()}},
		{"stream id invalid UTF-8", "order-\xff", chronicle.Any, []chronicle.Event{good()}},
		{"empty event type", stream, chronicle.Any, withType("")},
		{"over-long event type", stream, chronicle.Any, withType(strings.Repeat("T", chronicle.MaxNameLength+1))},
		{"bad event id", stream, chronicle.Any, withID("not-a-uuid")},
		{"event id with non-hex digit", stream, chronicle.Any, withID("0190b5f4-7d3c-7a9e-8f1b-2c3d4e5f6g7h")},
		{"event id repeated in the append", stream, chronicle.Any, func() []chronicle.Event { e := good(); return []chronicle.Event{e, e} }()},
		{"no events", stream, chronicle.Any, nil},
		{"negative schema version", stream, chronicle.Any, func() []chronicle.Event { e := good(); e.SchemaVersion = -1; return []chronicle.Event{e} }()},
		{"invalid expected version", stream, chronicle.ExpectedVersion(-7), []chronicle.Event{good()}},
	}
	if n := len("order-" + strings.Repeat("x", chronicle.MaxNameLength-5)); n <= chronicle.MaxNameLength {
		t.Fatalf("test bug: over-long stream id is %d bytes", n)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Append(ctx, tt.stream, tt.exp, tt.evs)
			if !errors.Is(err, chronicle.ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
			var ie *chronicle.InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T) is not an *InvalidError", err, err)
			}
			if errors.Is(err, chronicle.ErrEventTooLarge) {
				t.Errorf("error %v matches ErrEventTooLarge", err)
			}
			checkEmpty(t, s, stream)
		})
	}
	// A stream id of exactly the limit is fine.
	mustAppend(t, s, "order-"+strings.Repeat("x", chronicle.MaxNameLength-6), chronicle.NoStream, []chronicle.Event{good()})
}

// Acceptance 7: the size limit, configured and default.
func testEventSizeLimit(t *testing.T, h Harness) {
	ctx := context.Background()
	// payload returns a JSON string value of exactly n bytes.
	payload := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("a", n-2) + `"`) }
	tooLarge := func(t *testing.T, s Backend, evs []chronicle.Event) {
		t.Helper()
		_, err := s.Append(ctx, "order-big", chronicle.Any, evs)
		if !errors.Is(err, chronicle.ErrEventTooLarge) {
			t.Fatalf("error = %v, want ErrEventTooLarge", err)
		}
		var ie *chronicle.InvalidError
		if !errors.As(err, &ie) || !errors.Is(err, chronicle.ErrInvalid) {
			t.Fatalf("error %v (%T) is not an *InvalidError matching ErrInvalid", err, err)
		}
		checkEmpty(t, s, "order-big")
	}
	t.Run("configured", func(t *testing.T) {
		s := h.Open(t, Options{Limits: chronicle.Limits{MaxEventSize: 100}})
		over := newEvent("Big", "")
		over.Data = payload(101)
		tooLarge(t, s, []chronicle.Event{newEvent("Small", `1`), over})
		withMeta := newEvent("Big", "")
		withMeta.Data = payload(80)
		withMeta.Metadata = json.RawMessage(`{"correlation_id":"0123456789"}`) // 31 bytes: 111 in all
		tooLarge(t, s, []chronicle.Event{withMeta})

		at := newEvent("Big", "")
		at.Data = payload(69)
		at.Metadata = json.RawMessage(`{"correlation_id":"0123456789"}`) // 100 in all
		mustAppend(t, s, "order-big", chronicle.NoStream, []chronicle.Event{at})
		got := mustReadStream(t, s, "order-big", chronicle.ReadStreamOptions{})
		if len(got) != 1 || !jsonEqual(got[0].Data, at.Data) {
			t.Fatalf("event at the limit did not round-trip")
		}
	})
	t.Run("default", func(t *testing.T) {
		s := h.Open(t, Options{})
		over := newEvent("Big", "")
		over.Data = payload(chronicle.DefaultMaxEventSize + 1)
		tooLarge(t, s, []chronicle.Event{over})

		at := newEvent("Big", "")
		at.Data = payload(chronicle.DefaultMaxEventSize)
		mustAppend(t, s, "order-big", chronicle.NoStream, []chronicle.Event{at})
		got := mustReadStream(t, s, "order-big", chronicle.ReadStreamOptions{})
		if len(got) != 1 || !jsonEqual(got[0].Data, at.Data) {
			t.Fatalf("event of exactly the default limit did not round-trip")
		}
	})
}

// Acceptance 8: the database itself refuses to change or remove events, by
// every statement that could, on a connection of its own (no setting of
// the store's). Each statement also runs on no row at all, where it must
// succeed: it is valid SQL, and refused only for what it would change.
func testImmutability(t *testing.T, h Harness) {
	if h.Exec == nil {
		t.Skip("harness has no Exec")
	}
	s := h.Open(t, Options{})
	mustAppend(t, s, "order-imm", chronicle.NoStream, newEvents(3, "Kept"))
	want := readAllPaged(t, s, 1000, chronicle.ReadAllOptions{})

	// Copies of stored events, with another type, inserted over them.
	const cols = "event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, recorded_at"
	const copied = " INTO events (" + cols + ") SELECT event_id, stream_id, stream_type, version, 'x', " +
		"schema_version, data, metadata, recorded_at FROM events WHERE %s"
	stmts := []string{
		"UPDATE events SET event_type = 'x' WHERE %s",
		"UPDATE events SET version = version + 10 WHERE %s",
		"DELETE FROM events WHERE %s",
		"INSERT" + copied + " ON CONFLICT (event_id) DO UPDATE SET event_type = excluded.event_type",
		"INSERT" + copied + " ON CONFLICT (stream_id, version) DO UPDATE SET event_type = excluded.event_type",
		// Without its row a stream would take its versions from 1 again.
		"DELETE FROM streams WHERE %s",
	}
	if h.Replace {
		// REPLACE deletes the row in the way without firing delete triggers.
		stmts = append(stmts,
			"INSERT OR REPLACE"+copied,
			"REPLACE"+copied,
			"INSERT OR REPLACE INTO events (position, "+cols+") SELECT position, event_id, stream_id, stream_type, "+
				"version, 'x', schema_version, data, metadata, recorded_at FROM events WHERE %s",
			"INSERT OR REPLACE INTO events ("+cols+") SELECT lower(hex(randomblob(16))), stream_id, stream_type, "+
				"version, 'x', schema_version, data, metadata, recorded_at FROM events WHERE %s",
			"UPDATE OR REPLACE events SET version = version - 1 WHERE %s",
		)
	}
	for _, q := range stmts {
		if err := h.Exec(t, s, fmt.Sprintf(q, "version < 0")); err != nil {
			t.Errorf("%s: on no row: %v, want success", fmt.Sprintf(q, "version < 0"), err)
		}
		if err := h.Exec(t, s, fmt.Sprintf(q, "version >= 2")); err == nil {
			t.Errorf("%s: succeeded, want an error", fmt.Sprintf(q, "version >= 2"))
		}
	}
	if h.Truncate {
		for _, q := range []string{"TRUNCATE events", "TRUNCATE streams", "TRUNCATE events, streams, snapshots"} {
			if err := h.Exec(t, s, q); err == nil {
				t.Errorf("%s: succeeded, want an error", q)
			}
		}
	}
	checkSameEvents(t, "events after refused changes", readAllPaged(t, s, 1000, chronicle.ReadAllOptions{}), want)
	if v := mustVersion(t, s, "order-imm"); v != 3 {
		t.Fatalf("StreamVersion after refused changes = %d, want 3", v)
	}
	// The store still appends where it left off.
	mustAppend(t, s, "order-imm", chronicle.Exact(3), newEvents(1, "Later"))
}
