package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
)

// FuzzCommandDecoders feeds arbitrary bodies to every command decoder. A
// decoder must never panic; it either refuses the body with a 400 problem
// or returns a command whose strings are valid UTF-8 without NUL, and only
// for a body that is acceptable JSON: exactly what the store would take.
// An accepted body reads the same to a lenient decoder (encoding/json: last
// duplicate wins, names match ignoring case), so no proxy can read it
// another way.
// The seed corpus is in testdata/fuzz/FuzzCommandDecoders.
func FuzzCommandDecoders(f *testing.F) {
	for _, seed := range []string{
		`{"order_id":"o1","customer_id":"c","currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":5}],"total":5}`,
		`{"sku":"A","quantity":2,"unit_price":100}`,
		`{"name":"n","line1":"l","city":"c","postal_code":"p","country":"US"}`,
		`{"method":"card","amount":100}`,
		`{"carrier":"ups","tracking":"1Z"}`,
		`{"signed_by":"J"}`,
		`{"reason":"\ud83d\ude00"}`,
		`{"reason":"\ud800"}`,
		`{"reason":"a\u0000"}`,
		`{"quantity":1e400}`,
		`{} {}`,
		``,
		`{"reason":"a","reason":"b"}`,
		`{"REASON":"x"}`,
		`{"re\u0061son":"x"}`,
		`{"sku":"A","quantity":1,"unit_price":1,"Quantity":5}`,
		`{"customer_id":"c","items":[{"sku":"A","SKU":"B","quantity":1,"unit_price":1}]}`,
		`{"reason":"\u202eevil\u2028"}`,
	} {
		f.Add([]byte(seed), uint8(0))
	}
	decoders := []struct {
		pattern string
		path    string
		decode  func(*http.Request, []byte) (string, order.Command, error)
		lenient func([]byte) (order.Command, error) // nil: no body
	}{
		{"POST /orders", "/orders", decodeCreate, func(b []byte) (order.Command, error) {
			var r createRequest
			err := json.Unmarshal(b, &r)
			return order.Create{CustomerID: r.CustomerID, Currency: r.Currency, Items: r.Items, Total: r.Total}, err
		}},
		{"POST /orders/{id}/items", "/orders/o1/items", decodeBody[order.AddItem], lenient[order.AddItem]},
		{"PUT /orders/{id}/shipping-address", "/orders/o1/shipping-address", decodeBody[order.ChangeShippingAddress], lenient[order.ChangeShippingAddress]},
		{"POST /orders/{id}/payments", "/orders/o1/payments", decodeBody[order.Pay], lenient[order.Pay]},
		{"POST /orders/{id}/shipments", "/orders/o1/shipments", decodeBody[order.Ship], lenient[order.Ship]},
		{"POST /orders/{id}/delivery", "/orders/o1/delivery", decodeBody[order.Deliver], lenient[order.Deliver]},
		{"POST /orders/{id}/cancellation", "/orders/o1/cancellation", decodeBody[order.Cancel], lenient[order.Cancel]},
		{"DELETE /orders/{id}/items/{sku}", "/orders/o1/items/A", decodeRemoveItem, nil},
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		d := decoders[int(which)%len(decoders)]
		mux := http.NewServeMux()
		var id string
		var cmd order.Command
		var err error
		mux.HandleFunc(d.pattern, func(w http.ResponseWriter, r *http.Request) { id, cmd, err = d.decode(r, body) })
		method := "POST"
		switch d.pattern[0] {
		case 'P':
			if d.pattern[1] == 'U' {
				method = "PUT"
			}
		case 'D':
			method = "DELETE"
		}
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, d.path, nil))
		if err != nil {
			var ae *apiError
			var ie *order.InvalidError
			if !errors.As(mapDomainError(err), &ae) && !errors.As(err, &ie) {
				t.Fatalf("error is not a client error: %v", err)
			}
			if ae != nil && ae.p.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", ae.p.Status)
			}
			return
		}
		if order.ValidID("order_id", id) != nil {
			t.Fatalf("accepted invalid order id %q", id)
		}
		if d.pattern != "DELETE /orders/{id}/items/{sku}" {
			if verr := chronicle.ValidateJSON(body); verr != nil {
				t.Fatalf("accepted a body the store would refuse (%v): %q", verr, body)
			}
		}
		for _, s := range commandStrings(cmd) {
			if !utf8.ValidString(s) || containsNUL(s) {
				t.Fatalf("command holds a bad string %q", s)
			}
		}
		if d.lenient != nil {
			other, err := d.lenient(body)
			if err != nil {
				t.Fatalf("accepted a body encoding/json refuses (%v): %q", err, body)
			}
			if diff := cmp.Diff(other, cmd, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("body %q reads another way to encoding/json (-lenient +strict):\n%s", body, diff)
			}
		}
	})
}

// lenient decodes a body as encoding/json does by default.
func lenient[C order.Command](b []byte) (order.Command, error) {
	var c C
	err := json.Unmarshal(b, &c)
	return c, err
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// commandStrings lists the strings a command carries.
func commandStrings(c order.Command) []string {
	switch c := c.(type) {
	case order.Create:
		out := []string{c.CustomerID, c.Currency}
		for _, it := range c.Items {
			out = append(out, it.SKU)
		}
		return out
	case order.AddItem:
		return []string{c.SKU}
	case order.RemoveItem:
		return []string{c.SKU}
	case order.ChangeShippingAddress:
		return []string{c.Address.Name, c.Line1, c.City, c.PostalCode, c.Country}
	case order.Pay:
		return []string{c.Method}
	case order.Ship:
		return []string{c.Carrier, c.Tracking}
	case order.Deliver:
		return []string{c.SignedBy}
	case order.Cancel:
		return []string{c.Reason}
	}
	return nil
}
