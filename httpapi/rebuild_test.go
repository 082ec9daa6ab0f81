package httpapi

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// TestRebuildUnderWritesServesEveryVersion rebuilds order_summaries over
// HTTP (?wait=true) while commands keep arriving, and stops them the moment
// the rebuild answers: the events the live runner applied while the
// rebuild finished must be in the swapped-in read model, so every order's
// ?min_version= at its last acknowledged version answers that version (a
// read model behind its own checkpoint would answer an older body, and the
// wait would see nothing to wait for).
func TestRebuildUnderWritesServesEveryVersion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		const orders = 24
		acked := make([]atomic.Int64, orders)
		for i := range orders {
			acked[i].Store(e.create(fmt.Sprintf("rb%d", i)).Version)
		}
		for round := range 3 {
			var stop atomic.Bool
			var wg sync.WaitGroup
			var failed atomic.Value
			for w := range 4 {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(round), uint64(w)))
					for n := 0; !stop.Load(); n++ {
						i := rnd.IntN(orders)
						body := fmt.Sprintf(`{"sku":"W%d-%d-%d","quantity":1,"unit_price":1}`, round, w, n)
						r, err := tryHTTP(e.ts.URL, req{method: "POST", path: fmt.Sprintf("/orders/rb%d/items", i), body: body})
						if err != nil || r.status != http.StatusOK {
							failed.Store(fmt.Sprintf("add item: %v %d %s", err, r.status, r.body))
							return
						}
						var v struct {
							Version int64 `json:"version"`
						}
						if err := json.Unmarshal(r.body, &v); err != nil {
							failed.Store(err.Error())
							return
						}
						for {
							old := acked[i].Load()
							if v.Version <= old || acked[i].CompareAndSwap(old, v.Version) {
								break
							}
						}
					}
				})
			}
			e.mustDo(req{method: "POST", path: "/projections/order_summaries/rebuild?wait=true"}, http.StatusOK)
			stop.Store(true)
			wg.Wait()
			if f := failed.Load(); f != nil {
				t.Fatal(f)
			}
			for i := range orders {
				want := acked[i].Load()
				got := e.mustDo(req{method: "GET", path: fmt.Sprintf("/orders/rb%d?min_version=%d", i, want)}, http.StatusOK).state(t)
				if got.Version < want {
					t.Fatalf("round %d: rb%d?min_version=%d answered version %d", round, i, want, got.Version)
				}
			}
		}
		d, err := e.runner.Verify(t.Context())
		if err != nil || len(d) > 0 {
			t.Fatalf("Verify after the rebuilds: %v, %d differences %v", err, len(d), d)
		}
	})
}
