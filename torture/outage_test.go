package torture

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPostgresCrashUnderLoad stops the server's PostgreSQL with
// `pg_ctl stop -m immediate` while 8 clients send commands and a prober
// reads, then starts it again. While the database is gone, chronicle serve
// keeps running and answers every request in bounded time (503, never a
// hang, a crash or a 500); it reconnects by itself; every acknowledged
// command is in the store exactly once; the projections catch up and
// `chronicle verify` exits 0. PostgreSQL only (its own throwaway cluster).
func TestPostgresCrashUnderLoad(t *testing.T) {
	outages, down := 3, 3*time.Second
	if testing.Short() {
		outages, down = 1, 2*time.Second
	}
	c := newCluster(t)
	url := postgresSchemaURL(t, c.URL())
	srv := startServer(t, url)
	led := newLedger()
	clients := newClients(8, "p", led, uint64(time.Now().UnixNano()), false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { runClients(ctx, clients, srv.base) })
	probe := newProber(srv.base)
	wg.Go(func() { probe.run(ctx) })

	waitAcks := func(what string) {
		t.Helper()
		n := led.acked()
		deadline := time.Now().Add(boundedWait)
		for led.acked() < n+20 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no commands acknowledged within %v\n%s", what, boundedWait, srv.log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitAcks("before the first outage")
	for i := range outages {
		if err := c.Stop(true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(down)
		if !srv.alive() {
			t.Fatalf("serve died while PostgreSQL was down: %v\n%s", srv.exitErr(), srv.log())
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		waitAcks(fmt.Sprintf("after outage %d", i+1))
	}
	cancel()
	wg.Wait()

	waitProjections(t, srv, led, 0)
	store := openStore(t, url)
	events := checkLedger(t, context.Background(), store, led)
	checkLog(t, context.Background(), store)
	verify(t, url)
	srv.stop()

	led.count(func(l *ledger) {
		if l.timeouts > 0 {
			t.Errorf("%d commands got no answer within %v (the server hung)", l.timeouts, requestTimeout)
		}
		if l.transport > 0 {
			t.Errorf("%d commands got no HTTP answer (connection failed) while serve ran", l.transport)
		}
		for code, n := range l.codes {
			if code != http.StatusServiceUnavailable {
				t.Errorf("%d commands answered %d while PostgreSQL was down (want 503)\n%s", n, code, srv.log())
			}
		}
		if l.codes[http.StatusServiceUnavailable] == 0 {
			t.Errorf("no command answered 503 during %d outages", outages)
		}
		t.Logf("RESULT pgcrash: outages=%d down_each=%v commands_acknowledged=%d events=%d answered_503=%d probes=%s lost=0",
			outages, down, len(l.acks), events, l.codes[http.StatusServiceUnavailable], probe.summary())
	})
	probe.check(t)
}

// prober reads while the database comes and goes: every request must be
// answered in bounded time, by 200 or 503 (or 504 for a min_version wait).
type prober struct {
	base string
	http *http.Client
	mu   sync.Mutex
	got  map[string]int // "path status" -> count
	bad  []string
}

func newProber(base string) *prober {
	return &prober{base: base, http: &http.Client{Timeout: requestTimeout}, got: map[string]int{}}
}

var probePaths = []string{"/readyz", "/healthz", "/projections", "/orders?limit=5", "/orders/p0_1", "/orders/p0_1/events", "/stats/order-status", "/metrics"}

func (p *prober) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		path := probePaths[i%len(probePaths)]
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
		res, err := p.http.Do(req)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		if err != nil {
			p.bad = append(p.bad, fmt.Sprintf("GET %s: %v", path, err))
		} else {
			res.Body.Close()
			p.got[fmt.Sprintf("%s %d", strings.SplitN(path, "?", 2)[0], res.StatusCode)]++
			ok := res.StatusCode == http.StatusOK || res.StatusCode == http.StatusServiceUnavailable ||
				(res.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/orders/p0_1"))
			if !ok {
				p.bad = append(p.bad, fmt.Sprintf("GET %s: %s", path, res.Status))
			}
		}
		p.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *prober) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]string, 0, len(p.got))
	for k := range p.got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("[")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s x%d", k, p.got[k])
	}
	b.WriteString("]")
	return b.String()
}

func (p *prober) check(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bad {
		t.Errorf("probe: %s", b)
	}
}
