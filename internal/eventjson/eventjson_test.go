package eventjson

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/feed"
)

// Append must write what json.Marshal writes, byte for byte: GET /events
// encodes with encoding/json and the relay with Append, and a consumer may
// see the same event from both.
func TestAppendIsMarshal(t *testing.T) {
	at := time.Date(2026, 12, 3, 15, 4, 5, 123456789, time.UTC)
	base := feed.Event{
		Checkpoint: "AAAAAAAAAAEAAAAAAAAAAQ", Position: 42, StreamID: "order-1", Version: 7,
		EventID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Type: "OrderPlaced", SchemaVersion: 2,
		Data: json.RawMessage(`{"a":1}`), Metadata: json.RawMessage(`{}`), RecordedAt: at,
	}
	cases := map[string]func(e *feed.Event){
		"plain":          func(e *feed.Event) {},
		"spaces":         func(e *feed.Event) { e.Data = json.RawMessage(" {\"a\" : [1, 2,\t3],\n\r \"b\": \"x y\"} ") },
		"pg json spaces": func(e *feed.Event) { e.Metadata = json.RawMessage(`{"k": "v", "n": null}`) },
		"html":           func(e *feed.Event) { e.Data = json.RawMessage(`{"<a>":"b&c>d"}`) },
		"escapes":        func(e *feed.Event) { e.Data = json.RawMessage(`{"q":"a\"b\\","s":" \" , \\\" "}`) },
		"line separators": func(e *feed.Event) {
			e.Data = json.RawMessage("{\"s\":\"a\u2028b\u2029c\u2027\",\"é\":\"☃\"}")
		},
		"unicode names": func(e *feed.Event) { e.StreamID, e.Type = "ordér-<1>&\u2028", "Typ\"e\\\t\x01" },
		"upcast":        func(e *feed.Event) { e.StoredSchemaVersion, e.UpcastError = 1, "upcast <v1>: bad & \"worse\"" },
		"nil metadata":  func(e *feed.Event) { e.Metadata = nil },
		"scalar data":   func(e *feed.Event) { e.Data = json.RawMessage(` "text" `) },
		"negative":      func(e *feed.Event) { e.Position, e.Version = -1, 0 },
		"zoned time":    func(e *feed.Event) { e.RecordedAt = at.In(time.FixedZone("x", -(3*3600 + 30*60))) },
		"whole seconds": func(e *feed.Event) { e.RecordedAt = at.Truncate(time.Second) },
		"zero time":     func(e *feed.Event) { e.RecordedAt = time.Time{} },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			e := base
			change(&e)
			want, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Append([]byte("prefix"), e)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[len("prefix"):], want) {
				t.Fatalf("Append:\n got %s\nwant %s", got[len("prefix"):], want)
			}
		})
	}
}

// FuzzAppend compares Append with json.Marshal on any valid JSON data and
// any names.
func FuzzAppend(f *testing.F) {
	f.Add(`{"a": [1, "<x>"]}`, "order-1", "Placed")
	f.Add("\"\u2028\\\"\"", "a\u2029", "<&>")
	f.Fuzz(func(t *testing.T, data, stream, typ string) {
		if !json.Valid([]byte(data)) {
			t.Skip()
		}
		e := feed.Event{StreamID: stream, Type: typ, Data: json.RawMessage(data), Metadata: json.RawMessage(`{}`)}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Append(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Append:\n got %s\nwant %s", got, want)
		}
	})
}
