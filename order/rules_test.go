package order_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle/aggregate/aggregatetest"
	"github.com/chronicle-es/chronicle/order"
)

type orderCase = aggregatetest.Case[order.Command, order.Event]

func tester() *aggregatetest.Tester[order.State, order.Command, order.Event] {
	return aggregatetest.New(order.Definition(), order.NewRegistry(), "order-ord_1")
}

func ptr[T any](v T) *T { return &v }

// Fixtures: functions, not package variables, so no test can change
// another's.
var (
	created = func() order.Event {
		return order.OrderCreated{CustomerID: "cust_1", Currency: "USD", Items: []order.Item{{SKU: "A", Quantity: 2, UnitPrice: 500}}, Total: 1000}
	}
	paid      = func() order.Event { return order.PaymentReceived{Method: "card", Amount: 1000} }
	shipped   = func() order.Event { return order.OrderShipped{Carrier: "fedex", Tracking: "FX1"} }
	delivered = func() order.Event { return order.OrderDelivered{SignedBy: "J. Smith"} }
	cancelled = func() order.Event { return order.OrderCancelled{Reason: "changed my mind"} }
	address   = func() order.Address {
		return order.Address{Name: "J. Smith", Line1: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "US"}
	}
)

// history returns events that leave an order in status st.
func history(st order.Status) []order.Event {
	switch st {
	case order.StatusCreated:
		return []order.Event{created()}
	case order.StatusPaid:
		return []order.Event{created(), paid()}
	case order.StatusShipped:
		return []order.Event{created(), paid(), shipped()}
	case order.StatusDelivered:
		return []order.Event{created(), paid(), shipped(), delivered()}
	case order.StatusCancelled:
		return []order.Event{created(), cancelled()}
	}
	panic(st)
}

// TestStatusRules is the status table of API.md: each command on an order
// in each status is either allowed (and causes its event) or refused with a
// rule violation carrying the current status; on a missing order every
// command but Create is "not found".
func TestStatusRules(t *testing.T) {
	rules := []struct {
		cmd     order.Command
		event   order.Event
		allowed []order.Status
	}{
		{order.Create{CustomerID: "cust_1"}, nil, nil}, // allowed only on a missing order
		{order.AddItem{SKU: "B", Quantity: 1, UnitPrice: 100}, order.ItemAdded{SKU: "B", Quantity: 1, UnitPrice: 100}, []order.Status{order.StatusCreated}},
		{order.RemoveItem{SKU: "A"}, order.ItemRemoved{SKU: "A"}, []order.Status{order.StatusCreated}},
		{order.ChangeShippingAddress{Address: address()}, order.ShippingAddressChanged{Address: address()}, []order.Status{order.StatusCreated, order.StatusPaid}},
		{order.Pay{Method: "card", Amount: 1000}, paid(), []order.Status{order.StatusCreated}},
		{order.Ship{Carrier: "ups", Tracking: "1Z"}, order.OrderShipped{Carrier: "ups", Tracking: "1Z"}, []order.Status{order.StatusPaid}},
		{order.Deliver{SignedBy: "X"}, order.OrderDelivered{SignedBy: "X"}, []order.Status{order.StatusShipped}},
		{order.Cancel{Reason: "r"}, order.OrderCancelled{Reason: "r"}, []order.Status{order.StatusCreated, order.StatusPaid}},
	}
	var cases []orderCase
	for _, r := range rules {
		name := fmt.Sprintf("%T", r.cmd)[len("order."):]
		_, isCreate := r.cmd.(order.Create)
		if !isCreate {
			cases = append(cases, orderCase{Name: name + "/missing order", When: r.cmd, Err: &order.NotFoundError{}})
		}
		for _, st := range order.Statuses() {
			c := orderCase{Name: fmt.Sprintf("%s/%s", name, st), Given: history(st), When: r.cmd}
			switch {
			case isCreate:
				c.Err = order.ErrAlreadyExists
			case slices.Contains(r.allowed, st):
				c.Then = []order.Event{r.event}
			default:
				c.Err = &order.RuleError{Command: r.cmd.Name(), Status: st}
			}
			cases = append(cases, c)
		}
	}
	// A paid order that is then cancelled is refused like any cancelled one.
	cases = append(cases, orderCase{Name: "Pay/cancelled after payment", Given: []order.Event{created(), paid(), cancelled()},
		When: order.Pay{Method: "card", Amount: 1000}, Err: &order.RuleError{Status: order.StatusCancelled}})
	tester().Run(t, cases...)
}

