package chronicle_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chronicle-es/chronicle"
)

func TestExpectedVersionCheck(t *testing.T) {
	tests := []struct {
		expected chronicle.ExpectedVersion
		current  int64
		want     bool
	}{
		{chronicle.Any, 0, true},
		{chronicle.Any, 7, true},
		{chronicle.NoStream, 0, true},
		{chronicle.NoStream, 1, false},
		{chronicle.StreamExists, 0, false},
		{chronicle.StreamExists, 3, true},
		{chronicle.Exact(0), 0, true},
		{chronicle.Exact(3), 3, true},
		{chronicle.Exact(3), 2, false},
		{chronicle.Exact(3), 4, false},
		{chronicle.ExpectedVersion(-9), 0, false},
	}
	for _, tt := range tests {
		if got := tt.expected.Check(tt.current); got != tt.want {
			t.Errorf("%v.Check(%d) = %v, want %v", tt.expected, tt.current, got, tt.want)
		}
	}
}

func TestConflictErrorMatchesSentinel(t *testing.T) {
	var err error = &chronicle.ConflictError{Stream: "order-1", Expected: chronicle.Exact(2), Actual: 5}
	wrapped := errors.Join(errors.New("context"), err)
	if !errors.Is(wrapped, chronicle.ErrWrongVersion) {
		t.Fatalf("errors.Is(%v, ErrWrongVersion) = false", wrapped)
	}
	var ce *chronicle.ConflictError
	if !errors.As(wrapped, &ce) || ce.Actual != 5 || ce.Expected != 2 {
		t.Fatalf("errors.As gave %+v", ce)
	}
}

func TestValidateJSON(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"object", `{"a":1}`, true},
		{"string escapes", `{"a":"\n\t\"\\\/"}`, true},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, true},
		{"upper-case pair", `["\uD83D\uDE00"]`, true},
		{"escaped backslash then u", `{"a":"\\u0000"}`, true},
		{"utf-8", `{"a":"héllo 世界"}`, true},
		{"NUL", `{"a":"x\u0000y"}`, false},
		{"NUL in key", `{"\u0000":1}`, false},
		{"lone high", `{"a":"\ud800"}`, false},
		{"lone high at end of string", `{"a":"x\ud800"}`, false},
		{"high then non-low", `{"a":"\ud800\u0041"}`, false},
		{"high then text", `{"a":"\ud800abcdef"}`, false},
		{"lone low", `{"a":"\udc00"}`, false},
		{"invalid json", `{"a":`, false},
		{"trailing garbage", `{} x`, false},
		{"invalid utf-8", "{\"a\":\"\xff\"}", false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		err := chronicle.ValidateJSON([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("%s: ValidateJSON(%q) = %v, want ok=%v", tt.name, tt.in, err, tt.ok)
		}
	}
}

func TestPrepareAppend(t *testing.T) {
	ev := func(mut func(*chronicle.Event)) []chronicle.Event {
		e := chronicle.Event{Type: "OrderCreated", Data: json.RawMessage(`{"a":1}`)}
		if mut != nil {
			mut(&e)
		}
		return []chronicle.Event{e}
	}
	bad := []struct {
		name   string
		stream string
		events []chronicle.Event
		limit  int
		field  string
		big    bool
	}{
		{"empty stream", "", ev(nil), 0, "stream_id", false},
		{"long stream", strings.Repeat("s", 201), ev(nil), 0, "stream_id", false},
		{"control char stream", "order-\x01", ev(nil), 0, "stream_id", false},
		{"no events", "order-1", nil, 0, "events", false},
		{"empty type", "order-1", ev(func(e *chronicle.Event) { e.Type = "" }), 0, "events[0].type", false},
		{"bad id", "order-1", ev(func(e *chronicle.Event) { e.ID = "nope" }), 0, "events[0].id", false},
		{"empty data", "order-1", ev(func(e *chronicle.Event) { e.Data = nil }), 0, "events[0].data", false},
		{"NUL data", "order-1", ev(func(e *chronicle.Event) { e.Data = json.RawMessage(`{"a":"\u0000"}`) }), 0, "events[0].data", false},
		{"metadata array", "order-1", ev(func(e *chronicle.Event) { e.Metadata = json.RawMessage(`[1]`) }), 0, "events[0].metadata", false},
		{"too large", "order-1", ev(func(e *chronicle.Event) { e.Data = json.RawMessage(`"` + strings.Repeat("x", 100) + `"`) }), 64, "events[0].data", true},
		{"negative schema", "order-1", ev(func(e *chronicle.Event) { e.SchemaVersion = -1 }), 0, "events[0].schema_version", false},
	}
	for _, tt := range bad {
		_, err := chronicle.PrepareAppend(tt.stream, chronicle.Any, tt.events, chronicle.Limits{MaxEventSize: tt.limit})
		var ie *chronicle.InvalidError
		if !errors.As(err, &ie) || !errors.Is(err, chronicle.ErrInvalid) {
			t.Errorf("%s: err = %v, want *InvalidError", tt.name, err)
			continue
		}
		if ie.Field != tt.field {
			t.Errorf("%s: field = %q, want %q", tt.name, ie.Field, tt.field)
		}
		if got := errors.Is(err, chronicle.ErrEventTooLarge); got != tt.big {
			t.Errorf("%s: errors.Is(err, ErrEventTooLarge) = %v, want %v", tt.name, got, tt.big)
		}
	}

	in := []chronicle.Event{
		{ID: "0190A3B4-C5D6-7E8F-9012-3456789ABCDE", Type: "A", Data: json.RawMessage(`1`)},
		{Type: "B", Data: json.RawMessage(`2`), SchemaVersion: 3},
	}
	out, err := chronicle.PrepareAppend("order-1", chronicle.NoStream, in, chronicle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].ID != "0190a3b4-c5d6-7e8f-9012-3456789abcde" {
		t.Errorf("id not canonicalised: %s", out[0].ID)
	}
	if out[1].ID == "" || out[0].SchemaVersion != 1 || out[1].SchemaVersion != 3 {
		t.Errorf("defaults not applied: %+v", out)
	}
	if in[1].ID != "" {
		t.Errorf("PrepareAppend modified its input")
	}
	dup := []chronicle.Event{in[0], in[0]}
	if _, err := chronicle.PrepareAppend("order-1", chronicle.Any, dup, chronicle.Limits{}); !errors.Is(err, chronicle.ErrInvalid) {
		t.Errorf("repeated id: err = %v, want ErrInvalid", err)
	}
}

