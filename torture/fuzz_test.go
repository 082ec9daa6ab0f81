package torture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
)

// FuzzAppendBothBackends appends the same fuzzed event (stream id, type,
// event id, data, metadata) to a SQLite and a PostgreSQL store that have
// seen the same appends: both must accept, or both must refuse with the
// same typed error (same field and reason), never a raw driver error; an
// accepted event reads back byte for byte the same from both. The seed
// corpus is in testdata/fuzz/FuzzAppendBothBackends.
//
//	go test ./torture -run '^$' -fuzz FuzzAppendBothBackends -fuzztime 20s
func FuzzAppendBothBackends(f *testing.F) {
	for _, s := range []struct {
		stream, typ, id string
		data, meta      string
	}{
		{"order-a", "OrderCreated", "", `{"customer_id":"c1","total":9999}`, `{"correlation_id":"x"}`},
		{"order-a", "ItemAdded", "0190a6a0-0000-7000-8000-000000000001", `{"sku":"A","quantity":1}`, ``},
		{"order-b", "ItemAdded", "0190a6a0-0000-7000-8000-000000000001", `{"sku":"A","quantity":1}`, ``}, // same id elsewhere
		{"order-a", "T", "", `"\u0000"`, ``},
		{"order-a", "T", "", `"\ud800"`, ``},
		{"order-a", "T", "", `"\ud83d\ude00"`, ``},
		{"order-a", "T", "", "\"\xff\"", ``},
		{"order-a", "T", "", `{"a":1,"a":2}`, `[]`},
		{"order-a", "T", "", ` {"a" : 1e400 } `, `{"b":null}`},
		{"", "T", "", `{}`, ``},
		{"order\x00a", "T", "", `{}`, ``},
		{"order-a", "", "", `{}`, ``},
		{"order-a", "T", "not-a-uuid", `{}`, ``},
		{"order-a", "T", "", ``, ``},
		{"order-a", "T", "", `{"pad":"` + string(bytes.Repeat([]byte("x"), 5000)) + `"}`, ``},
	} {
		f.Add(s.stream, s.typ, s.id, []byte(s.data), []byte(s.meta))
	}
	lim := testbackends.Options{Limits: chronicle.Limits{MaxEventSize: 4096}}
	stores := []testbackends.Backend{testbackends.SQLite(f, lim), testbackends.Postgres(f, lim)}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, stream, typ, id string, data, meta []byte) {
		evs := []chronicle.Event{{ID: id, Type: typ, Data: data, Metadata: meta}}
		var got [2]string
		var res [2]chronicle.AppendResult
		for i, s := range stores {
			r, err := s.Append(ctx, stream, chronicle.Any, evs)
			got[i], res[i] = errClass(err), r
		}
		if got[0] != got[1] {
			t.Fatalf("append(%q, %q, id %q, data %q, metadata %q):\n  sqlite:   %s\n  postgres: %s", stream, typ, id, data, meta, got[0], got[1])
		}
		if bytes.HasPrefix([]byte(got[0]), []byte("untyped")) {
			t.Fatalf("append(%q, %q, id %q, data %q, metadata %q): %s", stream, typ, id, data, meta, got[0])
		}
		if got[0] != "ok" {
			return
		}
		if res[0].FirstVersion != res[1].FirstVersion || res[0].LastVersion != res[1].LastVersion {
			t.Fatalf("versions differ: sqlite %+v, postgres %+v", res[0], res[1])
		}
		var back [2]chronicle.RecordedEvent
		for i, s := range stores {
			evs, err := s.ReadStream(ctx, stream, chronicle.ReadStreamOptions{From: res[i].LastVersion, To: res[i].LastVersion})
			if err != nil || len(evs) != 1 {
				t.Fatalf("read back %s v%d: %v, %d events", stream, res[i].LastVersion, err, len(evs))
			}
			back[i] = evs[0]
		}
		a, b := back[0], back[1]
		if a.Type != b.Type || a.ID != b.ID && id != "" || !bytes.Equal(a.Data, b.Data) || !bytes.Equal(a.Metadata, b.Metadata) {
			t.Fatalf("stored differently:\n  sqlite:   %s %s %q %q\n  postgres: %s %s %q %q", a.ID, a.Type, a.Data, a.Metadata, b.ID, b.Type, b.Data, b.Metadata)
		}
		// A retry returns the original event, which has the same content.
		if !bytes.Equal(a.Data, data) {
			t.Fatalf("data changed: appended %q, read back %q", data, a.Data)
		}
	})
}

// errClass names an append error by its type and details, so that the two
// backends' answers compare; an error of no chronicle type is "untyped".
func errClass(err error) string {
	var (
		inv *chronicle.InvalidError
		dup *chronicle.DuplicateEventError
		con *chronicle.ConflictError
	)
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &inv):
		return fmt.Sprintf("invalid %s: %s (too large: %v)", inv.Field, inv.Reason, errors.Is(err, chronicle.ErrEventTooLarge))
	case errors.As(err, &dup):
		return fmt.Sprintf("duplicate %s: %s", dup.EventID, dup.Reason)
	case errors.As(err, &con):
		return fmt.Sprintf("conflict expected %s actual %d", con.Expected, con.Actual)
	}
	return "untyped: " + err.Error()
}
