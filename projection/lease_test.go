package projection_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

const (
	// freezeEnv names the schema a freeze helper process runs in.
	freezeEnv = "CHRONICLE_PROJECTION_FREEZE_SCHEMA"
	// freezeLease is both runners' LeaseInterval.
	freezeLease = time.Second
	// freezeOrder is the order whose first event the helper's summaries
	// projection pauses on inside its apply transaction, to be frozen there.
	freezeOrder = "freeze"
)

// applyLog records every application of every event, with no key to stop
// a second one: Verify then fails unless each event was applied exactly
// once, whichever process applied it, and whatever its runner was told
// (a commit whose acknowledgement was lost still counts).
type applyLog struct{}

func (applyLog) Name() string                     { return "apply_log" }
func (applyLog) Tables() []string                 { return []string{"apply_log"} }
func (applyLog) Filter() chronicle.ReadAllOptions { return chronicle.ReadAllOptions{} }

func (applyLog) Create(ctx context.Context, tx *sql.Tx, _ projection.Dialect, t projection.Tables) error {
	_, err := tx.ExecContext(ctx, `CREATE TABLE `+t.Of("apply_log")+` (event_id TEXT NOT NULL, position BIGINT NOT NULL)`)
	return err
}

func (applyLog) Apply(ctx context.Context, tx *projection.Tx, d projection.Dialect, t projection.Tables, events []chronicle.RecordedEvent) error {
	for _, e := range events {
		if _, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO `+t.Of("apply_log")+` (event_id, position) VALUES ($1, $2)`), e.ID, e.Position); err != nil {
			return err
		}
	}
	return nil
}

func (applyLog) NewReplay() projection.Replay { return applyLogReplay(projection.Rows{}) }

func (applyLog) Load(ctx context.Context, q projection.Querier, _ projection.Dialect, t projection.Tables) (projection.Rows, error) {
	rows, err := q.QueryContext(ctx, `SELECT event_id, count(*) FROM `+t.Of("apply_log")+` GROUP BY event_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := projection.Rows{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out.Put("apply_log", id, projection.Row{"applied": strconv.Itoa(n)})
	}
	return out, rows.Err()
}

type applyLogReplay projection.Rows

func (r applyLogReplay) Apply(e chronicle.RecordedEvent) error {
	projection.Rows(r).Put("apply_log", e.ID, projection.Row{"applied": "1"})
	return nil
}

func (r applyLogReplay) Rows() projection.Rows { return projection.Rows(r) }

// withApplyLog is the order read models and an applyLog.
func withApplyLog() []projection.Projection {
	return append(orderview.Projections(), applyLog{})
}

// TestFreezeHelperProcess is not a test: TestLeaseTakeoverAfterFreeze runs
// the test binary with it as a second process holding the projections, and
// freezes it. It reports on stdout when it takes or loses a lease, and when
// it is fenced.
func TestFreezeHelperProcess(t *testing.T) {
	schema := os.Getenv(freezeEnv)
	if schema == "" {
		t.Skip("helper process for TestLeaseTakeoverAfterFreeze")
	}
	s := viewtest.OpenPostgresSchema(t, schema)
	marker, _ := order.StreamID(freezeOrder)
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	var pause sync.Once
	r := newRunner(t, s, projection.Options{
		LeaseInterval: freezeLease,
		Hooks: projection.Hooks{
			Fenced: func(name string) { say("fenced %s", name) },
			Lease:  func(name string, held bool) { say("lease %s %t", name, held) },
		},
		BeforeCommit: func(name string, events []chronicle.RecordedEvent) error {
			if name != orderview.SummariesName {
				return nil
			}
			for _, e := range events {
				if e.StreamID == marker {
					pause.Do(func() {
						say("in-tx %s", name)
						time.Sleep(2 * time.Second) // the parent freezes us here
					})
				}
			}
			return nil
		},
	}, withApplyLog()...)
	// Bounded in case the parent dies without killing us.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r.Run(ctx)
}

// runnerLog is what a runner reported: the leases it holds, the times it
// was fenced, the lines it said.
type runnerLog struct {
	mu     sync.Mutex
	held   map[string]bool
	seen   map[string]bool // e.g. "in-tx order_summaries"
	fenced int
}

func newRunnerLog() *runnerLog {
	return &runnerLog{held: map[string]bool{}, seen: map[string]bool{}}
}

func (l *runnerLog) hooks() projection.Hooks {
	return projection.Hooks{
		Fenced: func(name string) { l.line("fenced " + name) },
		Lease:  func(name string, held bool) { l.line(fmt.Sprintf("lease %s %t", name, held)) },
	}
}

func (l *runnerLog) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[s] = true
	f := strings.Fields(s)
	switch {
	case len(f) == 3 && f[0] == "lease":
		l.held[f[1]] = f[2] == "true"
	case len(f) == 2 && f[0] == "fenced":
		l.fenced++
	}
}

