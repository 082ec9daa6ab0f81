package relay_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/natstest"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/relay"
)

// running is a relay run by a projection runner, as serve and chronicle
// relay run it.
type running struct {
	relay   *relay.Relay
	runner  *projection.Runner
	metrics *relay.Metrics
	reg     *prometheus.Registry
	stop    func()
}

// sinkFunc wraps the relay to inject faults around its Deliver.
type sinkFunc struct {
	projection.Sink
	deliver func(ctx context.Context, events []chronicle.RecordedEvent) error
}

func (s sinkFunc) Deliver(ctx context.Context, events []chronicle.RecordedEvent) error {
	return s.deliver(ctx, events)
}

func startRelay(t *testing.T, b chronicle.Store, url string, wrap func(projection.Sink) projection.Sink) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	var run running
	m, err := relay.NewMetrics(reg, func(ctx context.Context) (projection.Status, bool, error) {
		return relay.StatusOf(run.runner)(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Options{URL: url, Upcaster: order.NewRegistry(), Metrics: m, AckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var sink projection.Sink = r
	if wrap != nil {
		sink = wrap(r)
	}
	runner, err := projection.New(b, projection.Options{Sinks: []projection.Sink{sink}, PollInterval: 50 * time.Millisecond,
		Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, LeaseInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runner.Run(ctx)
	}()
	var once sync.Once
	run = running{relay: r, runner: runner, metrics: m, reg: reg, stop: func() {
		once.Do(func() {
			cancel()
			<-done
			r.Close()
		})
	}}
	t.Cleanup(run.stop)
	return &run
}

// appendEvents appends n events over streams order-0..order-(streams-1),
// from 4 writers at once.
func appendEvents(t *testing.T, b chronicle.Store, streams, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				stream := fmt.Sprintf("order-%d", i%streams)
				_, err := b.Append(context.Background(), stream, chronicle.Any, []chronicle.Event{{
					Type: "OrderNoteAdded", Data: fmt.Appendf(nil, `{"i":%d}`, i), Metadata: []byte(`{"actor":"test"}`)}})
				if err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
}

// caughtUp waits until the relay's checkpoint is at the store's settled
// head.
func caughtUp(t *testing.T, b chronicle.Store, run *running) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		head, err := b.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if head.Position == head.Committed {
			if err := run.runner.WaitFor(ctx, relay.Name, head.Checkpoint); err != nil {
				st, _ := run.runner.Status(context.Background())
				t.Fatalf("relay not caught up: %v; status %+v", err, st)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("head held back: %+v", head)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkConsumer reads the whole stream as a consumer and compares it with
// the store.
func checkConsumer(t *testing.T, b chronicle.Store, srv *natstest.Server) []natstest.Message {
	t.Helper()
	msgs, err := srv.ReadAll(relay.StreamName, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := natstest.CheckRelayed(context.Background(), b, order.NewRegistry(), relay.DefaultSubjectPrefix, msgs); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func counter(t *testing.T, run *running, name string) float64 {
	t.Helper()
	mfs, err := run.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestRelayEveryEventOnce: events written while the relay runs arrive
// once each, in each stream's version order, with the feed's JSON.
func TestRelayEveryEventOnce(t *testing.T) {
	for _, o := range testbackends.All() {
		t.Run(o.Name, func(t *testing.T) {
			b := o.Open(t, testbackends.Options{})
			srv := natstest.Start(t)
			run := startRelay(t, b, srv.URL(), nil)
			appendEvents(t, b, 20, 600)
			caughtUp(t, b, run)
			msgs := checkConsumer(t, b, srv)
			if len(msgs) != 600 {
				t.Fatalf("%d messages", len(msgs))
			}
			if got := counter(t, run, "chronicle_relay_acknowledged_total"); got < 600 {
				t.Errorf("acknowledged_total %v, want >= 600", got)
			}
			if got := counter(t, run, "chronicle_relay_lag_events"); got != 0 {
				t.Errorf("lag_events %v once caught up", got)
			}
			if problems, err := testutil.GatherAndLint(run.reg); err != nil || len(problems) > 0 {
				t.Errorf("metrics lint: %v %v", problems, err)
			}
		})
	}
}

// TestRelayWaitsForNATS: with NATS unreachable the relay stores no
// checkpoint and keeps trying; once NATS starts, every event arrives.
func TestRelayWaitsForNATS(t *testing.T) {
	for _, o := range testbackends.All() {
		t.Run(o.Name, func(t *testing.T) {
			b := o.Open(t, testbackends.Options{})
			srv := natstest.New(t) // not started
			run := startRelay(t, b, srv.URL(), nil)
			appendEvents(t, b, 5, 100)
			deadline := time.Now().Add(30 * time.Second)
			for counter(t, run, "chronicle_relay_retried_total") < 100 { // a window tried again
				if time.Now().After(deadline) {
					t.Fatal("the relay did not retry")
				}
				time.Sleep(20 * time.Millisecond)
			}
			// The head may lag the commits a moment (another session's
			// transaction on a shared cluster holds readers back).
			for {
				st, ok, err := relay.StatusOf(run.runner)(context.Background())
				if err != nil || !ok || st.Position != 0 || st.LagEvents > 100 {
					t.Fatalf("relay status while NATS is down: %+v, %v, %v; want position 0, lag 100", st, ok, err)
				}
				if st.LagEvents == 100 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("relay status while NATS is down: %+v; want lag 100", st)
				}
				time.Sleep(20 * time.Millisecond)
			}
			srv.Start()
			appendEvents(t, b, 5, 100)
			caughtUp(t, b, run)
			if msgs := checkConsumer(t, b, srv); len(msgs) != 200 {
				t.Fatalf("%d messages", len(msgs))
			}
		})
	}
}

// TestRelayNATSRestartUnderLoad: NATS stopped and started again while
// events are written: every event arrives once, in order.
func TestRelayNATSRestartUnderLoad(t *testing.T) {
	for _, o := range testbackends.All() {
		t.Run(o.Name, func(t *testing.T) {
			b := o.Open(t, testbackends.Options{})
			srv := natstest.Start(t)
			run := startRelay(t, b, srv.URL(), nil)
			done := make(chan struct{})
			go func() {
				defer close(done)
				appendEvents(t, b, 20, 1500)
			}()
			// Stop NATS once the relay has published some of the load.
			deadline := time.Now().Add(30 * time.Second)
			for counter(t, run, "chronicle_relay_acknowledged_total") < 300 {
				if time.Now().After(deadline) {
					t.Fatal("nothing relayed")
				}
				time.Sleep(5 * time.Millisecond)
			}
			srv.Stop()
			time.Sleep(300 * time.Millisecond) // down for a while, under load
			srv.Start()
			<-done
			caughtUp(t, b, run)
			if msgs := checkConsumer(t, b, srv); len(msgs) != 1500 {
				t.Fatalf("%d messages", len(msgs))
			}
			if counter(t, run, "chronicle_relay_retried_total") == 0 {
				t.Log("no window was retried: NATS went down between windows")
			}
		})
	}
}

// TestRelayResumesAfterCheckpoint: a relay started again publishes only
// what follows its checkpoint.
func TestRelayResumesAfterCheckpoint(t *testing.T) {
	for _, o := range testbackends.All() {
		t.Run(o.Name, func(t *testing.T) {
			b := o.Open(t, testbackends.Options{})
			srv := natstest.Start(t)
			first := startRelay(t, b, srv.URL(), nil)
			appendEvents(t, b, 5, 100)
			caughtUp(t, b, first)
			first.stop()
			appendEvents(t, b, 5, 50)
			second := startRelay(t, b, srv.URL(), nil)
			caughtUp(t, b, second)
			if got := counter(t, second, "chronicle_relay_published_total"); got != 50 {
				t.Errorf("the second relay published %v messages, want the 50 after the checkpoint", got)
			}
			if msgs := checkConsumer(t, b, srv); len(msgs) != 150 {
				t.Fatalf("%d messages", len(msgs))
			}
		})
	}
}

// TestRelayCrashBetweenAckAndCheckpoint: a relay that dies after
// JetStream acknowledged a window but before its checkpoint moved
// publishes the window again when it restarts; the broker drops the
// repeats (Nats-Msg-Id), so the consumer sees each event once.
func TestRelayCrashBetweenAckAndCheckpoint(t *testing.T) {
	for _, o := range testbackends.All() {
		t.Run(o.Name, func(t *testing.T) {
			b := o.Open(t, testbackends.Options{})
			srv := natstest.Start(t)
			appendEvents(t, b, 5, 100)
			crashed := make(chan struct{})
			var once sync.Once
			first := startRelay(t, b, srv.URL(), func(s projection.Sink) projection.Sink {
				return sinkFunc{Sink: s, deliver: func(ctx context.Context, events []chronicle.RecordedEvent) error {
					if err := s.Deliver(ctx, events); err != nil {
						return err
					}
					once.Do(func() { close(crashed) })
					<-ctx.Done() // dies here: acknowledged, checkpoint not stored
					return errors.New("crashed")
				}}
			})
			<-crashed
			first.stop()
			if st, _, _ := relay.StatusOf(first.runner)(context.Background()); st.Position != 0 {
				t.Fatalf("checkpoint moved to %d", st.Position)
			}
			second := startRelay(t, b, srv.URL(), nil)
			caughtUp(t, b, second)
			if got := counter(t, second, "chronicle_relay_published_total"); got != 100 {
				t.Errorf("the second relay published %v messages, want all 100 again", got)
			}
			if msgs := checkConsumer(t, b, srv); len(msgs) != 100 {
				t.Fatalf("%d messages", len(msgs))
			}
		})
	}
}

// TestRelayLeaseTakeover: of two relays on one PostgreSQL store, one
// publishes; when it stops, the other takes over where it left off.
func TestRelayLeaseTakeover(t *testing.T) {
	b := testbackends.Postgres(t, testbackends.Options{})
	srv := natstest.Start(t)
	a := startRelay(t, b, srv.URL(), nil)
	c := startRelay(t, b, srv.URL(), nil)
	appendEvents(t, b, 5, 200)
	caughtUp(t, b, a)
	pa, pc := counter(t, a, "chronicle_relay_published_total"), counter(t, c, "chronicle_relay_published_total")
	if pa+pc != 200 || (pa != 0 && pc != 0) {
		t.Fatalf("published %v and %v, want 200 by one relay", pa, pc)
	}
	holder, standby := a, c
	if pc > 0 {
		holder, standby = c, a
	}
	holder.stop()
	appendEvents(t, b, 5, 100)
	caughtUp(t, b, standby)
	if got := counter(t, standby, "chronicle_relay_published_total"); got != 100 {
		t.Errorf("the standby published %v after the takeover, want the 100 new events", got)
	}
	if msgs := checkConsumer(t, b, srv); len(msgs) != 300 {
		t.Fatalf("%d messages", len(msgs))
	}
}
