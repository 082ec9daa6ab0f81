package projection_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/projection"
)

func newRunner(t testing.TB, b chronicle.Store, opts projection.Options, ps ...projection.Projection) *projection.Runner {
	t.Helper()
	opts.Upcaster = order.NewRegistry()
	if opts.PollInterval == 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	if len(ps) == 0 {
		ps = orderview.Projections()
	}
	r, err := projection.New(b, opts, ps...)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

func start(t testing.TB, r *projection.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitHead(t testing.TB, r *projection.Runner, s chronicle.Store, timeout time.Duration, names ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		names = r.Names()
	}
	// On PostgreSQL the head can be held back by a transaction in flight (a
	// projection's own commit, a NOTIFY): wait until it settles.
	for {
		for _, n := range names {
			if err := r.WaitFor(ctx, n, head.Checkpoint); err != nil {
				return fmt.Errorf("WaitFor(%s): %w", n, err)
			}
		}
		again, err := s.Head(ctx)
		if err != nil {
			return err
		}
		// Settled: unchanged, and nothing committed is held back behind a
		// transaction in flight (a projection's commit, a NOTIFY).
		if again == head && again.Committed == again.Position {
			return nil
		}
		if again == head {
			time.Sleep(10 * time.Millisecond)
		}
		head = again
	}
}

// settledHead is the head once readers see every committed event: on
// PostgreSQL another session's transaction (another test on the cluster)
// can hold events back, and they appear later.
func settledHead(t testing.TB, s chronicle.Store) chronicle.Head {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		head, err := s.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if head.Position == head.Committed {
			return head
		}
		if time.Now().After(deadline) {
			t.Fatalf("head still held back after 60s: %+v", head)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func caughtUp(t testing.TB, r *projection.Runner, s chronicle.Store, names ...string) {
	t.Helper()
	if err := waitHead(t, r, s, 60*time.Second, names...); err != nil {
		st, _ := r.Status(context.Background())
		t.Fatalf("%v; status %+v", err, st)
	}
}

func verifyEqual(t testing.TB, r *projection.Runner) {
	t.Helper()
	d, err := r.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(d) > 0 {
		t.Fatalf("Verify: %d differences, first: %v", len(d), d[0])
	}
}

func orderEvents(t testing.TB, s chronicle.Store) int {
	t.Helper()
	n := 0
	var from chronicle.Checkpoint
	for {
		evs, err := s.ReadAll(context.Background(), from, chronicle.ReadAllOptions{StreamTypes: []string{order.StreamType}})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return n
		}
		n += len(evs)
		from = evs[len(evs)-1].Checkpoint()
	}
}

// Acceptance 2: a crash between the read-model write and the commit loses
// nothing and repeats nothing after a restart.
func TestCrashAtCommit(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		if err := viewtest.NewWorkload(2, "ord_").Run(ctx, b, 200); err != nil {
			t.Fatal(err)
		}
		crashed := make(chan struct{})
		var calls atomic.Int32
		var stop func()
		r := newRunner(t, b, projection.Options{BatchSize: 20, BeforeCommit: func(name string, _ []chronicle.RecordedEvent) error {
			if name == orderview.SummariesName && calls.Add(1) == 3 {
				close(crashed)
				return errors.New("injected crash at commit")
			}
			return nil
		}})
		stop = start(t, r)
		<-crashed
		stop() // the "process" dies with the third batch uncommitted

		cp, err := r.Checkpoint(ctx, orderview.SummariesName)
		if err != nil {
			t.Fatal(err)
		}
		if cp.IsZero() {
			t.Fatal("no batch committed before the crash")
		}
		r2 := newRunner(t, b, projection.Options{BatchSize: 20})
		start(t, r2)
		caughtUp(t, r2, b)
		verifyEqual(t, r2)
	})
}

