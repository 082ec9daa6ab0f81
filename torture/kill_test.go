package torture

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKill9UnderLoad kills `chronicle serve` with SIGKILL at random moments
// while 8 HTTP clients create, pay and ship orders (and a child process
// appends multi-event batches straight to a second store, killed at the
// same moment). After every restart: every acknowledged command's event is
// at its acknowledged version, no order has a gap, a duplicate or a phantom
// event, no batch is half-visible, the projections resume (min_version
// reads succeed) and `chronicle verify` exits 0. Commands whose outcome was
// unknown are retried with their Idempotency-Key on the next server, so
// each one must land exactly once.
func TestKill9UnderLoad(t *testing.T) {
	kills := 10
	window := func(r *rand.Rand) time.Duration { return time.Duration(200+r.IntN(1300)) * time.Millisecond }
	if testing.Short() {
		window = func(r *rand.Rand) time.Duration { return time.Duration(100+r.IntN(500)) * time.Millisecond }
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		appURL := "sqlite://" + filepath.Join(t.TempDir(), "batches.db")
		if b.name == "postgres" {
			appURL = postgresSchemaURL(t, devPostgres(t))
		}
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rnd := rand.New(rand.NewPCG(seed, 1))
		led := newLedger()
		clients := newClients(8, "k", led, seed, false)
		batchAcks := map[string][3]any{}
		checked := 0
		check := func(srv *server) {
			t.Helper()
			ctx := context.Background()
			store := openStore(t, b.url)
			checkLedger(t, ctx, store, led)
			checkLog(t, ctx, store)
			store.Close()
			app := openStore(t, appURL)
			checkBatches(t, ctx, app, batchAcks)
			app.Close()
			checked = waitProjections(t, srv, led, checked)
			verify(t, b.url)
			if t.Failed() {
				t.FailNow()
			}
		}
		for round := range kills {
			srv := startServer(t, b.url)
			if round > 0 {
				check(srv)
			}
			app := startAppender(t, appURL, "r"+itoa(round))
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { runClients(ctx, clients, srv.base) })
			// The window starts once the appender writes too.
			select {
			case <-app.first:
			case <-app.done:
				t.Fatal("the appender exited")
			case <-time.After(boundedWait):
				t.Fatal("the appender acknowledged nothing")
			}
			time.Sleep(window(rnd))
			// Kill both at once, with commands and appends in flight.
			var kw sync.WaitGroup
			kw.Go(srv.kill)
			kw.Go(app.kill)
			kw.Wait()
			cancel()
			wg.Wait()
			srv.checkLog()
			app.mu.Lock()
			for k, v := range app.acks {
				batchAcks[k] = v
			}
			app.mu.Unlock()
		}
		srv := startServer(t, b.url)
		check(srv)
		srv.stop()

		store := openStore(t, b.url)
		events := checkLog(t, context.Background(), store)
		var codes []string
		led.count(func(l *ledger) {
			for c, n := range l.codes {
				codes = append(codes, itoa(c)+":"+itoa(n))
			}
			t.Logf("RESULT kill9/%s: kills=%d commands_acknowledged=%d orders=%d events=%d batches_acknowledged=%d "+
				"unanswered_requests=%d timeouts=%d non2xx=[%s] lost=0 duplicates=0 half_visible=0",
				b.name, kills, len(l.acks), len(l.byOrder), events, len(batchAcks), l.transport, l.timeouts, strings.Join(codes, " "))
		})
	})
}
