package order_test

import (
	"fmt"
	"testing"

	"github.com/chronicle-es/chronicle/order"
)

// items returns n distinct items, one unit at 1 each.
func items(n int) []order.Item {
	out := make([]order.Item, n)
	for i := range out {
		out[i] = order.Item{SKU: fmt.Sprintf("SKU-%05d", i), Quantity: 1, UnitPrice: 1}
	}
	return out
}

// TestItemLimit: an order holds at most MaxItems lines. A create with more
// is invalid input; adding a new line to a full order breaks a rule (the
// order's state decides), while adding to a line it has is fine.
func TestItemLimit(t *testing.T) {
	full := order.OrderCreated{CustomerID: "c", Currency: "USD", Items: items(order.MaxItems), Total: order.MaxItems}
	tester().Run(t,
		orderCase{Name: "create with the most items",
			When: order.Create{CustomerID: "c", Items: items(order.MaxItems)},
			Then: []order.Event{full}},
		orderCase{Name: "create with one item too many",
			When: order.Create{CustomerID: "c", Items: items(order.MaxItems + 1)},
			Err:  &order.InvalidError{Field: "items"}},
		orderCase{Name: "add a new line to a full order", Given: []order.Event{full},
			When: order.AddItem{SKU: "NEW", Quantity: 1, UnitPrice: 1},
			Err:  &order.RuleError{Command: order.AddItem{}.Name(), Status: order.StatusCreated}},
		orderCase{Name: "add to a line of a full order", Given: []order.Event{full},
			When: order.AddItem{SKU: "SKU-00000", Quantity: 1, UnitPrice: 1},
			Then: []order.Event{order.ItemAdded{SKU: "SKU-00000", Quantity: 1, UnitPrice: 1}}},
		orderCase{Name: "add a new line after one was removed", Given: []order.Event{full, order.ItemRemoved{SKU: "SKU-00001"}},
			When: order.AddItem{SKU: "NEW", Quantity: 1, UnitPrice: 1},
			Then: []order.Event{order.ItemAdded{SKU: "NEW", Quantity: 1, UnitPrice: 1}}},
	)
}

// BenchmarkDecideCreateMaxItems: a create with the most items, whose
// duplicate-SKU check once took seconds (quadratic in the items).
func BenchmarkDecideCreateMaxItems(b *testing.B) {
	cmd := order.Create{CustomerID: "c", Items: items(order.MaxItems)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := order.Decide(order.State{}, cmd); err != nil {
			b.Fatal(err)
		}
	}
}