// Acceptance 3: two runners of the same projections on one database (two
// "processes"): every event is applied exactly once.
func TestTwoRunners(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			a, b := viewtest.Pair(t, backend)
			ctx := context.Background()
			var mu sync.Mutex
			applied := map[string]map[string]int{} // runner -> projection -> events
			hooks := func(runner string) projection.Hooks {
				applied[runner] = map[string]int{}
				return projection.Hooks{Applied: func(name string, n int, _ chronicle.Checkpoint, _ time.Duration) {
					mu.Lock()
					applied[runner][name] += n
					mu.Unlock()
				}}
			}
			ra := newRunner(t, a, projection.Options{BatchSize: 10, Hooks: hooks("a")})
			rb := newRunner(t, b, projection.Options{BatchSize: 10, Hooks: hooks("b")})
			start(t, ra)
			start(t, rb)
			wa, wb := viewtest.NewWorkload(1, "a"), viewtest.NewWorkload(2, "b")
			for range 150 {
				if err := wa.Step(ctx, a); err != nil {
					t.Fatal(err)
				}
				if err := wb.Step(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			caughtUp(t, ra, a)
			caughtUp(t, rb, b)
			verifyEqual(t, ra)
			total := orderEvents(t, a)
			mu.Lock()
			defer mu.Unlock()
			for _, name := range ra.Names() {
				if got := applied["a"][name] + applied["b"][name]; got != total {
					t.Errorf("%s: runners applied %d + %d events, the log has %d", name, applied["a"][name], applied["b"][name], total)
				}
				if backend == "postgres" && applied["a"][name] > 0 && applied["b"][name] > 0 {
					t.Errorf("%s: both runners applied events (%d, %d) although one holds the lease", name, applied["a"][name], applied["b"][name])
				}
			}
			st, err := ra.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st {
				if s.Status != projection.StatusRunning || s.LagEvents != 0 {
					t.Errorf("status %+v, want running with no lag", s)
				}
			}
		})
	}
}

// breakable wraps a projection so that it fails on the events of one stream
// while broken.
type breakable struct {
	projection.Projection
	mu     sync.Mutex
	stream string
}

func (p *breakable) breakOn(stream string) {
	p.mu.Lock()
	p.stream = stream
	p.mu.Unlock()
}

func (p *breakable) Apply(ctx context.Context, tx *projection.Tx, d projection.Dialect, t projection.Tables, events []chronicle.RecordedEvent) error {
	p.mu.Lock()
	bad := p.stream
	p.mu.Unlock()
	for _, e := range events {
		if bad != "" && e.StreamID == bad {
			return fmt.Errorf("cannot apply %s v%d: simulated bug", e.StreamID, e.Version)
		}
	}
	return p.Projection.Apply(ctx, tx, d, t, events)
}

