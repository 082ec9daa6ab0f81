package torture

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/natstest"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/relay"
)

// relayProc is a spawned `chronicle relay` process.
type relayProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	tail  []string
	races int
	panic bool
}

func startRelayProc(t testing.TB, storeURL, natsURL string) *relayProc {
	t.Helper()
	p := &relayProc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(binary(t), "relay", "--nats", natsURL, "--store", storeURL, "--log-format", "json")
	p.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			l := sc.Text()
			if len(p.tail) == 100 {
				p.tail = p.tail[1:]
			}
			p.tail = append(p.tail, l)
			p.races += strings.Count(l, "WARNING: DATA RACE")
			p.panic = p.panic || strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:")
			p.mu.Unlock()
		}
		p.cmd.Wait()
	}()
	return p
}

// kill sends SIGKILL and waits for the process to end; it fails the test
// on a data race or a panic in its log.
func (p *relayProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.races > 0 || p.panic {
		p.t.Errorf("chronicle relay: %d data races, panic %v; log:\n%s", p.races, p.panic, strings.Join(p.tail, "\n"))
	}
}

// relayLoad appends events to orders r-0..r-49 from 4 writers until
// stopped.
type relayLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	n      atomic.Int64
	err    atomic.Value
}

func startRelayLoad(store chronicle.Store, tag string) *relayLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &relayLoad{cancel: cancel}
	for w := range 4 {
		l.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				stream := fmt.Sprintf("order-r%d", (i*4+w)%50)
				_, err := store.Append(ctx, stream, chronicle.Any, []chronicle.Event{{
					Type: "OrderNoteAdded", Data: fmt.Appendf(nil, `{"note":"%s-%d-%d"}`, tag, w, i)}})
				if err != nil && ctx.Err() == nil {
					l.err.Store(err)
					return
				}
				if err == nil {
					l.n.Add(1)
				}
				time.Sleep(time.Millisecond) // a steady load, not a flood
			}
		})
	}
	return l
}

func (l *relayLoad) stop(t testing.TB) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	if err, _ := l.err.Load().(error); err != nil {
		t.Fatalf("load: %v", err)
	}
}

// relayCaughtUp waits until the relay's stored checkpoint is at the settled
// head of the log.
func relayCaughtUp(t testing.TB, store chronicle.Store) {
	t.Helper()
	watcher, err := projection.New(store, projection.Options{Watch: []string{relay.Name}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), boundedWait)
	defer cancel()
	var last []projection.Status
	for ctx.Err() == nil {
		head, err := store.Head(ctx)
		if err == nil && head.Position == head.Committed {
			sts, err := watcher.Status(ctx)
			if err == nil {
				last = sts
				for _, st := range sts {
					cp := chronicle.Checkpoint{TxID: st.TxID, Position: st.Position}
					if st.Name == relay.Name && !cp.Before(head.Checkpoint) {
						return
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the relay did not catch up within %v: %+v", boundedWait, last)
}

// checkRelayed compares the JetStream stream, read by a consumer, with
// the store: every stored event exactly once, in per-order version order.
func checkRelayed(t testing.TB, store chronicle.Store, srv *natstest.Server, what string) int {
	t.Helper()
	relayCaughtUp(t, store)
	msgs, err := srv.ReadAll(relay.StreamName, boundedWait)
	if err != nil {
		t.Fatalf("%s: read the stream: %v", what, err)
	}
	if err := natstest.CheckRelayed(context.Background(), store, order.NewRegistry(), relay.DefaultSubjectPrefix, msgs); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return len(msgs)
}

// TestRelayFaults attacks `chronicle relay` on each backend, one fault
// after another on one store and one JetStream stream, with events written
// throughout: NATS unreachable when the relay starts; the relay killed with
// SIGKILL five times; NATS stopped and started again; on PostgreSQL, a
// write transaction held open for seconds. After each, a JetStream
// consumer has every stored event exactly once, each order's in version
// order, with the body of GET /events.
func TestRelayFaults(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rnd := rand.New(rand.NewPCG(seed, 2))
		store := openStore(t, b.url)
		srv := natstest.New(t) // not started: unreachable

		// NATS unreachable at start.
		load := startRelayLoad(store, "unreachable")
		proc := startRelayProc(t, b.url, srv.URL())
		time.Sleep(time.Second)
		srv.Start()
		time.Sleep(500 * time.Millisecond)
		load.stop(t)
		n := checkRelayed(t, store, srv, "NATS unreachable at start")
		t.Logf("unreachable at start: %d events", n)

		// kill -9 five times under load.
		load = startRelayLoad(store, "kill")
		for range 5 {
			time.Sleep(time.Duration(200+rnd.IntN(600)) * time.Millisecond)
			proc.kill()
			proc = startRelayProc(t, b.url, srv.URL())
		}
		time.Sleep(300 * time.Millisecond)
		load.stop(t)
		n = checkRelayed(t, store, srv, "relay killed 5 times")
		t.Logf("5 kills: %d events", n)

		// NATS stopped and started again under load.
		load = startRelayLoad(store, "restart")
		time.Sleep(time.Duration(200+rnd.IntN(400)) * time.Millisecond)
		srv.Stop()
		time.Sleep(time.Second)
		srv.Start()
		time.Sleep(500 * time.Millisecond)
		load.stop(t)
		n = checkRelayed(t, store, srv, "NATS restarted")
		t.Logf("NATS restarted: %d events", n)

		if b.name == "postgres" {
			n = relayHeldTransaction(t, b.url, store, srv)
			t.Logf("held transaction: %d events", n)
		}
		proc.kill()
		t.Logf("RESULT relay/%s: events=%d kills=5 nats_restarts=1 duplicates=0 missing=0 out_of_order=0", b.name, n)
	})
}

// relayHeldTransaction holds an append's transaction open for 2 s while
// others commit: the relay must wait for it (never skip it), then deliver
// it and everything after, in order.
func relayHeldTransaction(t *testing.T, url string, store chronicle.Store, srv *natstest.Server) int {
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	schema := url[strings.LastIndex(url, "schema=")+len("schema="):]
	base := strings.TrimSuffix(url, "&schema="+schema)
	base = strings.TrimSuffix(base, "?schema="+schema)
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
	defer held.Close()
	load := startRelayLoad(store, "held")
	appended := make(chan error, 1)
	go func() {
		_, err := held.Append(ctx, "order-held", chronicle.NoStream, []chronicle.Event{{
			Type: "OrderNoteAdded", Data: json.RawMessage(`{"note":"held"}`)}})
		appended <- err
	}()
	select {
	case <-entered:
	case <-time.After(boundedWait):
		t.Fatal("the held append never reached its commit")
	}
	time.Sleep(2 * time.Second)
	close(release)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	load.stop(t)
	return checkRelayed(t, store, srv, "transaction held open")
}
