package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
)

// sameResponse fails unless b repeats a: status, body and version headers.
func sameResponse(t *testing.T, a, b resp) {
	t.Helper()
	if a.status != b.status || !bytes.Equal(a.body, b.body) {
		t.Errorf("retry answered %d %s\nfirst answered %d %s", b.status, b.body, a.status, a.body)
	}
	for _, h := range []string{"X-Event-Version", "ETag", "Location"} {
		if a.header.Get(h) != b.header.Get(h) {
			t.Errorf("retry %s %q, first %q", h, b.header.Get(h), a.header.Get(h))
		}
	}
}

// TestIdempotency: a retried create or payment answers the first response
// and appends nothing, also after a server restart (new server, store
// closed and reopened); the same key with another request is 422.
func TestIdempotency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		store := open()
		e := newEnv(t, store)
		key := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

		create := req{method: "POST", path: "/orders", body: `{"order_id":"idem","customer_id":"c1","total":1500}`, header: key("create-1")}
		createGen := req{method: "POST", path: "/orders", body: `{"customer_id":"c1","total":900}`, header: key("create-gen")}
		pay := req{method: "POST", path: "/orders/idem/payments", body: `{"method":"card","amount":1500}`, header: key("pay-1")}
		// The same request, written another way: still a retry, not a reuse.
		payAgain := req{method: "POST", path: "/orders/idem/payments", body: "{ \"amount\": 1500,\n  \"method\": \"\\u0063ard\" }\n", header: key("pay-1")}

		firstCreate := e.mustDo(create, http.StatusCreated)
		firstGen := e.mustDo(createGen, http.StatusCreated)
		firstPay := e.mustDo(pay, http.StatusOK)
		// Later changes do not change what a retry answers.
		e.mustDo(req{method: "POST", path: "/orders/idem/shipments", body: `{"carrier":"ups","tracking":"1Z"}`}, http.StatusOK)

		size := e.logSize()
		retries := func(t *testing.T, e *env) {
			for _, c := range []struct {
				name  string
				r     req
				first resp
			}{{"create", create, firstCreate}, {"create with generated id", createGen, firstGen}, {"payment", pay, firstPay}, {"payment written another way", payAgain, firstPay}} {
				t.Run(c.name, func(t *testing.T) {
					got := e.do(c.r)
					sameResponse(t, c.first, got)
					if got.header.Get("Idempotent-Replayed") != "true" {
						t.Error("no Idempotent-Replayed header on a replay")
					}
				})
			}
			if n := e.logSize(); n != size {
				t.Errorf("retries appended: %v events, was %v", n, size)
			}
		}
		t.Run("retry", func(t *testing.T) { retries(t, e) })

		reused := []req{
			{method: "POST", path: "/orders", body: `{"order_id":"idem","customer_id":"c1","total":1501}`, header: key("create-1")},
			{method: "POST", path: "/orders/idem/payments", body: `{"method":"cash","amount":1500}`, header: key("pay-1")},
			{method: "POST", path: "/orders/idem/delivery", body: `{"signed_by":"x"}`, header: key("pay-1")},
		}
		t.Run("reuse", func(t *testing.T) {
			for _, r := range reused {
				isProblem(t, e.do(r), http.StatusUnprocessableEntity)
			}
			if n := e.logSize(); n != size {
				t.Errorf("422s appended: %v events, was %v", n, size)
			}
		})

		// Restart: everything the keys need lives in the event log.
		e.stop()
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
		e2 := newEnv(t, open())
		t.Run("retry after restart", func(t *testing.T) { retries(t, e2) })
		t.Run("reuse after restart", func(t *testing.T) {
			for _, r := range reused {
				isProblem(t, e2.do(r), http.StatusUnprocessableEntity)
			}
		})
	})
}