// Acceptance 4: a poison event stops its projection with the error
// visible; retry after the fix continues; skip records the event; the
// other projection keeps running.
func TestPoisonEvent(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		sum := &breakable{Projection: orderview.Summaries{}}
		failed := make(chan projection.Failure, 10)
		var retries atomic.Int32
		r := newRunner(t, b, projection.Options{
			BatchSize: 25, MaxAttempts: 3, Backoff: time.Millisecond,
			Hooks: projection.Hooks{Failing: func(name string, f projection.Failure, final bool) {
				if final {
					failed <- f
				} else {
					retries.Add(1)
				}
			}},
		}, sum, orderview.StatusHistory{})
		start(t, r)
		w := viewtest.NewWorkload(4, "ord_")
		if err := w.Run(ctx, b, 60); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)

		// A bug: the summaries projection cannot apply this order's events.
		poison, _ := order.StreamID("poison1")
		sum.breakOn(poison)
		res, err := b.Append(ctx, poison, chronicle.NoStream, viewtest.Encode([]order.Event{order.OrderCreated{CustomerID: "c", Currency: "USD", Items: []order.Item{}, Total: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Run(ctx, b, 40); err != nil {
			t.Fatal(err)
		}
		f := <-failed
		if f.StreamID != poison || f.Version != 1 || f.Position != res.FirstPosition || f.Attempts != 3 || f.Error == "" {
			t.Errorf("failure = %+v, want %s v1 at position %d after 3 attempts", f, poison, res.FirstPosition)
		}
		if retries.Load() != 2 {
			t.Errorf("%d retries before stopping, want 2", retries.Load())
		}
		st := status(t, r, orderview.SummariesName)
		if st.Status != projection.StatusFailed || st.Failure == nil || st.Failure.StreamID != poison || st.Failure.Position != res.FirstPosition {
			t.Errorf("status = %+v, want failed at %s", st, poison)
		}
		// The other projection kept going, past the poison event.
		caughtUp(t, r, b, orderview.HistoryName)
		if err := r.Skip(ctx, orderview.HistoryName); !errors.Is(err, projection.ErrNotFailed) {
			t.Errorf("Skip(running projection) = %v, want ErrNotFailed", err)
		}

		// The fix is deployed: retry, and it continues.
		sum.breakOn("")
		if err := r.Retry(ctx, orderview.SummariesName); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)
		verifyEqual(t, r)

		// Another poison event, this time skipped by the operator.
		poison2, _ := order.StreamID("poison2")
		sum.breakOn(poison2)
		res2, err := b.Append(ctx, poison2, chronicle.NoStream, viewtest.Encode([]order.Event{order.OrderCreated{CustomerID: "c", Currency: "USD", Items: []order.Item{}, Total: 2}}))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Run(ctx, b, 20); err != nil {
			t.Fatal(err)
		}
		<-failed
		if err := r.Skip(ctx, orderview.SummariesName); err != nil {
			t.Fatal(err)
		}
		caughtUp(t, r, b)
		skipped, err := r.SkippedEvents(ctx, orderview.SummariesName)
		if err != nil {
			t.Fatal(err)
		}
		if len(skipped) != 1 || skipped[0].StreamID != poison2 || skipped[0].Version != 1 || skipped[0].Position != res2.FirstPosition || skipped[0].Error == "" {
			t.Errorf("skipped = %+v, want %s v1 at %d", skipped, poison2, res2.FirstPosition)
		}
		if _, err := orderview.NewReader(b).Get(ctx, "poison2"); !errors.Is(err, chronicle.ErrNotFound) {
			t.Errorf("Get(skipped order) = %v, want not found", err)
		}
		// Verify and Rebuild honour the recorded skip (the bug is still there).
		verifyEqual(t, r)
		if err := r.Rebuild(ctx, orderview.SummariesName, nil); err != nil {
			t.Fatalf("Rebuild: %v", err)
		}
		caughtUp(t, r, b)
		verifyEqual(t, r)
	})
}

func status(t testing.TB, r *projection.Runner, name string) projection.Status {
	t.Helper()
	st, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for %s", name)
	return projection.Status{}
}

func TestLagAndWait(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		if err := viewtest.NewWorkload(6, "ord_").Run(ctx, b, 50); err != nil {
			t.Fatal(err)
		}
		r := newRunner(t, b, projection.Options{})
		head := settledHead(t, b)
		st := status(t, r, orderview.SummariesName)
		if st.Position != 0 || st.HeadPosition != head.Position || st.LagEvents <= 0 || st.Held {
			t.Errorf("status before running = %+v, want lag up to head %d", st, head.Position)
		}
		// Not running: a bounded wait gives up with the context's error.
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := r.WaitFor(short, orderview.SummariesName, head.Checkpoint)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitFor without a runner = %v, want DeadlineExceeded", err)
		}
		if err := r.WaitFor(ctx, "nope", head.Checkpoint); !errors.Is(err, projection.ErrUnknown) {
			t.Errorf("WaitFor(unknown) = %v, want ErrUnknown", err)
		}
		start(t, r)
		// Waiting for a version not written yet returns once it is written
		// and applied.
		stream, _ := order.StreamID("later")
		waited := make(chan error, 1)
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			waited <- r.WaitForStream(wctx, orderview.SummariesName, stream, 2)
		}()
		evs, _ := order.Decide(order.State{}, order.Create{CustomerID: "c1", Items: []order.Item{{SKU: "A", Quantity: 1, UnitPrice: 5}}})
		if _, err := b.Append(ctx, stream, chronicle.NoStream, viewtest.Encode(evs)); err != nil {
			t.Fatal(err)
		}
		evs = []order.Event{order.PaymentReceived{Method: "card", Amount: 5}}
		if _, err := b.Append(ctx, stream, chronicle.Exact(1), viewtest.Encode(evs)); err != nil {
			t.Fatal(err)
		}
		if err := <-waited; err != nil {
			t.Fatal(err)
		}
		got, err := orderview.NewReader(b).Get(ctx, "later")
		if err != nil || got.Version != 2 || got.Status != order.StatusPaid {
			t.Errorf("Get after WaitForStream = %+v, %v; want version 2, paid", got, err)
		}
		caughtUp(t, r, b)
		head, _ = b.Head(ctx)
		for _, s := range mustStatus(t, r) {
			if s.Position != head.Position || s.LagEvents != 0 || s.LagSeconds != 0 || !s.Held || s.Status != projection.StatusRunning {
				t.Errorf("status when caught up = %+v, want at head %d", s, head.Position)
			}
		}
	})
}

