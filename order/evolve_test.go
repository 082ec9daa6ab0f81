package order_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/upcast"
	"github.com/google/go-cmp/cmp"
)

func errorsIsInvalid(err error, field string) bool {
	return errors.Is(err, &order.InvalidError{Field: field}) && errors.Is(err, order.ErrInvalid)
}

func TestStateFold(t *testing.T) {
	tr := tester()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := tr.State(t, created(),
		order.ItemAdded{SKU: "B", Quantity: 1, UnitPrice: 300},
		order.ItemAdded{SKU: "A", Quantity: 1, UnitPrice: 500},
		order.ItemRemoved{SKU: "B"},
		order.ShippingAddressChanged{Address: address()},
		order.PaymentReceived{Method: "card", Amount: 1500},
		order.OrderShipped{Carrier: "fedex", Tracking: "FX1"},
		order.OrderDelivered{SignedBy: "J. Smith"},
	)
	a := address()
	want := order.State{
		OrderID: "ord_1", CustomerID: "cust_1", Status: order.StatusDelivered, Currency: "USD",
		Items: []order.Item{{SKU: "A", Quantity: 3, UnitPrice: 500}}, Total: 1500,
		PaidAmount: 1500, PaymentMethod: "card", Carrier: "fedex", Tracking: "FX1",
		ShippingAddress: &a, SignedBy: "J. Smith",
		CreatedAt: start.Add(time.Second), UpdatedAt: start.Add(8 * time.Second), Version: 8,
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}

// TestStateJSON pins the order state body of API.md.
func TestStateJSON(t *testing.T) {
	s := tester().State(t, order.OrderCreated{CustomerID: "c1", Currency: "USD", Items: []order.Item{}}, cancelled())
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"order_id":"ord_1","customer_id":"c1","status":"cancelled","currency":"USD","items":[],"total":0,` +
		`"paid_amount":0,"payment_method":"","carrier":"","tracking":"","shipping_address":null,` +
		`"cancel_reason":"changed my mind","signed_by":"","created_at":"2026-01-01T00:00:01Z",` +
		`"updated_at":"2026-01-01T00:00:02Z","version":2}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	// A state survives a JSON round trip exactly: snapshots depend on it.
	var back order.State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestEvolveDoesNotModifyItsInput(t *testing.T) {
	tr := tester()
	s := tr.State(t, created(), order.ItemAdded{SKU: "B", Quantity: 1, UnitPrice: 1})
	before := tr.State(t, created(), order.ItemAdded{SKU: "B", Quantity: 1, UnitPrice: 1})
	for _, e := range []order.Event{
		order.ItemAdded{SKU: "A", Quantity: 5, UnitPrice: 500},
		order.ItemAdded{SKU: "C", Quantity: 1, UnitPrice: 1},
		order.ItemRemoved{SKU: "A"},
		order.ShippingAddressChanged{Address: address()},
	} {
		recs, err := tr.Record(2, e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := order.Evolve(s, recs[0]); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, s); diff != "" {
			t.Fatalf("Evolve(%T) modified its input:\n%s", e, diff)
		}
	}
}

func TestEvolveRefusesBadHistories(t *testing.T) {
	tr := tester()
	rec := func(after int, e order.Event) chronicle.RecordedEvent {
		r, err := tr.Record(after, e)
		if err != nil {
			t.Fatal(err)
		}
		return r[0]
	}
	s := tr.State(t, created())
	tests := []struct {
		name  string
		state order.State
		e     chronicle.RecordedEvent
	}{
		{"event before creation", order.State{}, rec(0, paid())},
		{"created twice", s, rec(1, created())},
		{"version gap", s, rec(2, paid())},
		{"not upcast", order.State{}, func() chronicle.RecordedEvent { r := rec(0, created()); r.SchemaVersion = 1; return r }()},
		{"unknown type", s, chronicle.RecordedEvent{StreamID: "order-ord_1", Version: 2, Type: "Nope", SchemaVersion: 1, Data: json.RawMessage(`{}`)}},
		{"bad data", s, chronicle.RecordedEvent{StreamID: "order-ord_1", Version: 2, Type: order.TypeItemAdded, SchemaVersion: 1, Data: json.RawMessage(`{"quantity":"x"}`)}},
		{"not an order stream", order.State{}, func() chronicle.RecordedEvent { r := rec(0, created()); r.StreamID = "cart-1"; return r }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := order.Evolve(tc.state, tc.e); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestOrderCreatedHistory: each stored shape of OrderCreated upcasts to the
// current one; v1 predates currencies and reads as USD.
func TestOrderCreatedHistory(t *testing.T) {
	reg := order.NewRegistry()
	tests := []struct {
		version int
		data    string
		want    order.OrderCreated
	}{
		{1, `{"customer_id":"c1","total":9999}`, order.OrderCreated{CustomerID: "c1", Currency: "USD", Items: []order.Item{}, Total: 9999}},
		{2, `{"customer_id":"c1","total":9999,"currency":"EUR"}`, order.OrderCreated{CustomerID: "c1", Currency: "EUR", Items: []order.Item{}, Total: 9999}},
		{3, `{"customer_id":"c1","total":500,"currency":"GBP","items":[{"sku":"A","quantity":1,"unit_price":500}]}`,
			order.OrderCreated{CustomerID: "c1", Currency: "GBP", Items: []order.Item{{SKU: "A", Quantity: 1, UnitPrice: 500}}, Total: 500}},
	}
	for _, tc := range tests {
		e, err := reg.Upcast(chronicle.RecordedEvent{StreamID: "order-o", Version: 1, Type: order.TypeOrderCreated, SchemaVersion: tc.version, Data: json.RawMessage(tc.data)})
		if err != nil {
			t.Fatalf("v%d: %v", tc.version, err)
		}
		got, err := order.Decode(e)
		if err != nil {
			t.Fatalf("v%d: %v", tc.version, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("v%d (-want +got):\n%s", tc.version, diff)
		}
	}
	_, err := reg.Upcast(chronicle.RecordedEvent{StreamID: "order-o", Version: 3, Type: order.TypeOrderCreated, SchemaVersion: 4, Data: json.RawMessage(`{}`)})
	if !errors.Is(err, upcast.ErrUnknown) || !strings.Contains(err.Error(), `"order-o" version 3: event OrderCreated schema v4`) {
		t.Errorf("v4 err = %v", err)
	}
	for _, typ := range order.EventTypes() {
		if v, ok := reg.Current(typ); !ok || v < 1 {
			t.Errorf("%s not declared", typ)
		}
	}
}

// FuzzOrderUpcast: arbitrary stored data at any version of any order event
// type never panics the upcast chain, Decode or Evolve.
func FuzzOrderUpcast(f *testing.F) {
	for _, s := range []string{`{"customer_id":"c1","total":9999}`, `{"customer_id":"c","currency":"EUR"}`, `{}`, `null`, `[]`, `1`, `{"items":null}`, `{"items":{}}`, `{"currency":1}`} {
		for v := 0; v <= 4; v++ {
			f.Add([]byte(s), v, uint8(0))
		}
	}
	reg := order.NewRegistry()
	types := order.EventTypes()
	f.Fuzz(func(t *testing.T, data []byte, version int, typ uint8) {
		e := chronicle.RecordedEvent{StreamID: "order-o", Version: 1, Type: types[int(typ)%len(types)], SchemaVersion: version, Data: data}
		u, err := reg.Upcast(e)
		if err != nil {
			return
		}
		if cur, _ := reg.Current(e.Type); u.SchemaVersion != cur {
			t.Fatalf("schema version %d, want %d", u.SchemaVersion, cur)
		}
		if _, err := order.Decode(u); err == nil && e.Type == order.TypeOrderCreated && version >= 0 && version <= 1 {
			var c struct{ Currency string }
			if json.Unmarshal(u.Data, &c) == nil && c.Currency == "" && !strings.Contains(string(data), `"currency"`) {
				t.Fatalf("v1 upcast without a currency: %s", u.Data)
			}
		}
		_, _ = order.Evolve(order.State{}, u)
	})
}