// TestValueRules covers the rules on values: defaults, totals, payments.
func TestValueRules(t *testing.T) {
	items := []order.Item{{SKU: "A", Quantity: 2, UnitPrice: 500}, {SKU: "B", Quantity: 1, UnitPrice: 250}}
	tester().Run(t,
		orderCase{Name: "create defaults currency to USD and total to the sum of items",
			When: order.Create{CustomerID: "c1", Items: items},
			Then: []order.Event{order.OrderCreated{CustomerID: "c1", Currency: "USD", Items: items, Total: 1250}}},
		orderCase{Name: "create without items has total 0 and an empty item list",
			When: order.Create{CustomerID: "c1", Currency: "EUR"},
			Then: []order.Event{order.OrderCreated{CustomerID: "c1", Currency: "EUR", Items: []order.Item{}, Total: 0}}},
		orderCase{Name: "create with a total and no items keeps the total",
			When: order.Create{CustomerID: "c1", Total: ptr[int64](9999)},
			Then: []order.Event{order.OrderCreated{CustomerID: "c1", Currency: "USD", Items: []order.Item{}, Total: 9999}}},
		orderCase{Name: "create with items and the matching total",
			When: order.Create{CustomerID: "c1", Items: items, Total: ptr[int64](1250)},
			Then: []order.Event{order.OrderCreated{CustomerID: "c1", Currency: "USD", Items: items, Total: 1250}}},
		orderCase{Name: "create with items and another total", When: order.Create{CustomerID: "c1", Items: items, Total: ptr[int64](1)},
			Err: &order.InvalidError{Field: "total"}},
		orderCase{Name: "create with a negative total", When: order.Create{CustomerID: "c1", Total: ptr[int64](-1)},
			Err: &order.InvalidError{Field: "total"}},
		orderCase{Name: "create with a SKU twice", When: order.Create{CustomerID: "c1", Items: []order.Item{items[0], items[0]}},
			Err: &order.InvalidError{Field: "items[1].sku"}},
		orderCase{Name: "payment must equal the total (less)", Given: []order.Event{created()}, When: order.Pay{Method: "card", Amount: 999},
			Err: &order.RuleError{Status: order.StatusCreated}},
		orderCase{Name: "payment must equal the total (more)", Given: []order.Event{created()}, When: order.Pay{Method: "card", Amount: 1001},
			Err: &order.RuleError{Status: order.StatusCreated}},
		orderCase{Name: "payment of a zero-total order cannot equal it", Given: []order.Event{order.OrderCreated{CustomerID: "c", Currency: "USD", Items: []order.Item{}}},
			When: order.Pay{Method: "card", Amount: 1}, Err: &order.RuleError{Status: order.StatusCreated}},
		orderCase{Name: "payment matches the total after items changed", Given: []order.Event{created(), order.ItemAdded{SKU: "B", Quantity: 3, UnitPrice: 100}, order.ItemRemoved{SKU: "A"}},
			When: order.Pay{Method: "card", Amount: 300}, Then: []order.Event{order.PaymentReceived{Method: "card", Amount: 300}}},
		orderCase{Name: "adding a SKU already in the order at its price", Given: []order.Event{created()},
			When: order.AddItem{SKU: "A", Quantity: 1, UnitPrice: 500}, Then: []order.Event{order.ItemAdded{SKU: "A", Quantity: 1, UnitPrice: 500}}},
		orderCase{Name: "adding a SKU already in the order at another price", Given: []order.Event{created()},
			When: order.AddItem{SKU: "A", Quantity: 1, UnitPrice: 501}, Err: &order.RuleError{Status: order.StatusCreated}},
		orderCase{Name: "adding an item past the largest total", Given: []order.Event{order.OrderCreated{CustomerID: "c", Currency: "USD", Items: []order.Item{}, Total: order.MaxMoney}},
			When: order.AddItem{SKU: "B", Quantity: 1, UnitPrice: 1}, Err: &order.RuleError{Status: order.StatusCreated}},
		orderCase{Name: "removing a SKU not in the order", Given: []order.Event{created()},
			When: order.RemoveItem{SKU: "Z"}, Err: &order.NotFoundError{SKU: "Z"}},
		orderCase{Name: "removing an item after its line was removed", Given: []order.Event{created(), order.ItemRemoved{SKU: "A"}},
			When: order.RemoveItem{SKU: "A"}, Err: order.ErrNotFound},
	)
}