func mustStatus(t testing.TB, r *projection.Runner) []projection.Status {
	t.Helper()
	st, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// helperEnv names the schema a failover helper process runs in.
const helperEnv = "CHRONICLE_PROJECTION_HELPER_SCHEMA"

// TestHelperProcess is not a test: TestFailover runs the test binary with
// it as a second "chronicle serve" holding the projections, then kills it.
func TestHelperProcess(t *testing.T) {
	schema := os.Getenv(helperEnv)
	if schema == "" {
		t.Skip("helper process for TestFailover")
	}
	s := viewtest.OpenPostgresSchema(t, schema)
	r := newRunner(t, s, projection.Options{})
	// Bounded in case the parent dies without killing us.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r.Run(ctx)
}

// Acceptance 7: kill -9 the process holding the projections; another
// process resumes them within 10 s, and the read models verify.
func TestFailover(t *testing.T) {
	b := testbackends.Postgres(t, testbackends.Options{})
	ctx := context.Background()
	schema := b.(*pgstore.Store).Schema()
	r := newRunner(t, b, projection.Options{})

	helper := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	helper.Env = append(os.Environ(), helperEnv+"="+schema)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })

	// Wait (bounded) until the helper holds both leases, then stand by.
	db := b.SQLDB()
	held := func() int {
		n := 0
		for _, name := range r.Names() {
			var c int
			key := projection.LockKey(schema, name)
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`, key).Scan(&c); err != nil {
				t.Fatal(err)
			}
			n += c
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); held() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("helper process did not take the leases within 30 s")
		}
		time.Sleep(20 * time.Millisecond) // bounded polling of another process
	}
	start(t, r)
	w := viewtest.NewWorkload(8, "ord_")
	if err := w.Run(ctx, b, 100); err != nil {
		t.Fatal(err)
	}
	// The helper applies them: this runner, standing by, sees its
	// checkpoints move.
	caughtUp(t, r, b)
	for _, s := range mustStatus(t, r) {
		if s.Held {
			t.Fatalf("%s held here while the helper holds its lease", s.Name)
		}
	}

	if err := helper.Process.Kill(); err != nil { // SIGKILL: no cleanup
		t.Fatal(err)
	}
	helper.Wait()
	killed := time.Now()
	if err := w.Run(ctx, b, 100); err != nil {
		t.Fatal(err)
	}
	if err := waitHead(t, r, b, 10*time.Second); err != nil {
		t.Fatalf("projections not resumed within 10 s of the kill: %v", err)
	}
	t.Logf("resumed %v after kill -9", time.Since(killed).Round(time.Millisecond))
	for _, s := range mustStatus(t, r) {
		if !s.Held {
			t.Errorf("%s not held here after the failover", s.Name)
		}
	}
	verifyEqual(t, r)
}
