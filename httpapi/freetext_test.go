package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle"
)

// TestTextTimelineEscapes: an event stored before free text was checked
// (appended here past the API) holding bidi overrides, separators and
// controls is printed escaped by ?format=text, one event a line.
func TestTextTimelineEscapes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("old")
		ev := chronicle.Event{Type: "OrderCancelled", SchemaVersion: 1,
			Data: json.RawMessage("{\"reason\":\"\u202egnp.exe\u2028next\u0085line\"}")}
		if _, err := e.store.Append(context.Background(), "order-old", chronicle.Exact(1), []chronicle.Event{ev}); err != nil {
			t.Fatal(err)
		}
		got := e.mustDo(req{method: "GET", path: "/orders/old/events?format=text"}, 200)
		text := string(got.body)
		for _, r := range []rune{0x202e, 0x2028, 0x85} {
			if strings.ContainsRune(text, r) {
				t.Errorf("text holds %U raw:\n%q", r, text)
			}
		}
		if !strings.Contains(text, `\u202e`) || strings.Count(text, "\n") != 3 {
			t.Errorf("want the override escaped and 3 lines:\n%s", text)
		}
	})
}
