package httpapi

import (
	"net/http"
	"testing"
	"time"
)

// At most MaxMinVersionWaiters ?min_version= requests wait at once; one
// more is 503 with Retry-After at once, writes nothing, and the waiters
// still return as soon as the order reaches the version.
func TestMinVersionWaitersCapped(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		const limit = 5
		e := newEnv(t, open(), func(o *Options) {
			o.MaxMinVersionWaiters = limit
			o.MinVersionWait = time.Minute
		})
		e.create("o1")
		waits := make(chan resp, limit)
		for range limit {
			go func() {
				r, err := tryHTTP(e.ts.URL, req{method: "GET", path: "/orders/o1?min_version=2"})
				if err != nil {
					r.body = []byte(err.Error())
				}
				waits <- r
			}()
		}
		for deadline := time.Now().Add(30 * time.Second); e.server.minVersionWaiters.Load() < limit; {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d requests waiting after 30 s", e.server.minVersionWaiters.Load(), limit)
			}
			time.Sleep(10 * time.Millisecond)
		}
		before := e.logSize()
		r := e.do(req{method: "GET", path: "/orders/o1?min_version=2"})
		isProblem(t, r, http.StatusServiceUnavailable)
		if r.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		if after := e.logSize(); after != before {
			t.Errorf("log %v after the refused request, want %v", after, before)
		}

		e.mustDo(req{method: "POST", path: "/orders/o1/payments", body: `{"method":"card","amount":2000}`}, http.StatusOK)
		for range limit {
			if r := <-waits; r.status != http.StatusOK || r.state(t).Version != 2 {
				t.Fatalf("waiter: status %d, %s; want 200 at version 2", r.status, r.body)
			}
		}
		if n := e.server.minVersionWaiters.Load(); n != 0 {
			t.Errorf("%d waiters counted after all returned", n)
		}
		e.mustDo(req{method: "GET", path: "/orders/o1?min_version=2"}, http.StatusOK)
	})
}
