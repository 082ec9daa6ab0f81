package storetest

import (
	"context"
	"encoding/json"
	"errors"
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

// Acceptance 8: the database itself refuses to change or remove events.
func testImmutability(t *testing.T, h Harness) {
	if h.Exec == nil {
		t.Skip("harness has no Exec")
	}
	s := h.Open(t, Options{})
	mustAppend(t, s, "order-imm", chronicle.NoStream, newEvents(3, "Kept"))
	want := readAllPaged(t, s, 1000, chronicle.ReadAllOptions{})
	stmts := []string{
		"UPDATE events SET event_type = 'x'",
		"UPDATE events SET event_type = 'x' WHERE version = 2",
		"DELETE FROM events",
		"DELETE FROM events WHERE version = 3",
	}
	if h.Truncate {
		stmts = append(stmts, "TRUNCATE events")
	}
	for _, q := range stmts {
		if err := h.Exec(t, s, q); err == nil {
			t.Errorf("%s: succeeded, want an error", q)
		}
	}
	checkSameEvents(t, "events after refused changes", readAllPaged(t, s, 1000, chronicle.ReadAllOptions{}), want)
}
