package httpapi

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle/order"
)

// TestBadInput: malformed or invalid requests get the documented code as
// problem+json, and nothing is appended, on both backends.
func TestBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("bad")
		huge := `{"customer_id":"c","currency":"` + strings.Repeat("A", 2<<20) + `"}`
		tooMany := `{"customer_id":"c","items":[` + itemsJSON(order.MaxItems+1) + `]}`
		for _, c := range []struct {
			name string
			r    req
			want int
		}{
			{"malformed JSON", req{method: "POST", path: "/orders", body: `{"customer_id":`}, 400},
			{"not an object", req{method: "POST", path: "/orders", body: `["customer_id"]`}, 400},
			{"trailing data", req{method: "POST", path: "/orders", body: `{"customer_id":"c"} {}`}, 400},
			{"two objects", req{method: "POST", path: "/orders", body: `{"customer_id":"c"}{"customer_id":"d"}`}, 400},
			{"empty body", req{method: "POST", path: "/orders/bad/payments"}, 400},
			{"null body", req{method: "POST", path: "/orders/bad/payments", body: `null`}, 400},
			{"string for integer", req{method: "POST", path: "/orders/bad/items", body: `{"sku":"A","quantity":"1","unit_price":1}`}, 400},
			{"fraction for integer", req{method: "POST", path: "/orders/bad/items", body: `{"sku":"A","quantity":1.5,"unit_price":1}`}, 400},
			{"integer overflow", req{method: "POST", path: "/orders/bad/items", body: `{"sku":"A","quantity":1e400,"unit_price":1}`}, 400},
			{"number for string", req{method: "POST", path: "/orders", body: `{"customer_id":5}`}, 400},
			{"object for array", req{method: "POST", path: "/orders", body: `{"customer_id":"c","items":{}}`}, 400},
			{"unknown field", req{method: "POST", path: "/orders/bad/delivery", body: `{"signed_by":"x","signature":"y"}`}, 400},
			{"unknown nested field", req{method: "POST", path: "/orders", body: `{"customer_id":"c","items":[{"sku":"A","quantity":1,"unit_price":1,"color":"red"}]}`}, 400},
			{"invalid order id", req{method: "POST", path: "/orders", body: `{"order_id":"a b","customer_id":"c"}`}, 400},
			{"empty order id", req{method: "POST", path: "/orders", body: `{"order_id":"","customer_id":"c"}`}, 400},
			{"order id too long", req{method: "POST", path: "/orders", body: `{"order_id":"` + strings.Repeat("a", 65) + `","customer_id":"c"}`}, 400},
			{"invalid customer id", req{method: "POST", path: "/orders", body: `{"customer_id":"cust/1"}`}, 400},
			{"invalid path id", req{method: "POST", path: "/orders/b%2Fad/payments", body: `{"method":"card","amount":2000}`}, 400},
			{"invalid sku", req{method: "POST", path: "/orders/bad/items", body: `{"sku":"A B","quantity":1,"unit_price":1}`}, 400},
			{"NUL in id", req{method: "POST", path: "/orders", body: `{"order_id":"a\u0000","customer_id":"c"}`}, 400},
			{"NUL in text", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"a\u0000b"}`}, 400},
			{"NUL in unknown field", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"ok","x\u0000":1}`}, 400},
			{"lone high surrogate", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"\ud800"}`}, 400},
			{"lone low surrogate", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"x\udc00"}`}, 400},
			{"reversed surrogates", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"\ude00\ud83d"}`}, 400},
			{"invalid UTF-8", req{method: "POST", path: "/orders/bad/cancellation", body: "{\"reason\":\"\xff\xfe\"}"}, 400},
			{"negative quantity", req{method: "POST", path: "/orders/bad/items", body: `{"sku":"A","quantity":-1,"unit_price":100}`}, 400},
			{"zero quantity", req{method: "POST", path: "/orders/bad/items", body: `{"sku":"A","quantity":0,"unit_price":100}`}, 400},
			{"negative price", req{method: "POST", path: "/orders/bad/items", body: `{"sku":"A","quantity":1,"unit_price":-100}`}, 400},
			{"negative item in create", req{method: "POST", path: "/orders", body: `{"customer_id":"c","items":[{"sku":"A","quantity":-2,"unit_price":100}]}`}, 400},
			{"negative total", req{method: "POST", path: "/orders", body: `{"customer_id":"c","total":-1}`}, 400},
			{"negative amount", req{method: "POST", path: "/orders/bad/payments", body: `{"method":"card","amount":-2000}`}, 400},
			{"bad currency", req{method: "POST", path: "/orders", body: `{"customer_id":"c","currency":"dollars"}`}, 400},
			{"DELETE with body", req{method: "DELETE", path: "/orders/bad/items/SKU-1", body: `{"sku":"SKU-1"}`}, 400},
			{"key too long", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"x"}`, header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}}, 400},
			{"If-Match not an entity tag", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"x"}`, header: map[string]string{"If-Match": `abc`}}, 400},
			{"duplicate key", req{method: "POST", path: "/orders", body: `{"customer_id":"c","customer_id":"d"}`}, 400},
			{"duplicate key, last valid", req{method: "POST", path: "/orders/bad/payments", body: `{"method":"card","amount":1,"amount":2000}`}, 400},
			{"duplicate nested key", req{method: "POST", path: "/orders", body: `{"customer_id":"c","items":[{"sku":"A","sku":"B","quantity":1,"unit_price":1}]}`}, 400},
			{"duplicate key by escape", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"a","re\u0061son":"b"}`}, 400},
			{"key in another case", req{method: "POST", path: "/orders/bad/cancellation", body: `{"REASON":"x"}`}, 400},
			{"key in another case beside the field", req{method: "POST", path: "/orders", body: `{"customer_id":"c","Customer_ID":"d"}`}, 400},
			{"nested key in another case", req{method: "POST", path: "/orders/bad/items", body: `{"SKU":"A","quantity":1,"unit_price":1}`}, 400},
			{"C1 control in text", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"a\u0085b"}`}, 400},
			{"raw C1 control in text", req{method: "POST", path: "/orders/bad/cancellation", body: "{\"reason\":\"a\u009bb\"}"}, 400},
			{"DEL in text", req{method: "PUT", path: "/orders/bad/shipping-address", body: `{"name":"a\u007f","line1":"l","city":"c","postal_code":"p","country":"US"}`}, 400},
			{"bidi override in text", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"\u202egnp.exe"}`}, 400},
			{"raw bidi override in text", req{method: "POST", path: "/orders/bad/shipments", body: "{\"carrier\":\"ups\",\"tracking\":\"1Z\u202a\"}"}, 400},
			{"bidi isolate in text", req{method: "POST", path: "/orders/bad/payments", body: `{"method":"card\u2066","amount":2000}`}, 400},
			{"line separator in text", req{method: "POST", path: "/orders/bad/shipments", body: `{"carrier":"ups\u2028x","tracking":"1Z"}`}, 400},
			{"paragraph separator in text", req{method: "POST", path: "/orders/bad/delivery", body: `{"signed_by":"J\u2029"}`}, 400},
			{"tab in text", req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"a\tb"}`}, 400},
			{"1,001 items", req{method: "POST", path: "/orders", body: tooMany}, 400},
			{"2 MiB body", req{method: "POST", path: "/orders", body: huge}, 413},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := e.logSize()
				got := e.do(c.r)
				isProblem(t, got, c.want)
				if after := e.logSize(); after != before {
					t.Errorf("appended: %v events, was %v", after, before)
				}
			})
		}

		t.Run("2 MiB body without Content-Length", func(t *testing.T) {
			before := e.logSize()
			// A reader of unknown length makes the client send it chunked,
			// so only the server's counting reader can stop it.
			body := io.MultiReader(strings.NewReader(huge))
			hr, err := http.NewRequest("POST", e.ts.URL+"/orders", body)
			if err != nil {
				t.Fatal(err)
			}
			hr.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			isProblem(t, resp{status: res.StatusCode, header: res.Header, body: b}, http.StatusRequestEntityTooLarge)
			if after := e.logSize(); after != before {
				t.Errorf("appended: %v events, was %v", after, before)
			}
		})

		t.Run("valid surrogate pair is fine", func(t *testing.T) {
			got := e.mustDo(req{method: "POST", path: "/orders/bad/cancellation", body: `{"reason":"\ud83d\ude00 changed mind"}`}, 200)
			if s := got.state(t); s.CancelReason != "\U0001F600 changed mind" {
				t.Errorf("reason %q", s.CancelReason)
			}
		})
	})
}
