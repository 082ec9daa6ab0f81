package httpapi

import (
	"testing"

	"github.com/chronicle-es/chronicle/order"
)

// BenchmarkDecodeStrict: what strict decoding costs a command body, small
// (a payment) and large (a create with 100 items).
func BenchmarkDecodeStrict(b *testing.B) {
	for _, bc := range []struct {
		name string
		body string
		v    func() any
	}{
		{"pay", `{"method":"card","amount":2000}`, func() any { return new(order.Pay) }},
		{"address", `{"name":"J. Smith","line1":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"}`, func() any { return new(order.ChangeShippingAddress) }},
		{"create100", `{"order_id":"o1","customer_id":"c","items":[` + itemsJSON(100) + `]}`, func() any { return new(createRequest) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := decodeStrict(body, bc.v()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