func TestEventIDs(t *testing.T) {
	prev := ""
	for range 10000 {
		id := chronicle.NewEventID()
		got, err := chronicle.ParseEventID(id)
		if err != nil || got != id {
			t.Fatalf("ParseEventID(%q) = %q, %v", id, got, err)
		}
		if id[14] != '7' {
			t.Fatalf("%s is not a version 7 UUID", id)
		}
		if id <= prev {
			t.Fatalf("ids not increasing: %s after %s", id, prev)
		}
		prev = id
	}
	for _, s := range []string{"", "0190a3b4c5d67e8f90123456789abcde", "0190a3b4-c5d6-7e8f-9012-3456789abcdg", "0190a3b4-c5d6-7e8f-9012_3456789abcde"} {
		if _, err := chronicle.ParseEventID(s); err == nil {
			t.Errorf("ParseEventID(%q) accepted", s)
		}
	}
}

// TestEventIDsOfOneAppend: an append of more events than one millisecond's
// 4,096 ids gets its ids made at once, and they must still be valid,
// distinct and increasing, and so must the ids made after them.
func TestEventIDsOfOneAppend(t *testing.T) {
	in := make([]chronicle.Event, 10000)
	for i := range in {
		in[i] = chronicle.Event{Type: "ItemAdded", Data: json.RawMessage(`{}`)}
	}
	in[5000].ID = "0190A3B4-C5D6-7E8F-9012-3456789ABCDE" // a given id keeps its place
	evs, err := chronicle.PrepareAppend("order-1", chronicle.Any, in, chronicle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if evs[5000].ID != "0190a3b4-c5d6-7e8f-9012-3456789abcde" {
		t.Fatalf("given id became %s", evs[5000].ID)
	}
	ids := make([]string, 0, len(evs)+1)
	for i, e := range evs {
		if i != 5000 {
			ids = append(ids, e.ID)
		}
	}
	ids = append(ids, chronicle.NewEventID())
	for i, id := range ids {
		if got, err := chronicle.ParseEventID(id); err != nil || got != id || id[14] != '7' {
			t.Fatalf("id %d: %q is not a canonical version 7 UUID (%v)", i, id, err)
		}
		if i > 0 && id <= ids[i-1] {
			t.Fatalf("ids not increasing at %d: %s after %s", i, id, ids[i-1])
		}
	}
}

// TestParseEventIDEveryByte puts each of a set of bytes at each position of
// a valid id: ParseEventID must never panic, and must accept exactly when the
// result is still 8-4-4-4-12 hex (the fuzzer found a stray '-' inside a hex
// group walking the decoder past the end).
func TestParseEventIDEveryByte(t *testing.T) {
	const valid = "0190a3b4-c5d6-7e8f-9012-3456789abcde"
	isHex := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
	for pos := range len(valid) {
		for _, c := range []byte("-0aF_g \x00\xff") {
			s := []byte(valid)
			s[pos] = c
			want := c == '-' && (pos == 8 || pos == 13 || pos == 18 || pos == 23) || c != '-' && isHex(c) && pos != 8 && pos != 13 && pos != 18 && pos != 23
			got, err := chronicle.ParseEventID(string(s))
			if (err == nil) != want {
				t.Errorf("ParseEventID(%q) = %q, %v; want accepted=%v", s, got, err, want)
			}
			if err == nil && got != strings.ToLower(string(s)) {
				t.Errorf("ParseEventID(%q) = %q, want it in lower case", s, got)
			}
		}
	}
}

func TestStreamType(t *testing.T) {
	for in, want := range map[string]string{"order-ord_1": "order", "order-a-b": "order", "plain": "plain", "-x": ""} {
		if got := chronicle.StreamType(in); got != want {
			t.Errorf("StreamType(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzValidateJSON: whatever the bytes, no panic, and whatever is accepted
// is valid UTF-8 JSON that encoding/json decodes. Numbers are decoded as
// json.Number: JSON has no range limit, both backends store a number
// beyond float64 unchanged, and only a float64 could not hold it.
func FuzzValidateJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `"\ud800"`, `"\ud83d\ude00"`, `"\u0000"`, `["\\u0000"]`, "\"\xff\"", `"\ud800\`, `[1,-0.5e+3,{"a":[true,false,null]}]`, ` "\ud800\ud800" `, `"\ud800\u0000"`, `{"a":1,}`, `01`, `["\ud800"x]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := chronicle.ValidateJSON(b)
		if want := validateJSONRef(b); fmt.Sprint(err) != fmt.Sprint(want) {
			t.Fatalf("ValidateJSON(%q) = %v, want %v", b, err, want)
		}
		if err != nil {
			return
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			t.Fatalf("accepted %q but json.Unmarshal fails: %v", b, err)
		}
	})
}

func TestDerivedEventID(t *testing.T) {
	a := chronicle.DerivedEventID("ns", "key", "0")
	if a != chronicle.DerivedEventID("ns", "key", "0") {
		t.Fatal("same parts gave different ids")
	}
	if _, err := chronicle.ParseEventID(a); err != nil || a[14] != '8' {
		t.Fatalf("%s is not a version 8 UUID: %v", a, err)
	}
	for _, other := range [][]string{{"ns", "key", "1"}, {"ns", "ke", "y0"}, {"nskey", "0"}, {"ns", "key0"}} {
		if b := chronicle.DerivedEventID(other...); b == a {
			t.Errorf("DerivedEventID(%q) = DerivedEventID(ns, key, 0)", other)
		}
	}
}

// validateJSONRef is ValidateJSON as first written, in three passes: utf8.Valid,
// json.Valid, then a scan of the escapes. The one-pass ValidateJSON must give
// the same answer and message for every input.
func validateJSONRef(b []byte) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("not valid UTF-8")
	}
	if !json.Valid(b) {
		return fmt.Errorf("not valid JSON")
	}
	hex4 := func(b []byte) rune {
		r, _ := strconv.ParseUint(string(b), 16, 32)
		return rune(r)
	}
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			i++
			if b[i] != 'u' {
				continue
			}
			r := hex4(b[i+1 : i+5])
			i += 4
			switch {
			case r == 0:
				return fmt.Errorf("string contains NUL (\\u0000)")
			case r >= 0xdc00 && r <= 0xdfff:
				return fmt.Errorf("string contains a lone surrogate (\\u%04x)", r)
			case r >= 0xd800 && r <= 0xdbff:
				if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
					return fmt.Errorf("string contains a lone surrogate (\\u%04x)", r)
				}
				lo := hex4(b[i+3 : i+7])
				if lo < 0xdc00 || lo > 0xdfff {
					return fmt.Errorf("string contains a lone surrogate (\\u%04x)", r)
				}
				i += 6
			}
		}
	}
	return nil
}

// TestValidateJSONDepth: the nesting limit is encoding/json's.
func TestValidateJSONDepth(t *testing.T) {
	for _, n := range []int{9999, 10000, 10001} {
		for _, pair := range []string{"[]", "{}"} {
			b := []byte(strings.Repeat(pair[:1], n) + strings.Repeat(pair[1:], n))
			if pair == "{}" { // objects nest through a member
				b = []byte(strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1))
			}
			if got, want := chronicle.ValidateJSON(b), validateJSONRef(b); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("depth %d of %s: %v, want %v", n, pair, got, want)
			}
		}
	}
}

func BenchmarkValidateJSON(b *testing.B) {
	data := []byte(`{"order_id":"ord_01HZX8","customer":{"id":"cus_42","name":"Ada \u00e9 Lovelace","tier":"gold"},"items":[{"sku":"SKU-1","qty":2,"price":12.5},{"sku":"SKU-2","qty":1,"price":99.99}],"total":124.99,"note":null,"gift":false}`)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := chronicle.ValidateJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}
