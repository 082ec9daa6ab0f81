package testbackends

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// TestSameHashesOnBothBackends: the same events appended to SQLite (hashed
// in Go) and PostgreSQL (hashed by a trigger) get the same hashes. The
// stores set recorded_at themselves, so each event's hash on one backend is
// recomputed from the other backend's fields with this backend's
// recorded_at and prev_hash, and must equal the stored one; and each
// stream's chain must hold on both.
func TestSameHashesOnBothBackends(t *testing.T) {
	sq, pg := SQLite(t, Options{}), Postgres(t, Options{})
	ctx := context.Background()
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		stream := fmt.Sprintf("order-prop%d", n)
		appends := rapid.IntRange(1, 3).Draw(rt, "appends")
		for a := range appends {
			evs := rapid.SliceOfN(eventGen(), 1, 4).Draw(rt, fmt.Sprintf("events%d", a))
			for i := range evs {
				evs[i].ID = chronicle.NewEventID()
			}
			for _, s := range []Backend{sq, pg} {
				if _, err := s.Append(ctx, stream, chronicle.Any, evs); err != nil {
					rt.Fatalf("append: %v", err)
				}
			}
		}
		read := func(s Backend) []chronicle.RecordedEvent {
			evs, err := s.ReadStream(ctx, stream, chronicle.ReadStreamOptions{})
			if err != nil {
				rt.Fatal(err)
			}
			return evs
		}
		a, b := read(sq), read(pg)
		if len(a) != len(b) {
			rt.Fatalf("sqlite has %d events, postgres %d", len(a), len(b))
		}
		for _, side := range []struct {
			name       string
			own, other []chronicle.RecordedEvent
		}{{"sqlite", a, b}, {"postgres", b, a}} {
			events := make([]audit.Event, len(a))
			hashes := make([]audit.Hash, len(a))
			for i, e := range side.own {
				o := side.other[i]
				if o.ID != e.ID || o.Version != e.Version {
					rt.Fatalf("event %d differs: %s v%d and %s v%d", i, e.ID, e.Version, o.ID, o.Version)
				}
				// The other backend's stored event, at this one's time.
				o.RecordedAt = e.RecordedAt
				events[i], hashes[i] = audit.FromRecorded(o, e.PrevHash), e.Hash
			}
			if err := audit.CheckStream(events, hashes); err != nil {
				rt.Fatalf("%s: %v", side.name, err)
			}
		}
	})
}

// eventGen makes events whose JSON varies in what canonicalization
// changes: key order, whitespace, number forms, escapes, non-ASCII.
func eventGen() *rapid.Generator[chronicle.Event] {
	return rapid.Custom(func(t *rapid.T) chronicle.Event {
		e := chronicle.Event{
			Type:          rapid.SampledFrom([]string{"OrderCreated", "ItemAdded", "Ünïcode"}).Draw(t, "type"),
			SchemaVersion: rapid.IntRange(0, 3).Draw(t, "schema"),
			Data:          jsonObject(t, "data", 2),
		}
		if rapid.Bool().Draw(t, "hasMeta") {
			e.Metadata = jsonObject(t, "meta", 1)
		}
		return e
	})
}

func jsonObject(t *rapid.T, label string, depth int) json.RawMessage {
	keys := rapid.SliceOfNDistinct(text(), 0, 4, func(s string) string { return s }).Draw(t, label+"keys")
	var b strings.Builder
	b.WriteString("{ ")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ,\n")
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteString(": ")
		b.Write(jsonValue(t, fmt.Sprintf("%s.%d", label, i), depth))
	}
	b.WriteString("}")
	return json.RawMessage(b.String())
}

func jsonValue(t *rapid.T, label string, depth int) []byte {
	kinds := []string{"int", "float", "exp", "string", "escaped", "bool", "null"}
	if depth > 0 {
		kinds = append(kinds, "object", "array")
	}
	switch rapid.SampledFrom(kinds).Draw(t, label) {
	case "int":
		return fmt.Appendf(nil, "%d", rapid.Int64Range(-1<<53, 1<<53).Draw(t, label+"i"))
	case "float":
		f := rapid.Float64().Filter(func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }).Draw(t, label+"f")
		b, _ := json.Marshal(f)
		return b
	case "exp":
		// Forms that are one double: 1.50, 15E-1, 150e-2.
		return []byte(rapid.SampledFrom([]string{"1.50", "15E-1", "150e-2", "-0", "1e2", "100.0"}).Draw(t, label+"e"))
	case "string":
		b, _ := json.Marshal(text().Draw(t, label+"s"))
		return b
	case "escaped":
		return []byte(rapid.SampledFrom([]string{`"\u00e9"`, `"\/"`, `"a\tb"`, `"\ud83d\ude00"`, `"<&>"`}).Draw(t, label+"x"))
	case "bool":
		return []byte(fmt.Sprint(rapid.Bool().Draw(t, label+"b")))
	case "null":
		return []byte("null")
	case "object":
		return jsonObject(t, label, depth-1)
	default:
		n := rapid.IntRange(0, 3).Draw(t, label+"n")
		parts := make([]string, n)
		for i := range parts {
			parts[i] = string(jsonValue(t, fmt.Sprintf("%s[%d]", label, i), depth-1))
		}
		return []byte("[" + strings.Join(parts, ", ") + "]")
	}
}

// text is a string the stores accept: valid UTF-8 without NUL.
func text() *rapid.Generator[string] {
	return rapid.String().Filter(func(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) })
}
