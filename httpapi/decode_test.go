package httpapi

import (
	"errors"
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

// TestDecodeStrictNamesTheField: a refused body's problem names the field,
// as the domain's errors do (items[0].sku).
func TestDecodeStrictNamesTheField(t *testing.T) {
	for _, tc := range []struct{ body, field string }{
		{`{"customer_id":"c","customer_id":"d"}`, "customer_id"},
		{`{"customer_id":"c","items":[{"sku":"A","quantity":1,"unit_price":1},{"sku":"A","sku":"B"}]}`, "items[1].sku"},
		{`{"Customer_ID":"c"}`, "Customer_ID"},
		{`{"customer_id":"c","items":[{"sku":"A","Quantity":1}]}`, "items[0].Quantity"},
		{`{"customer_id":"c","items":[{"sku":"A","quantity":"1"}]}`, "items[0].quantity"},
		{`{"customer_id":"c","total":1.5}`, "total"},
		{`{"customer_id":"c","items":{}}`, "items"},
	} {
		var req createRequest
		err := decodeStrict([]byte(tc.body), &req)
		var ae *apiError
		if !errors.As(err, &ae) || ae.p.Status != 400 || ae.p.Field != tc.field {
			t.Errorf("%s: %v (field %q), want 400 naming %q", tc.body, err, fieldOf(ae), tc.field)
		}
	}
}

func fieldOf(e *apiError) string {
	if e == nil {
		return ""
	}
	return e.p.Field
}
