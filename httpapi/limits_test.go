package httpapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
)

// itemsJSON returns n distinct items as the elements of a JSON array.
func itemsJSON(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"sku":"SKU-%05d","quantity":1,"unit_price":1}`, i)
	}
	return strings.Join(parts, ",")
}

// TestItemLimitHTTP: an order of the most items is created; adding a new
// line to it is a rule violation (409 with the current status) and writes
// nothing, while adding to a line it holds still works.
func TestItemLimitHTTP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		body := `{"order_id":"full","customer_id":"c","items":[` + itemsJSON(order.MaxItems) + `]}`
		if s := e.mustDo(req{method: "POST", path: "/orders", body: body}, 201).state(t); len(s.Items) != order.MaxItems {
			t.Fatalf("created with %d items, want %d", len(s.Items), order.MaxItems)
		}
		before := e.logSize()
		m := isProblem(t, e.do(req{method: "POST", path: "/orders/full/items", body: `{"sku":"NEW","quantity":1,"unit_price":1}`}), 409)
		if m["current_status"] != "created" {
			t.Errorf("current_status %v, want created", m["current_status"])
		}
		if after := e.logSize(); after != before {
			t.Errorf("appended: %v events, was %v", after, before)
		}
		e.mustDo(req{method: "POST", path: "/orders/full/items", body: `{"sku":"SKU-00000","quantity":1,"unit_price":1}`}, 200)
	})
}

// TestListPageBytes: a page of large orders stops at the byte budget, well
// before the count limit, with a cursor; following the cursors lists every
// order exactly once, newest first.
func TestListPageBytes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		// Each large order is about 100 KB of JSON (1,000 items with 64-byte
		// SKUs), so a page of all 20 orders would be about 1.4 MB.
		long := make([]string, order.MaxItems)
		for i := range long {
			long[i] = fmt.Sprintf(`{"sku":"%064d","quantity":1,"unit_price":1}`, i)
		}
		large := strings.Join(long, ",")
		var ids []string // oldest first
		for i := range 20 {
			id := fmt.Sprintf("page-%02d", i)
			items := `{"sku":"A","quantity":1,"unit_price":1}`
			if i%3 != 1 {
				items = large
			}
			e.mustDo(req{method: "POST", path: "/orders", body: `{"order_id":"` + id + `","customer_id":"c","items":[` + items + `]}`}, 201)
			ids = append(ids, id)
		}
		for _, id := range ids {
			e.waitVersion(id, 1)
		}
		var listed []string
		pages := 0
		for cursor := ""; ; {
			pages++
			path := "/orders?limit=500"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			got := e.mustDo(req{method: "GET", path: path}, 200)
			if len(got.body) > orderview.DefaultPageBytes+1024 {
				t.Errorf("page %d is %d bytes, budget %d", pages, len(got.body), orderview.DefaultPageBytes)
			}
			var body struct {
				Orders     []order.State `json:"orders"`
				NextCursor *string       `json:"next_cursor"`
			}
			if err := json.Unmarshal(got.body, &body); err != nil {
				t.Fatal(err)
			}
			if len(body.Orders) == 0 {
				t.Fatalf("page %d is empty", pages)
			}
			for _, s := range body.Orders {
				listed = append(listed, s.OrderID)
			}
			if body.NextCursor == nil {
				break
			}
			cursor = *body.NextCursor
		}
		slices.Reverse(ids) // newest first
		if !slices.Equal(listed, ids) {
			t.Errorf("listed %v,\nwant %v", listed, ids)
		}
		if pages < 2 {
			t.Errorf("all %d orders (about 1.4 MB) came in one page", len(ids))
		}
	})
}
