package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEventHashFromJSON recomputes every event's hash from the JSON of GET
// /orders/{id}/events with nothing but crypto/sha256 and the definition a
// third party reads, independently of package audit. The canonical JSON
// here is encoding/json's re-encoding (sorted keys, no HTML escaping): it
// equals RFC 8785 for what these events hold (ASCII strings, integers).
func TestEventHashFromJSON(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("o-hash")
		e.mustDo(req{method: "POST", path: "/orders/o-hash/items", body: `{"sku":"B","quantity":3,"unit_price":100}`}, http.StatusOK)
		e.mustDo(req{method: "POST", path: "/orders/o-hash/payments", body: `{"method":"card","amount":2300}`}, http.StatusOK)
		body := e.mustDo(req{method: "GET", path: "/orders/o-hash/events"}, http.StatusOK).body
		var tl struct {
			Events []struct {
				Version             int64           `json:"version"`
				EventID             string          `json:"event_id"`
				Type                string          `json:"type"`
				SchemaVersion       int             `json:"schema_version"`
				StoredSchemaVersion int             `json:"stored_schema_version"`
				Data                json.RawMessage `json:"data"`
				Metadata            json.RawMessage `json:"metadata"`
				RecordedAt          time.Time       `json:"recorded_at"`
				Hash                string          `json:"hash"`
				PrevHash            string          `json:"prev_hash"`
			} `json:"events"`
		}
		if err := json.Unmarshal(body, &tl); err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		if len(tl.Events) != 3 {
			t.Fatalf("%d events, want 3\n%s", len(tl.Events), body)
		}
		prev := strings.Repeat("0", 64)
		for _, ev := range tl.Events {
			if ev.StoredSchemaVersion != 0 {
				t.Fatalf("v%d was upcast: its data is not the stored form", ev.Version)
			}
			if ev.PrevHash != prev {
				t.Errorf("v%d: prev_hash %s, want %s", ev.Version, ev.PrevHash, prev)
			}
			lines := strings.Join([]string{
				ev.PrevHash, "order-o-hash", strconv.FormatInt(ev.Version, 10), ev.EventID, ev.Type,
				strconv.Itoa(ev.SchemaVersion), ev.RecordedAt.UTC().Format("2006-01-02T15:04:05.000000Z"),
				canonicalSHA256(t, ev.Data), canonicalSHA256(t, ev.Metadata),
			}, "\n")
			sum := sha256.Sum256([]byte(lines))
			if got := hex.EncodeToString(sum[:]); got != ev.Hash {
				t.Errorf("v%d: hash %s, recomputed %s", ev.Version, ev.Hash, got)
			}
			prev = ev.Hash
		}
		// The feed shows the same chain.
		var page struct {
			Events []struct {
				Version  int64  `json:"version"`
				Hash     string `json:"hash"`
				PrevHash string `json:"prev_hash"`
			} `json:"events"`
		}
		// On PostgreSQL the feed shows an event once no transaction that
		// began before its commit is open, on the whole (shared) server:
		// wait for it.
		for deadline := time.Now().Add(30 * time.Second); ; {
			fb := e.mustDo(req{method: "GET", path: "/events"}, http.StatusOK).body
			err := json.Unmarshal(fb, &page)
			if err == nil && len(page.Events) == len(tl.Events) {
				break
			}
			if err != nil || len(page.Events) > len(tl.Events) || time.Now().After(deadline) {
				t.Fatalf("GET /events: %v, %d events\n%s", err, len(page.Events), fb)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for i, ev := range page.Events {
			if ev.Hash != tl.Events[i].Hash || ev.PrevHash != tl.Events[i].PrevHash {
				t.Errorf("GET /events v%d: hash %q prev_hash %q, want %s %s", ev.Version, ev.Hash, ev.PrevHash, tl.Events[i].Hash, tl.Events[i].PrevHash)
			}
		}
	})
}

// canonicalSHA256 is the hex SHA-256 of b re-encoded with sorted keys and
// no insignificant whitespace.
func canonicalSHA256(t *testing.T, b json.RawMessage) string {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // integers stay as written
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bytes.TrimSuffix(out.Bytes(), []byte("\n")))
	return hex.EncodeToString(sum[:])
}