// waitFor polls cond (another process reports asynchronously) until it
// holds or the deadline passes.
func (l *runnerLog) waitFor(t *testing.T, within time.Duration, what string, cond func(*runnerLog) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		l.mu.Lock()
		ok := cond(l)
		l.mu.Unlock()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func holdsAll(names []string, want bool) func(*runnerLog) bool {
	return func(l *runnerLog) bool {
		for _, n := range names {
			if l.held[n] != want {
				return false
			}
		}
		return true
	}
}

// The process holding the projections freezes (SIGSTOP) in the middle of an
// apply transaction: its connections stay open, so only the server can
// release its lease and its transaction. Another runner takes over within
// the documented 4 x LeaseInterval; the frozen one, resumed, notices it lost
// its leases, and no event is applied twice.
func TestLeaseTakeoverAfterFreeze(t *testing.T) {
	b := testbackends.Postgres(t, testbackends.Options{})
	ctx := context.Background()
	schema := b.(*pgstore.Store).Schema()

	helper := exec.Command(os.Args[0], "-test.run=^TestFreezeHelperProcess$")
	helper.Env = append(os.Environ(), freezeEnv+"="+schema)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		helper.Process.Signal(syscall.SIGCONT)
		helper.Process.Kill()
		helper.Wait()
	})
	remote, here := newRunnerLog(), newRunnerLog()
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			remote.line(sc.Text())
		}
	}()

	r := newRunner(t, b, projection.Options{LeaseInterval: freezeLease, Hooks: here.hooks()}, withApplyLog()...)
	names := r.Names()
	remote.waitFor(t, 30*time.Second, "the helper takes the leases", holdsAll(names, true))
	start(t, r) // standing by
	w := viewtest.NewWorkload(10, "ord_")
	if err := w.Run(ctx, b, 60); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, r, b) // by the helper

	// The helper pauses inside the transaction applying this event; freeze
	// it there.
	marker, _ := order.StreamID(freezeOrder)
	if _, err := b.Append(ctx, marker, chronicle.NoStream, viewtest.Encode([]order.Event{order.OrderCreated{CustomerID: "c", Currency: "USD", Items: []order.Item{}, Total: 1}})); err != nil {
		t.Fatal(err)
	}
	remote.waitFor(t, 30*time.Second, "the helper applies the marker", func(l *runnerLog) bool { return l.seen["in-tx "+orderview.SummariesName] })
	if err := helper.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx, b, 40); err != nil {
		t.Fatal(err)
	}
	bound := 4 * freezeLease
	took := here.waitFor(t, bound+time.Second, "takeover after SIGSTOP (documented: 4 x LeaseInterval)", holdsAll(names, true))
	t.Logf("took over %v after SIGSTOP", took.Round(time.Millisecond))
	caughtUp(t, r, b)

	if err := helper.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	remote.waitFor(t, 3*freezeLease+2*time.Second, "the resumed helper notices it lost its leases", holdsAll(names, false))
	if err := w.Run(ctx, b, 20); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, r, b)
	// Every event applied exactly once, by either process: the apply log
	// has one row per event (and the order read models are right).
	verifyEqual(t, r)
	remote.mu.Lock()
	t.Logf("the resumed helper was fenced %d times", remote.fenced)
	remote.mu.Unlock()
}

// cutProxy forwards TCP connections to target until cut; from then on it
// forwards nothing either way and keeps every connection open, as a
// network partition does (no FIN, no RST: both ends wait).
type cutProxy struct {
	ln     net.Listener
	target string
	cutc   chan struct{}
	cut    func()
	mu     sync.Mutex
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, cutc: make(chan struct{})}
	p.cut = sync.OnceFunc(func() { close(p.cutc) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
	return p
}

func (p *cutProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *cutProxy) pipe(c net.Conn) {
	p.track(c)
	select {
	case <-p.cutc:
		return // accepted, never answered
	default:
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.track(s)
	go p.copy(s, c)
	p.copy(c, s)
}

func (p *cutProxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.cutc:
			return // what was read is lost; nothing more is read
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// close ends the partition's connections for good.
func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// The process holding the projections is cut off from the database (its
// connections stay open, nothing arrives): it notices within
// 2 x LeaseInterval and stops, and another runner takes over within the
// documented 4 x LeaseInterval, not after a TCP timeout.
func TestLeaseTakeoverAfterCutOff(t *testing.T) {
	b := testbackends.Postgres(t, testbackends.Options{})
	ctx := context.Background()
	schema := b.(*pgstore.Store).Schema()
	u, err := url.Parse(testbackends.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	cutStore, err := pgstore.Open(ctx, u.String(), pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cutStore.Close() })
	t.Cleanup(proxy.close) // first: unblocks everything waiting on the partition

	cutLog, here := newRunnerLog(), newRunnerLog()
	cutRunner := newRunner(t, cutStore, projection.Options{LeaseInterval: freezeLease, Hooks: cutLog.hooks()}, withApplyLog()...)
	start(t, cutRunner)
	names := cutRunner.Names()
	cutLog.waitFor(t, 30*time.Second, "the first runner takes the leases", holdsAll(names, true))
	r := newRunner(t, b, projection.Options{LeaseInterval: freezeLease, Hooks: here.hooks()}, withApplyLog()...)
	start(t, r) // standing by
	w := viewtest.NewWorkload(12, "ord_")
	if err := w.Run(ctx, b, 40); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, r, b) // by the first runner

	proxy.cut()
	cutAt := time.Now()
	if err := w.Run(ctx, b, 40); err != nil {
		t.Fatal(err)
	}
	noticed := cutLog.waitFor(t, 2*freezeLease+time.Second, "the cut-off runner notices (2 x LeaseInterval)", holdsAll(names, false))
	t.Logf("the cut-off runner stopped %v after the cut", noticed.Round(time.Millisecond))
	here.waitFor(t, 4*freezeLease+time.Second-time.Since(cutAt), "takeover after the cut (documented: 4 x LeaseInterval)", holdsAll(names, true))
	t.Logf("took over %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	caughtUp(t, r, b)
	verifyEqual(t, r) // every event applied exactly once (applyLog)
}