// TestIdempotencyAfterLaterCommands: keyed commands retried after more later
// commands to the same order than a keyed command has event ids still answer
// their first responses (status, body, version) and append nothing.
func TestIdempotencyAfterLaterCommands(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		key := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }
		create := req{method: "POST", path: "/orders", body: `{"order_id":"later","customer_id":"c1"}`, header: key("later-create")}
		add := req{method: "POST", path: "/orders/later/items", body: `{"sku":"A","quantity":1,"unit_price":5}`, header: key("later-add")}
		firstCreate := e.mustDo(create, http.StatusCreated)
		firstAdd := e.mustDo(add, http.StatusOK)
		for i := range 2 * commandEventIDs {
			body := fmt.Sprintf(`{"sku":"B%d","quantity":1,"unit_price":7}`, i)
			e.mustDo(req{method: "POST", path: "/orders/later/items", body: body, header: key(fmt.Sprintf("later-%d", i))}, http.StatusOK)
		}
		size := e.logSize()
		for _, c := range []struct {
			name  string
			r     req
			first resp
		}{{"create", create, firstCreate}, {"add", add, firstAdd}} {
			t.Run(c.name, func(t *testing.T) { sameResponse(t, c.first, e.do(c.r)) })
		}
		if n := e.logSize(); n != size {
			t.Errorf("retries appended: %v events, was %v", n, size)
		}
	})
}

// TestIdempotencyConcurrent: the same keyed request sent 10 times at once
// lands once and every copy gets the one answer.
func TestIdempotencyConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		for _, r := range []req{
			{method: "POST", path: "/orders", body: `{"customer_id":"c1","total":1500}`, header: map[string]string{"Idempotency-Key": "k-create"}},
			{method: "POST", path: "/orders", body: `{"order_id":"dup","customer_id":"c1","total":1500}`, header: map[string]string{"Idempotency-Key": "k-create-dup"}},
			{method: "POST", path: "/orders/dup/payments", body: `{"method":"card","amount":1500}`, header: map[string]string{"Idempotency-Key": "k-pay"}},
			{method: "POST", path: "/orders/dup/shipments", body: `{"carrier":"ups","tracking":"1Z"}`, header: map[string]string{"Idempotency-Key": "k-ship"}},
		} {
			before := e.logSize()
			codes, all := raceBodies(e, 10, func(int) req { return r })
			if len(codes) != 1 {
				t.Fatalf("%s %s: status codes %v, want one kind", r.method, r.path, codes)
			}
			for _, got := range all[1:] {
				if !bytes.Equal(got.body, all[0].body) {
					t.Errorf("%s %s: answers differ:\n%s\n%s", r.method, r.path, got.body, all[0].body)
				}
			}
			if after := e.logSize(); after[0] != before[0]+1 {
				t.Errorf("%s %s: %d events appended, want 1", r.method, r.path, after[0]-before[0])
			}
		}
	})
}

// TestIdempotencyKeyStoredBeforeCanonicalForm: a key stored when the hash
// covered the body's bytes as sent still answers the exact retry of its
// request, after the hash moved to the canonical form.
func TestIdempotencyKeyStoredBeforeCanonicalForm(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("legacy")                        // total 2000
		body := `{"method":"card","amount":2000}` // not canonical: keys out of order
		key := "pay-legacy"
		meta, err := json.Marshal(map[string]string{"actor": "anonymous", "idempotency_key": key,
			"request_hash": bytesHash("POST", "POST /orders/{id}/payments", "legacy", "", []byte(body))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Append(context.Background(), "order-legacy", chronicle.Exact(1), []chronicle.Event{{
			ID: derivedEventID(key, 0), Type: order.TypePaymentReceived, Data: []byte(body), Metadata: meta,
		}}); err != nil {
			t.Fatal(err)
		}
		size := e.logSize()
		got := e.mustDo(req{method: "POST", path: "/orders/legacy/payments", body: body, header: map[string]string{"Idempotency-Key": key}}, http.StatusOK)
		if got.header.Get("Idempotent-Replayed") != "true" || got.state(t).Status != order.StatusPaid {
			t.Fatalf("retry of a key stored the old way: %s %v", got.body, got.header)
		}
		if n := e.logSize(); n != size {
			t.Errorf("the retry appended: %v events, was %v", n, size)
		}
	})
}
