package audit_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// prepareRef is audit.PrepareAppend in two passes: chronicle.PrepareAppend,
// then Digests of each event.
func prepareRef(stream string, events []chronicle.Event, lim chronicle.Limits) ([]chronicle.Event, [][2]audit.Hash, error) {
	evs, err := chronicle.PrepareAppend(stream, chronicle.Any, events, lim)
	if err != nil {
		return nil, nil, err
	}
	sums := make([][2]audit.Hash, len(evs))
	for i, e := range evs {
		d, m, err := audit.Digests(e.Data, e.Metadata)
		if err != nil {
			return nil, nil, &chronicle.InvalidError{Field: fmt.Sprintf("events[%d]", i), Reason: err.Error()}
		}
		sums[i] = [2]audit.Hash{d, m}
	}
	return evs, sums, nil
}

// checkPrepare: audit.PrepareAppend returns what prepareRef returns, error
// message included.
func checkPrepare(t *testing.T, events []chronicle.Event, lim chronicle.Limits) {
	t.Helper()
	gotEvs, gotSums, gotErr := audit.PrepareAppend("order-1", chronicle.Any, events, lim)
	wantEvs, wantSums, wantErr := prepareRef("order-1", events, lim)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) ||
		errors.Is(gotErr, chronicle.ErrInvalid) != errors.Is(wantErr, chronicle.ErrInvalid) ||
		errors.Is(gotErr, chronicle.ErrEventTooLarge) != errors.Is(wantErr, chronicle.ErrEventTooLarge) {
		t.Fatalf("PrepareAppend(%s) error = %v, want %v", describe(events), gotErr, wantErr)
	}
	if !reflect.DeepEqual(gotEvs, wantEvs) || !reflect.DeepEqual(gotSums, wantSums) {
		t.Fatalf("PrepareAppend(%s) = %x, want %x", describe(events), gotSums, wantSums)
	}
}

func describe(events []chronicle.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "{%q %q %q}", e.Type, e.Data, e.Metadata)
	}
	return b.String()
}

// twoEvents: the data and metadata given, then the same swapped with the
// type given, so that errors of two events compete.
func twoEvents(data, meta []byte, typ string) []chronicle.Event {
	return []chronicle.Event{
		{ID: "0b6f3c1e-55a4-4f0e-9d7b-3c1f2a9e8d10", Type: "OrderCreated", Data: data, Metadata: meta},
		{ID: "0b6f3c1e-55a4-4f0e-9d7b-3c1f2a9e8d11", Type: typ, Data: meta, Metadata: data},
	}
}

var prepareSeeds = []struct{ data, meta, typ string }{
	{`{"total":9999,"items":[{"sku":"a","qty":2}]}`, `{"actor":"token:ops"}`, "OrderPaid"},
	{`{"b":1,"a":[1.5e3,-0,"\u20ac\ud83d\ude00"]}`, ``, "OrderPaid"},
	{`{"a":"\u0000"}`, `{"a":1,"a":2}`, "OrderPaid"},
	{`{"a":"\u0000"`, `{}`, "OrderPaid"},
	{`"\ud800"`, `{"x":"\udc00"}`, "OrderPaid"},
	{`["\ud800\u0041"]`, `{"x":1e400}`, ""},
	{`{"a":1,"a":2}`, `{"b":1e400}`, "OrderPaid"},
	{`1e400`, `{}`, "bad\x01type"},
	{`{"a":1}`, `null`, "OrderPaid"},
	{`{"a":1}`, `[1]`, "OrderPaid"},
	{"\"\xff\"", `{}`, "OrderPaid"},
	{`{"a":1} x`, ` {"a" : [ true , false , null ] } `, "OrderPaid"},
	{`{"\ud83d\ude00":1,"\ufb33":2,"\u0000":3}`, `{"a":"\u0000\ud800"}`, "OrderPaid"},
	{`{"a":"\u0000", "b": }`, `{"a":1,"a":2,}`, "OrderPaid"},
	{``, `{}`, "OrderPaid"},
}

func TestPrepareAppendOnePass(t *testing.T) {
	for _, s := range prepareSeeds {
		checkPrepare(t, twoEvents([]byte(s.data), []byte(s.meta), s.typ), chronicle.Limits{})
	}
	// The nesting limit, around which the canonicalizer leaves the verdict
	// to ValidateJSON.
	for _, n := range []int{9998, 9999, 10000, 10001, 10002} {
		for _, inner := range []string{"", "1", `"\u0000"`} {
			deep := []byte(strings.Repeat("[", n) + inner + strings.Repeat("]", n))
			checkPrepare(t, twoEvents(deep, []byte(`{}`), "OrderPaid"), chronicle.Limits{MaxEventSize: 1 << 16})
		}
	}
	// A size error comes before any JSON error.
	checkPrepare(t, twoEvents([]byte(`{"a":"\u0000"}`), []byte(`{"a":1}`), "OrderPaid"), chronicle.Limits{MaxEventSize: 5})
}

func FuzzPrepareAppend(f *testing.F) {
	for _, s := range prepareSeeds {
		f.Add([]byte(s.data), []byte(s.meta), s.typ)
	}
	f.Fuzz(func(t *testing.T, data, meta []byte, typ string) {
		checkPrepare(t, twoEvents(data, meta, typ), chronicle.Limits{})
	})
}

// What an append of 100 events pays before it reaches the store: checks
// and digests, in one pass and in two.
func BenchmarkPrepareAppend(b *testing.B) {
	data := []byte(`{"customer_id":"cust_456","total":9999,"currency":"USD","items":[{"sku":"SKU-1001","name":"Widget","qty":2,"price":2500},{"sku":"SKU-2002","name":"Gadget","qty":1,"price":4999}],"shipping":"standard"}`)
	meta := []byte(`{"correlation_id":"corr-00000000","source":"bench"}`)
	events := make([]chronicle.Event, 100)
	for i := range events {
		events[i] = chronicle.Event{Type: "OrderCreated", Data: data, Metadata: meta}
	}
	for _, bb := range []struct {
		name    string
		prepare func(string, []chronicle.Event, chronicle.Limits) ([]chronicle.Event, [][2]audit.Hash, error)
	}{
		{"one-pass", func(stream string, evs []chronicle.Event, lim chronicle.Limits) ([]chronicle.Event, [][2]audit.Hash, error) {
			return audit.PrepareAppend(stream, chronicle.Any, evs, lim)
		}},
		{"two-pass", prepareRef},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := bb.prepare("order-1", events, chronicle.Limits{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
		})
	}
}
