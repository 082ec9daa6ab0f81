package torture

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/pgstore"
)

// TestLongTransactionHoldsSubscribers holds a write transaction open (an
// append of OrderCreated for order "held" whose BeforeCommit hook blocks:
// the session is idle in transaction after inserting its event) while 8
// clients keep committing commands through chronicle serve. Subscribers
// must not read past the open transaction (no skip): the read model stays
// behind, GET /projections and /metrics show the lag growing, and once the
// transaction commits everything catches up, the held event included, and
// `chronicle verify` exits 0. PostgreSQL only: SQLite has one writer.
func TestLongTransactionHoldsSubscribers(t *testing.T) {
	hold := 3 * time.Second
	if testing.Short() {
		hold = 1500 * time.Millisecond
	}
	url := postgresSchemaURL(t, devPostgres(t))
	srv := startServer(t, url)
	ctx := context.Background()

	// A second store on the same schema, in this process, whose append to
	// order-held stops inside its transaction until released.
	entered, release := make(chan struct{}), make(chan struct{})
	schema := url[strings.LastIndex(url, "schema=")+len("schema="):]
	base := strings.TrimSuffix(url, "&schema="+schema)
	held, err := pgstore.Open(ctx, base, pgstore.Options{Schema: schema, BeforeCommit: func(stream string, _ []chronicle.Event) error {
		if stream == "order-held" {
			close(entered)
			<-release
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })

	led := newLedger()
	clients := newClients(8, "l", led, uint64(time.Now().UnixNano()), false)
	load := func(d time.Duration) {
		lctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		runClients(lctx, clients, srv.base)
	}
	load(time.Second)
	from := waitProjections(t, srv, led, 0)

	appended := make(chan error, 1)
	go func() {
		_, err := held.Append(ctx, "order-held", chronicle.NoStream, []chronicle.Event{{
			Type: "OrderCreated", SchemaVersion: 1, Data: json.RawMessage(`{"customer_id":"cust_held","total":9999}`),
		}})
		appended <- err
	}()
	select {
	case <-entered:
	case <-time.After(boundedWait):
		t.Fatal("the held append never reached its commit")
	}

	// While the transaction is open: commands still succeed, the read
	// model stays behind them, and the lag is visible and grows.
	var lagMu sync.Mutex
	var lags []projLag
	var wg sync.WaitGroup
	lctx, stopLag := context.WithCancel(ctx)
	wg.Go(func() {
		for lctx.Err() == nil {
			if l, err := lagOf(lctx, srv, "order_summaries"); err == nil {
				lagMu.Lock()
				lags = append(lags, l)
				lagMu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	load(hold)
	stopLag()
	wg.Wait()
	heldAcks := led.acked() - from
	if heldAcks == 0 {
		t.Fatal("no command acknowledged while the transaction was open")
	}
	// The last acknowledged command is not in the read model yet (504 on a
	// short min_version wait would take 5 s; ask the projection instead).
	st, err := lagOf(ctx, srv, "order_summaries")
	if err != nil {
		t.Fatal(err)
	}
	metricLag := metricValue(t, srv, `chronicle_projection_lag_events{projection="order_summaries"}`)

	close(release)
	if err := <-appended; err != nil {
		t.Fatalf("held append: %v", err)
	}
	waitProjections(t, srv, led, 0)
	var heldState struct {
		CustomerID string `json:"customer_id"`
	}
	if err := srv.getJSON(ctx, "/orders/held?min_version=1", &heldState); err != nil || heldState.CustomerID != "cust_held" {
		t.Errorf("the held order after commit: %+v, %v", heldState, err)
	}
	// Caught up: no lag left.
	deadline := time.Now().Add(boundedWait)
	for {
		l, err := lagOf(ctx, srv, "order_summaries")
		if err == nil && l.Events == 0 && l.Seconds == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag never went back to 0: %+v, %v", l, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	store := openStore(t, url)
	events := checkLedger(t, ctx, store, led)
	checkLog(t, ctx, store)
	verify(t, url)
	srv.stop()

	lagMu.Lock()
	defer lagMu.Unlock()
	var maxEvents int64
	var maxSeconds float64
	grew := false
	for i, l := range lags {
		maxEvents, maxSeconds = max(maxEvents, l.Events), max(maxSeconds, l.Seconds)
		if i > 0 && l.Seconds > lags[0].Seconds && l.Events >= lags[0].Events {
			grew = true
		}
	}
	if st.Events == 0 || st.Seconds == 0 || !grew {
		t.Errorf("lag while a transaction held subscribers back: at the end %+v, max %d events / %.2fs over %d samples; want it visible and growing",
			st, maxEvents, maxSeconds, len(lags))
	}
	if metricLag <= 0 {
		t.Errorf("/metrics: projection lag %v while held, want > 0", metricLag)
	}
	t.Logf("RESULT longtx: held=%v commands_acknowledged_while_held=%d max_lag_events=%d max_lag_seconds=%.2f metric_lag_events=%v events=%d skipped=0",
		hold, heldAcks, maxEvents, maxSeconds, metricLag, events)
}

type projLag struct {
	Events  int64
	Seconds float64
}

// lagOf reads one projection's lag from GET /projections.
func lagOf(ctx context.Context, s *server, name string) (projLag, error) {
	var body struct {
		Projections []struct {
			Name       string  `json:"name"`
			LagEvents  int64   `json:"lag_events"`
			LagSeconds float64 `json:"lag_seconds"`
		} `json:"projections"`
	}
	if err := s.getJSON(ctx, "/projections", &body); err != nil {
		return projLag{}, err
	}
	for _, p := range body.Projections {
		if p.Name == name {
			return projLag{p.LagEvents, p.LagSeconds}, nil
		}
	}
	return projLag{}, fmt.Errorf("no projection %s in /projections", name)
}

// metricValue returns the value of one series of GET /metrics, or -1 when
// the series is absent.
func metricValue(t testing.TB, s *server, series string) float64 {
	t.Helper()
	res, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return -1
}