// TestInputRules: every field of every command is checked before the
// order's existence or status, and the error names the field.
func TestInputRules(t *testing.T) {
	long := strings.Repeat("x", order.MaxTextLength+1)
	addr := func(f func(*order.Address)) order.Command {
		a := address()
		f(&a)
		return order.ChangeShippingAddress{Address: a}
	}
	tests := []struct {
		field string
		cmd   order.Command
	}{
		{"customer_id", order.Create{}},
		{"customer_id", order.Create{CustomerID: "has space"}},
		{"customer_id", order.Create{CustomerID: strings.Repeat("c", 65)}},
		{"customer_id", order.Create{CustomerID: "é"}},
		{"currency", order.Create{CustomerID: "c", Currency: "usd"}},
		{"currency", order.Create{CustomerID: "c", Currency: "US"}},
		{"currency", order.Create{CustomerID: "c", Currency: "USDX"}},
		{"items[0].sku", order.Create{CustomerID: "c", Items: []order.Item{{Quantity: 1, UnitPrice: 1}}}},
		{"items[0].quantity", order.Create{CustomerID: "c", Items: []order.Item{{SKU: "A", Quantity: 0, UnitPrice: 1}}}},
		{"items[1].unit_price", order.Create{CustomerID: "c", Items: []order.Item{{SKU: "A", Quantity: 1, UnitPrice: 1}, {SKU: "B", Quantity: 1, UnitPrice: -5}}}},
		{"items[0].quantity", order.Create{CustomerID: "c", Items: []order.Item{{SKU: "A", Quantity: 1 << 40, UnitPrice: 1 << 40}}}},
		{"total", order.Create{CustomerID: "c", Total: ptr[int64](order.MaxMoney + 1)}},
		{"sku", order.AddItem{SKU: "a/b", Quantity: 1, UnitPrice: 1}},
		{"quantity", order.AddItem{SKU: "A", Quantity: -1, UnitPrice: 1}},
		{"unit_price", order.AddItem{SKU: "A", Quantity: 1, UnitPrice: 0}},
		{"sku", order.RemoveItem{}},
		{"name", addr(func(a *order.Address) { a.Name = " " })},
		{"line1", addr(func(a *order.Address) { a.Line1 = "" })},
		{"city", addr(func(a *order.Address) { a.City = "a\x00b" })},
		{"postal_code", addr(func(a *order.Address) { a.PostalCode = long })},
		{"country", addr(func(a *order.Address) { a.Country = "\xff" })},
		{"method", order.Pay{Amount: 1000}},
		{"amount", order.Pay{Method: "card", Amount: 0}},
		{"amount", order.Pay{Method: "card", Amount: -1000}},
		{"carrier", order.Ship{Tracking: "t"}},
		{"tracking", order.Ship{Carrier: "c"}},
		{"signed_by", order.Deliver{SignedBy: "line\nbreak"}},
		{"reason", order.Cancel{Reason: long}},
		{"reason", order.Cancel{Reason: "next\u0085line"}},
		{"reason", order.Cancel{Reason: "\u009b31m"}},
		{"name", addr(func(a *order.Address) { a.Name = "\u202eevil" })},
		{"line1", addr(func(a *order.Address) { a.Line1 = "1 Main St\u202c" })},
		{"city", addr(func(a *order.Address) { a.City = "\u2066x\u2069" })},
		{"method", order.Pay{Method: "card\u2067", Amount: 1}},
		{"carrier", order.Ship{Carrier: "ups\u2028", Tracking: "t"}},
		{"tracking", order.Ship{Carrier: "ups", Tracking: "1Z\u2029"}},
		{"signed_by", order.Deliver{SignedBy: "\u202dJ"}},
	}
	var cases []orderCase
	for i, tc := range tests {
		// Given a cancelled() order, so only the input check can explain the error.
		cases = append(cases, orderCase{Name: fmt.Sprintf("%T/%s/%d", tc.cmd, tc.field, i)[6:], Given: history(order.StatusCancelled),
			When: tc.cmd, Err: &order.InvalidError{Field: tc.field}})
	}
	tester().Run(t, cases...)
}

func TestOptionalTextMayBeEmpty(t *testing.T) {
	tester().Run(t,
		orderCase{Name: "deliver unsigned", Given: history(order.StatusShipped), When: order.Deliver{}, Then: []order.Event{order.OrderDelivered{}}},
		orderCase{Name: "cancel without reason", Given: history(order.StatusCreated), When: order.Cancel{}, Then: []order.Event{order.OrderCancelled{}}},
	)
}

func TestStreamID(t *testing.T) {
	if got, err := order.StreamID("ord_123-X"); err != nil || got != "order-ord_123-X" {
		t.Errorf("StreamID = %q, %v", got, err)
	}
	for _, bad := range []string{"", "a b", "ord.1", strings.Repeat("a", 65), "ü"} {
		if _, err := order.StreamID(bad); !errorsIsInvalid(err, "order_id") {
			t.Errorf("StreamID(%q) err = %v, want invalid order_id", bad, err)
		}
	}
}
