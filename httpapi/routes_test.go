package httpapi

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/order"
)

// TestRoutes walks every route of API.md and every status code it can
// answer, over real HTTP, on both backends. Each row is one request; rows
// run in order on shared fixture orders.
func TestRoutes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open(), func(o *Options) { o.MinVersionWait = 200 * time.Millisecond })
		before := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)

		// Fixtures: one order per status.
		e.create("o-created")
		e.create("o-paid")
		e.mustDo(req{method: "POST", path: "/orders/o-paid/payments", body: `{"method":"card","amount":2000}`}, 200)
		e.create("o-shipped")
		e.mustDo(req{method: "POST", path: "/orders/o-shipped/payments", body: `{"method":"card","amount":2000}`}, 200)
		e.mustDo(req{method: "POST", path: "/orders/o-shipped/shipments", body: `{"carrier":"fedex","tracking":"FX1"}`}, 200)
		e.create("o-cancel")
		e.create("o-life")

		type row struct {
			name  string
			r     req
			want  int
			check func(t *testing.T, got resp)
		}
		version := func(v int64) func(t *testing.T, got resp) {
			return func(t *testing.T, got resp) {
				t.Helper()
				s := got.state(t)
				wantV := itoa(v)
				if got.header.Get("X-Event-Version") != wantV || got.header.Get("ETag") != `"`+wantV+`"` || s.Version != v {
					t.Errorf("X-Event-Version %q, ETag %q, body version %d; want %s", got.header.Get("X-Event-Version"), got.header.Get("ETag"), s.Version, wantV)
				}
			}
		}
		status := func(v int64, st order.Status) func(t *testing.T, got resp) {
			return func(t *testing.T, got resp) {
				t.Helper()
				version(v)(t, got)
				if s := got.state(t); s.Status != st {
					t.Errorf("status %q, want %q", s.Status, st)
				}
			}
		}
		currentStatus := func(st order.Status) func(t *testing.T, got resp) {
			return func(t *testing.T, got resp) {
				t.Helper()
				if m := got.json(t); m["current_status"] != string(st) {
					t.Errorf("current_status %v, want %q: %s", m["current_status"], st, got.body)
				}
			}
		}
		contains := func(s string) func(t *testing.T, got resp) {
			return func(t *testing.T, got resp) {
				t.Helper()
				if !strings.Contains(string(got.body), s) {
					t.Errorf("body lacks %q:\n%s", s, got.body)
				}
			}
		}

		rows := []row{
			// POST /orders
			{"create", req{method: "POST", path: "/orders", body: `{"order_id":"o-new","customer_id":"cust_9","currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":500}]}`}, 201,
				func(t *testing.T, got resp) {
					version(1)(t, got)
					s := got.state(t)
					if s.OrderID != "o-new" || s.Total != 500 || s.Currency != "EUR" || s.Status != order.StatusCreated || got.header.Get("Location") != "/orders/o-new" {
						t.Errorf("created %+v, Location %q", s, got.header.Get("Location"))
					}
				}},
			{"create generated id and defaults", req{method: "POST", path: "/orders", body: `{"customer_id":"cust_9","total":700}`}, 201,
				func(t *testing.T, got resp) {
					s := got.state(t)
					if !strings.HasPrefix(s.OrderID, "ord_") || order.ValidID("order_id", s.OrderID) != nil || s.Currency != "USD" || s.Total != 700 {
						t.Errorf("created %+v", s)
					}
				}},
			{"create missing customer", req{method: "POST", path: "/orders", body: `{"order_id":"o-x"}`}, 400, contains("customer_id")},
			{"create invalid order_id", req{method: "POST", path: "/orders", body: `{"order_id":"bad id!","customer_id":"c"}`}, 400, contains("order_id")},
			{"create existing", req{method: "POST", path: "/orders", body: `{"order_id":"o-paid","customer_id":"c"}`}, 409, currentStatus(order.StatusPaid)},
			{"create stale If-Match", req{method: "POST", path: "/orders", body: `{"order_id":"o-y","customer_id":"c"}`, header: map[string]string{"If-Match": `"3"`}}, 412, nil},
			{"create too large", req{method: "POST", path: "/orders", body: `{"customer_id":"c","order_id":"` + strings.Repeat("x", 2<<20) + `"}`}, 413, nil},

			// POST /orders/{id}/items
			{"add item", req{method: "POST", path: "/orders/o-life/items", body: `{"sku":"B","quantity":3,"unit_price":100}`}, 200,
				func(t *testing.T, got resp) {
					version(2)(t, got)
					if s := got.state(t); s.Total != 2300 || len(s.Items) != 2 {
						t.Errorf("after add: %+v", s)
					}
				}},
			{"add item If-Match", req{method: "POST", path: "/orders/o-life/items", body: `{"sku":"C","quantity":1,"unit_price":100}`, header: map[string]string{"If-Match": `"2"`}}, 200, version(3)},
			{"add item stale If-Match", req{method: "POST", path: "/orders/o-life/items", body: `{"sku":"C","quantity":1,"unit_price":100}`, header: map[string]string{"If-Match": `"2"`}}, 412,
				func(t *testing.T, got resp) {
					if m := got.json(t); m["current_version"] != 3.0 || got.header.Get("ETag") != `"3"` || got.header.Get("X-Event-Version") != "3" {
						t.Errorf("current_version %v, ETag %q, X-Event-Version %q; want 3", m["current_version"], got.header.Get("ETag"), got.header.Get("X-Event-Version"))
					}
				}},
			{"add item stale If-Match beats rule", req{method: "POST", path: "/orders/o-paid/items", body: `{"sku":"C","quantity":1,"unit_price":100}`, header: map[string]string{"If-Match": `"1"`}}, 412, nil},
			{"add item weak If-Match", req{method: "POST", path: "/orders/o-life/items", body: `{"sku":"C","quantity":1,"unit_price":100}`, header: map[string]string{"If-Match": `W/"3"`}}, 412, nil},
			{"add item bad If-Match", req{method: "POST", path: "/orders/o-life/items", body: `{"sku":"C","quantity":1,"unit_price":100}`, header: map[string]string{"If-Match": `3`}}, 400, nil},
			{"add item negative quantity", req{method: "POST", path: "/orders/o-life/items", body: `{"sku":"C","quantity":-1,"unit_price":100}`}, 400, contains("quantity")},
			{"add item unknown order", req{method: "POST", path: "/orders/nope/items", body: `{"sku":"C","quantity":1,"unit_price":100}`}, 404, nil},
			{"add item after payment", req{method: "POST", path: "/orders/o-paid/items", body: `{"sku":"C","quantity":1,"unit_price":100}`}, 409, currentStatus(order.StatusPaid)},

			// DELETE /orders/{id}/items/{sku}
			{"remove item", req{method: "DELETE", path: "/orders/o-life/items/C"}, 200,
				func(t *testing.T, got resp) {
					version(4)(t, got)
					if s := got.state(t); s.Total != 2300 {
						t.Errorf("after remove: %+v", s)
					}
				}},
			{"remove unknown item", req{method: "DELETE", path: "/orders/o-life/items/ZZZ"}, 404, nil},
			{"remove invalid sku", req{method: "DELETE", path: "/orders/o-life/items/a%20b"}, 400, nil},
			{"remove after payment", req{method: "DELETE", path: "/orders/o-paid/items/SKU-1"}, 409, currentStatus(order.StatusPaid)},

			// PUT /orders/{id}/shipping-address
			{"address", req{method: "PUT", path: "/orders/o-life/shipping-address", body: `{"name":"J. Smith","line1":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"}`}, 200,
				func(t *testing.T, got resp) {
					version(5)(t, got)
					if s := got.state(t); s.ShippingAddress == nil || s.ShippingAddress.City != "Springfield" {
						t.Errorf("address: %+v", s.ShippingAddress)
					}
				}},
			{"address missing field", req{method: "PUT", path: "/orders/o-life/shipping-address", body: `{"name":"J"}`}, 400, nil},
			{"address unknown order", req{method: "PUT", path: "/orders/nope/shipping-address", body: `{"name":"J. Smith","line1":"1 Main St","city":"S","postal_code":"1","country":"US"}`}, 404, nil},
			{"address after shipment", req{method: "PUT", path: "/orders/o-shipped/shipping-address", body: `{"name":"J. Smith","line1":"1 Main St","city":"S","postal_code":"1","country":"US"}`}, 409, currentStatus(order.StatusShipped)},

			// POST /orders/{id}/payments
			{"pay wrong amount", req{method: "POST", path: "/orders/o-life/payments", body: `{"method":"card","amount":1}`}, 409, currentStatus(order.StatusCreated)},
			{"pay", req{method: "POST", path: "/orders/o-life/payments", body: `{"method":"card","amount":2300}`}, 200, status(6, order.StatusPaid)},
			{"pay twice", req{method: "POST", path: "/orders/o-life/payments", body: `{"method":"card","amount":2300}`}, 409, currentStatus(order.StatusPaid)},
			{"pay unknown order", req{method: "POST", path: "/orders/nope/payments", body: `{"method":"card","amount":1}`}, 404, nil},
			{"pay wrong type", req{method: "POST", path: "/orders/o-created/payments", body: `{"method":"card","amount":"2000"}`}, 400, contains("amount")},

			// POST /orders/{id}/shipments
			{"ship unpaid", req{method: "POST", path: "/orders/o-created/shipments", body: `{"carrier":"ups","tracking":"1Z"}`}, 409, currentStatus(order.StatusCreated)},
			{"ship", req{method: "POST", path: "/orders/o-life/shipments", body: `{"carrier":"ups","tracking":"1Z"}`}, 200, status(7, order.StatusShipped)},
			{"ship unknown field", req{method: "POST", path: "/orders/o-life/shipments", body: `{"carrier":"ups","tracking":"1Z","speed":"fast"}`}, 400, contains("speed")},

			// POST /orders/{id}/delivery
			{"deliver unshipped", req{method: "POST", path: "/orders/o-paid/delivery", body: `{"signed_by":"J"}`}, 409, currentStatus(order.StatusPaid)},
			{"deliver", req{method: "POST", path: "/orders/o-life/delivery", body: `{"signed_by":"J. Smith"}`}, 200, status(8, order.StatusDelivered)},

			// POST /orders/{id}/cancellation
			{"cancel", req{method: "POST", path: "/orders/o-cancel/cancellation", body: `{"reason":"changed my mind"}`}, 200, status(2, order.StatusCancelled)},
			{"cancel after shipment", req{method: "POST", path: "/orders/o-shipped/cancellation", body: `{"reason":"late"}`}, 409, currentStatus(order.StatusShipped)},
			{"cancel malformed", req{method: "POST", path: "/orders/o-created/cancellation", body: `{"reason":`}, 400, nil},

			// GET /orders/{id}: read model, waits and time travel.
			{"get min_version", req{method: "GET", path: "/orders/o-life?min_version=8"}, 200, status(8, order.StatusDelivered)},
			{"get", req{method: "GET", path: "/orders/o-life"}, 200, status(8, order.StatusDelivered)},
			{"get min_version timeout", req{method: "GET", path: "/orders/o-life?min_version=9"}, 504, nil},
			{"get version", req{method: "GET", path: "/orders/o-life?version=2"}, 200,
				func(t *testing.T, got resp) {
					version(2)(t, got)
					if s := got.state(t); s.Total != 2300 || s.Status != order.StatusCreated {
						t.Errorf("v2: %+v", s)
					}
				}},
			{"get version beyond", req{method: "GET", path: "/orders/o-life?version=9"}, 404, nil},
			{"get version zero", req{method: "GET", path: "/orders/o-life?version=0"}, 400, nil},
			{"get as_of now", req{method: "GET", path: "/orders/o-life?as_of=" + url.QueryEscape(time.Now().UTC().Add(time.Hour).Format(time.RFC3339Nano))}, 200, status(8, order.StatusDelivered)},
			{"get as_of before", req{method: "GET", path: "/orders/o-life?as_of=" + before}, 404, nil},
			{"get as_of malformed", req{method: "GET", path: "/orders/o-life?as_of=yesterday"}, 400, nil},
			{"get version and as_of", req{method: "GET", path: "/orders/o-life?version=1&as_of=" + before}, 400, nil},
			{"get unknown", req{method: "GET", path: "/orders/nope"}, 404, nil},
			{"get invalid id", req{method: "GET", path: "/orders/" + strings.Repeat("x", 65)}, 400, nil},

			// GET /orders
			{"list by status", req{method: "GET", path: "/orders?status=created&customer_id=cust_1"}, 200,
				contains(`"order_id":"o-created"`)},
			{"list pages", req{method: "GET", path: "/orders?customer_id=cust_1&limit=2"}, 200,
				func(t *testing.T, got resp) {
					var b struct {
						Orders     []order.State `json:"orders"`
						NextCursor *string       `json:"next_cursor"`
					}
					var seen []string
					for {
						b.Orders, b.NextCursor = nil, nil
						if err := json.Unmarshal(got.body, &b); err != nil {
							t.Fatal(err)
						}
						if len(b.Orders) > 2 {
							t.Fatalf("page of %d orders, limit 2", len(b.Orders))
						}
						for _, o := range b.Orders {
							seen = append(seen, o.OrderID)
						}
						if b.NextCursor == nil {
							break
						}
						got = e.mustDo(req{method: "GET", path: "/orders?customer_id=cust_1&limit=2&cursor=" + url.QueryEscape(*b.NextCursor)}, 200)
					}
					// Newest first, each once.
					if want := "o-life,o-cancel,o-shipped,o-paid,o-created"; strings.Join(seen, ",") != want {
						t.Errorf("listed %v, want %s", seen, want)
					}
				}},
			{"list bad status", req{method: "GET", path: "/orders?status=lost"}, 400, nil},
			{"list bad limit", req{method: "GET", path: "/orders?limit=0"}, 400, nil},
			{"list bad cursor", req{method: "GET", path: "/orders?cursor=%21%21"}, 400, nil},

			// GET /orders/{id}/events
			{"events", req{method: "GET", path: "/orders/o-life/events"}, 200,
				func(t *testing.T, got resp) {
					var tl struct {
						OrderID string `json:"order_id"`
						Version int64  `json:"version"`
						Events  []struct {
							Version       int64           `json:"version"`
							EventID       string          `json:"event_id"`
							Type          string          `json:"type"`
							SchemaVersion int             `json:"schema_version"`
							Data          json.RawMessage `json:"data"`
							Metadata      json.RawMessage `json:"metadata"`
							RecordedAt    time.Time       `json:"recorded_at"`
							Position      int64           `json:"position"`
						} `json:"events"`
					}
					if err := json.Unmarshal(got.body, &tl); err != nil {
						t.Fatal(err)
					}
					if tl.OrderID != "o-life" || tl.Version != 8 || len(tl.Events) != 8 || got.header.Get("X-Event-Version") != "8" {
						t.Fatalf("timeline: %s", got.body)
					}
					if ev := tl.Events[0]; ev.Type != "OrderCreated" || ev.EventID == "" || ev.Position == 0 || ev.RecordedAt.IsZero() || len(ev.Data) == 0 {
						t.Errorf("first event: %+v", ev)
					}
				}},
			{"events text", req{method: "GET", path: "/orders/o-life/events?format=text"}, 200,
				func(t *testing.T, got resp) {
					if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
						t.Errorf("Content-Type %q", ct)
					}
					if !strings.HasPrefix(string(got.body), "o-life:\n  v1 OrderCreated {") || !strings.Contains(string(got.body), "  v8 OrderDelivered {signed_by: J. Smith}") {
						t.Errorf("text timeline:\n%s", got.body)
					}
				}},
			{"events bad format", req{method: "GET", path: "/orders/o-life/events?format=xml"}, 400, nil},
			{"events unknown", req{method: "GET", path: "/orders/nope/events"}, 404, nil},

			// GET /stats/order-status
			{"stats", req{method: "GET", path: "/stats/order-status?at=" + url.QueryEscape(time.Now().UTC().Add(time.Hour).Format(time.RFC3339))}, 200, nil},
			{"stats before", req{method: "GET", path: "/stats/order-status?at=" + before}, 200,
				contains(`"counts":{"cancelled":0,"created":0,"delivered":0,"paid":0,"shipped":0}`)},
			{"stats bad at", req{method: "GET", path: "/stats/order-status?at=noon"}, 400, nil},

			// GET /events
			{"events feed", req{method: "GET", path: "/events?stream_types=order&types=OrderCreated&limit=2"}, 200,
				func(t *testing.T, got resp) {
					var p struct {
						Events []map[string]any `json:"events"`
						Next   string           `json:"next"`
					}
					if err := json.Unmarshal(got.body, &p); err != nil {
						t.Fatal(err)
					}
					if len(p.Events) != 2 || p.Next != p.Events[1]["checkpoint"] {
						t.Fatalf("page: %s", got.body)
					}
					for _, k := range []string{"checkpoint", "position", "stream_id", "version", "event_id", "type", "schema_version", "data", "metadata", "recorded_at"} {
						if _, ok := p.Events[0][k]; !ok || p.Events[0]["type"] != "OrderCreated" {
							t.Errorf("event lacks %s or is no OrderCreated: %v", k, p.Events[0])
						}
					}
				}},
			{"events bad after", req{method: "GET", path: "/events?after=0"}, 400, contains("after")},
			{"events bad limit", req{method: "GET", path: "/events?limit=100000"}, 400, contains("limit")},
			{"events unknown parameter", req{method: "GET", path: "/events?cursor=x"}, 400, contains("cursor")},

			// Operations.
			{"projections", req{method: "GET", path: "/projections"}, 200,
				func(t *testing.T, got resp) {
					for _, s := range []string{`"name":"order_summaries"`, `"name":"order_status_history"`, `"head_position"`, `"lag_events"`, `"lag_seconds"`, `"status":"running"`} {
						contains(s)(t, got)
					}
				}},
			{"rebuild and wait", req{method: "POST", path: "/projections/order_status_history/rebuild?wait=true"}, 200, contains(`"name":"order_status_history"`)},
			{"rebuild unknown", req{method: "POST", path: "/projections/nope/rebuild"}, 404, nil},
			{"rebuild bad wait", req{method: "POST", path: "/projections/order_summaries/rebuild?wait=maybe"}, 400, nil},
			{"healthz", req{method: "GET", path: "/healthz"}, 200, nil},
			{"readyz", req{method: "GET", path: "/readyz"}, 200, contains(`"ready"`)},
			{"metrics", req{method: "GET", path: "/metrics"}, 200, func(t *testing.T, got resp) {
				for _, s := range []string{
					`chronicle_http_requests_total{code="201",method="POST",route="POST /orders"}`,
					`chronicle_http_request_duration_seconds_bucket`,
					`chronicle_store_append_duration_seconds_count{outcome="ok"}`,
					`chronicle_command_append_duration_seconds_bucket{command="pay",outcome="ok"`,
					`chronicle_projection_lag_events{projection="order_summaries"}`,
					`chronicle_projection_status{projection="order_summaries",status="running"} 1`,
				} {
					contains(s)(t, got)
				}
			}},
			{"openapi", req{method: "GET", path: "/openapi.json"}, 200, contains(`"openapi": "3.1.0"`)},
			{"console", req{method: "GET", path: "/"}, 200, nil},
			{"unknown path", req{method: "GET", path: "/nowhere"}, 404, nil},
			{"wrong method", req{method: "PATCH", path: "/orders/o-life"}, 405, func(t *testing.T, got resp) {
				if got.header.Get("Allow") != "GET" {
					t.Errorf("Allow %q", got.header.Get("Allow"))
				}
			}},
		}
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				sizeBefore := e.logSize()
				got := e.do(row.r)
				if got.status != row.want {
					t.Fatalf("%s %s: status %d, want %d\n%s", row.r.method, row.r.path, got.status, row.want, got.body)
				}
				if got.header.Get("X-Request-Id") == "" {
					t.Error("no X-Request-Id")
				}
				if row.want >= 400 {
					isProblem(t, got, row.want)
					if n := e.logSize(); n != sizeBefore {
						t.Errorf("a failed request wrote to the log: %v events, was %v", n, sizeBefore)
					}
				}
				if strings.HasPrefix(row.r.path, "/orders/") && row.want < 300 && got.header.Get("X-Event-Version") == "" {
					t.Error("an order response without X-Event-Version")
				}
				if row.check != nil {
					row.check(t, got)
				}
			})
		}
	})
}
