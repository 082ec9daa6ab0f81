package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestConcurrentIfMatch: 20 commands with the same If-Match at once: one
// wins (200), the rest are 412, and exactly one event lands.
func TestConcurrentIfMatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("race")
		before := e.logSize()
		codes := race(e, 20, func(i int) req {
			return req{method: "POST", path: "/orders/race/items", header: map[string]string{"If-Match": `"1"`},
				body: fmt.Sprintf(`{"sku":"S%d","quantity":1,"unit_price":100}`, i)}
		})
		if codes[http.StatusOK] != 1 || codes[http.StatusPreconditionFailed] != 19 {
			t.Errorf("status codes %v, want one 200 and nineteen 412", codes)
		}
		if after := e.logSize(); after[0] != before[0]+1 {
			t.Errorf("%d events appended, want 1", after[0]-before[0])
		}
		if v := streamVersion(t, e, "race"); v != 2 {
			t.Errorf("version %d, want 2", v)
		}
	})
}

// TestConcurrentUnconditional: 20 item adds at once without If-Match all
// succeed: racing is not a reason to fail.
func TestConcurrentUnconditional(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("busy")
		codes := race(e, 20, func(i int) req {
			return req{method: "POST", path: "/orders/busy/items",
				body: fmt.Sprintf(`{"sku":"S%d","quantity":1,"unit_price":100}`, i)}
		})
		if codes[http.StatusOK] != 20 {
			t.Errorf("status codes %v, want twenty 200", codes)
		}
		st := e.mustDo(req{method: "GET", path: "/orders/busy?min_version=21"}, 200).state(t)
		if st.Version != 21 || len(st.Items) != 21 || st.Total != 2000+20*100 {
			t.Errorf("after 20 adds: version %d, %d items, total %d", st.Version, len(st.Items), st.Total)
		}
	})
}

// race sends n requests at once and counts the status codes.
func race(e *env, n int, mk func(i int) req) map[int]int {
	e.t.Helper()
	codes, _ := raceBodies(e, n, mk)
	return codes
}

// raceBodies sends n requests at once; it returns the status codes counted
// and the responses.
func raceBodies(e *env, n int, mk func(i int) req) (map[int]int, []resp) {
	e.t.Helper()
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	all := make([]resp, n)
	for i := range n {
		r := mk(i)
		wg.Go(func() {
			<-start
			got, err := tryHTTP(e.ts.URL, r)
			if err != nil {
				e.t.Error(err)
				return
			}
			all[i] = got
			mu.Lock()
			codes[got.status]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return codes, all
}

func streamVersion(t *testing.T, e *env, id string) int64 {
	t.Helper()
	v, err := e.store.StreamVersion(context.Background(), "order-"+id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
