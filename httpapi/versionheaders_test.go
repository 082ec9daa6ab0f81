package httpapi

import (
	"net/http"
	"testing"
)

// TestErrorsAboutAnOrderCarryItsVersion: API.md, "Every response about one
// order carries `X-Event-Version: N` (the order's stream version that the
// body reflects) and `ETag: "N"`": refusals that depend on an existing
// order's state (409, an unknown item's 404) say which version they
// reflect, like a 412; a response about no order (unknown order 404) says
// none, on both backends.
func TestErrorsAboutAnOrderCarryItsVersion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("v-created")
		e.mustDo(req{method: "POST", path: "/orders/v-created/items", body: `{"sku":"B","quantity":1,"unit_price":100}`}, http.StatusOK)
		e.create("v-paid")
		e.mustDo(req{method: "POST", path: "/orders/v-paid/payments", body: `{"method":"card","amount":2000}`}, http.StatusOK)

		for _, c := range []struct {
			name    string
			r       req
			status  int
			version string // "": no version headers
		}{
			{"ship unpaid", req{method: "POST", path: "/orders/v-created/shipments", body: `{"carrier":"ups","tracking":"1Z"}`}, http.StatusConflict, "2"},
			{"pay wrong amount", req{method: "POST", path: "/orders/v-created/payments", body: `{"method":"card","amount":1}`}, http.StatusConflict, "2"},
			{"add after payment", req{method: "POST", path: "/orders/v-paid/items", body: `{"sku":"C","quantity":1,"unit_price":100}`}, http.StatusConflict, "2"},
			{"create existing", req{method: "POST", path: "/orders", body: `{"order_id":"v-paid","customer_id":"c"}`}, http.StatusConflict, "2"},
			{"remove unknown item", req{method: "DELETE", path: "/orders/v-created/items/ZZZ"}, http.StatusNotFound, "2"},
			{"stale If-Match", req{method: "POST", path: "/orders/v-created/cancellation", body: `{"reason":"x"}`, header: map[string]string{"If-Match": `"1"`}}, http.StatusPreconditionFailed, "2"},
			{"unknown order", req{method: "POST", path: "/orders/nope/shipments", body: `{"carrier":"ups","tracking":"1Z"}`}, http.StatusNotFound, ""},
			{"remove item of unknown order", req{method: "DELETE", path: "/orders/nope/items/ZZZ"}, http.StatusNotFound, ""},
			{"If-Match on a missing order", req{method: "POST", path: "/orders", body: `{"order_id":"v-new","customer_id":"c"}`, header: map[string]string{"If-Match": `"3"`}}, http.StatusPreconditionFailed, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				got := e.do(c.r)
				isProblem(t, got, c.status)
				wantETag := ""
				if c.version != "" {
					wantETag = `"` + c.version + `"`
				}
				if v, etag := got.header.Get("X-Event-Version"), got.header.Get("ETag"); v != c.version || etag != wantETag {
					t.Errorf("X-Event-Version %q, ETag %q; want %q, %q", v, etag, c.version, wantETag)
				}
			})
		}
	})
}
