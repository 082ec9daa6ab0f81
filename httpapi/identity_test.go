package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// eventMeta returns the metadata of order id's events, as the JSON
// timeline shows them.
func (e *env) eventMeta(id string, header map[string]string) []map[string]string {
	e.t.Helper()
	r := e.mustDo(req{method: "GET", path: "/orders/" + id + "/events", header: header}, http.StatusOK)
	var tl struct {
		Events []struct {
			Metadata map[string]string `json:"metadata"`
		} `json:"events"`
	}
	if err := json.Unmarshal(r.body, &tl); err != nil {
		e.t.Fatalf("timeline: %v\n%s", err, r.body)
	}
	out := make([]map[string]string, len(tl.Events))
	for i, ev := range tl.Events {
		out[i] = ev.Metadata
	}
	return out
}

// TestWhoDidWhat: every event a command appends records the actor
// (anonymous with auth off), the response's X-Request-Id and the
// correlation id (the caller's X-Correlation-Id, else the request id). A
// client cannot name the actor, and a bad X-Correlation-Id is 400 with
// nothing written.
func TestWhoDidWhat(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		created := e.mustDo(req{method: "POST", path: "/orders", body: `{"order_id":"w1","customer_id":"c","total":100}`,
			header: map[string]string{"X-Actor": "mallory"}}, http.StatusCreated)
		paid := e.mustDo(req{method: "POST", path: "/orders/w1/payments", body: `{"method":"card","amount":100}`,
			header: map[string]string{"X-Correlation-Id": "checkout-42", "X-Request-Id": "req-7"}}, http.StatusOK)
		if got := paid.header.Get("X-Request-Id"); got != "req-7" {
			t.Fatalf("X-Request-Id %q, want the caller's req-7", got)
		}

		meta := e.eventMeta("w1", nil)
		if len(meta) != 2 {
			t.Fatalf("got %d events, want 2", len(meta))
		}
		want := []map[string]string{
			{"actor": "anonymous", "request_id": created.header.Get("X-Request-Id"), "correlation_id": created.header.Get("X-Request-Id")},
			{"actor": "anonymous", "request_id": "req-7", "correlation_id": "checkout-42"},
		}
		for i := range want {
			if want[i]["request_id"] == "" {
				t.Fatalf("event %d: the response had no X-Request-Id", i+1)
			}
			for k, v := range want[i] {
				if got := meta[i][k]; got != v {
					t.Errorf("event %d: metadata %s = %q, want %q (all: %v)", i+1, k, got, v, meta[i])
				}
			}
		}

		size := e.logSize()
		for _, bad := range []string{strings.Repeat("x", 129), "has space", "semi;colon", "é"} {
			r := e.do(req{method: "POST", path: "/orders/w1/shipments", body: `{"carrier":"ups","tracking":"1Z"}`,
				header: map[string]string{"X-Correlation-Id": bad}})
			p := isProblem(t, r, http.StatusBadRequest)
			if d, _ := p["detail"].(string); !strings.Contains(d, "X-Correlation-Id") {
				t.Errorf("X-Correlation-Id %q: detail %q does not name the header", bad, d)
			}
		}
		if got := e.logSize(); got != size {
			t.Errorf("refused requests appended: %v, was %v", got, size)
		}
	})
}

// TestActorIsTheTokenName: with auth on, the actor is the name of the
// token used (given, or derived from the secret), whatever the request
// says about itself; an idempotent retry, which has a request id of its
// own, still answers the first response and leaves the first request's
// metadata alone.
func TestActorIsTheTokenName(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		toks, err := ParseTokens("alice:alice-secret:write,bob-secret:write")
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, open(), func(o *Options) { o.Tokens = toks })
		alice := map[string]string{"Authorization": "Bearer alice-secret", "X-Actor": "bob", "Idempotency-Key": "k-1"}
		bob := map[string]string{"Authorization": "Bearer bob-secret"}

		create := req{method: "POST", path: "/orders", body: `{"order_id":"a1","customer_id":"c","total":100}`, header: alice}
		first := e.mustDo(create, http.StatusCreated)
		e.mustDo(req{method: "POST", path: "/orders/a1/payments", body: `{"method":"card","amount":100}`, header: bob}, http.StatusOK)

		size := e.logSize()
		retry := e.mustDo(create, http.StatusCreated)
		sameResponse(t, first, retry)
		if retry.header.Get("Idempotent-Replayed") != "true" {
			t.Error("the retry was not replayed")
		}
		if a, b := first.header.Get("X-Request-Id"), retry.header.Get("X-Request-Id"); a == b {
			t.Errorf("the retry has the first request's id %s", a)
		}
		if got := e.logSize(); got != size {
			t.Errorf("the retry appended: %v, was %v", got, size)
		}

		meta := e.eventMeta("a1", bob)
		if len(meta) != 2 {
			t.Fatalf("got %d events, want 2", len(meta))
		}
		if got, want := meta[0]["actor"], "alice"; got != want {
			t.Errorf("create: actor %q, want %q", got, want)
		}
		if got, want := meta[0]["request_id"], first.header.Get("X-Request-Id"); got != want {
			t.Errorf("create: request_id %q, want the first request's %q", got, want)
		}
		if got, want := meta[1]["actor"], TokenName("bob-secret"); got != want {
			t.Errorf("payment: actor %q, want %q", got, want)
		}
	})
}
