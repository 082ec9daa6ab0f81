package torture

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// soakDuration is how long TestSoak runs on each backend: SOAK_DURATION
// (a Go duration; `make soak` sets 20m), else 30 s, or 10 s with -short.
func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SOAK_DURATION=%q: %v", s, err)
		}
		return d
	}
	if testing.Short() {
		return 10 * time.Second
	}
	return 30 * time.Second
}

// TestSoak runs 8 clients sending mixed commands (create, add items,
// change address, pay, ship, deliver, cancel) and a reader for the given
// duration: in the middle both read models are rebuilt under load
// (POST /projections/{name}/rebuild?wait=true), then the server is
// restarted (SIGTERM, exit 0, start again; kill -9 under load is
// TestKill9UnderLoad) and the load goes on. At the end every
// acknowledged command is in the store exactly once, the read models
// reflect every order, and `chronicle verify` exits 0.
func TestSoak(t *testing.T) {
	d := soakDuration(t)
	forEachBackend(t, func(t *testing.T, b backend) {
		srv := startServer(t, b.url)
		led := newLedger()
		clients := newClients(8, "s", led, uint64(time.Now().UnixNano()), true)
		phase := func(s *server, d time.Duration, during func()) {
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { runClients(ctx, clients, s.base) })
			p := newProber(s.base)
			wg.Go(func() { p.run(ctx) })
			deadline := time.After(d)
			if during != nil {
				during()
			}
			<-deadline
			cancel()
			wg.Wait()
			p.check(t)
			if s := p.summary(); strings.Contains(s, " 503 ") || strings.Contains(s, " 500 ") {
				t.Errorf("reads failed during the soak: %s", s)
			}
		}
		phase(srv, d/3, nil)
		rebuilt := 0
		phase(srv, d/3, func() {
			for _, name := range []string{"order_summaries", "order_status_history"} {
				req, _ := http.NewRequest(http.MethodPost, srv.base+"/projections/"+name+"/rebuild?wait=true", nil)
				began := time.Now()
				res, err := (&http.Client{Timeout: boundedWait}).Do(req)
				if err != nil || res.StatusCode != http.StatusOK {
					t.Errorf("rebuild %s under load: %v %v", name, res, err)
					continue
				}
				res.Body.Close()
				t.Logf("rebuilt %s under load in %v", name, time.Since(began).Round(time.Millisecond))
				rebuilt++
			}
			// The server's own account: how long each swap held the
			// projection (and SQLite's writers), and what it applied.
			for _, l := range srv.rebuiltLines() {
				t.Log(l)
			}
		})
		srv.stop()
		srv = startServer(t, b.url)
		phase(srv, d-2*(d/3), nil)

		// Finish every plan in flight, so that the end state is settled.
		waitProjections(t, srv, led, 0)
		ctx := context.Background()
		store := openStore(t, b.url)
		events := checkLedger(t, ctx, store, led)
		checkLog(t, ctx, store)
		verify(t, b.url)
		srv.stop()
		led.count(func(l *ledger) {
			if l.timeouts+l.transport > 0 || len(l.codes) > 0 {
				t.Errorf("commands failed during the soak: %d timeouts, %d without answer, statuses %v", l.timeouts, l.transport, l.codes)
			}
			t.Logf("RESULT soak/%s: duration=%v rebuilds=%d restarts=1 commands_acknowledged=%d orders=%d events=%d lost=0 duplicates=0",
				b.name, d, rebuilt, len(l.acks), len(l.byOrder), events)
		})
	})
}
