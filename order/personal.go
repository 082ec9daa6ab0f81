package order

import "github.com/chronicle-es/chronicle/personal"

// PersonalData declares the personal fields of order events: the shipping
// address's name, line1, city and postal code, and who signed for the
// delivery. Their subject is the order's customer (OrderCreated's
// customer_id); the other events of an order take it from there.
func PersonalData() *personal.Policy {
	return personal.NewPolicy(
		personal.Rule{Type: TypeOrderCreated, Subject: "customer_id"},
		personal.Rule{Type: TypeShippingAddressChanged, Fields: []string{"name", "line1", "city", "postal_code"}},
		personal.Rule{Type: TypeOrderDelivered, Fields: []string{"signed_by"}},
	)
}
