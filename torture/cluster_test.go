package torture

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/natstest"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/personal"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/relay"
)

// clusterSize is how many serve processes share the store.
const clusterSize = 3

// TestClusterFaults runs three `chronicle serve` processes on one
// PostgreSQL primary, each with the primary's streaming standby as
// --replica and --relay-nats to one NATS server, under mixed load through
// all three: creates and commands, reads of orders, ?min_version reads,
// timelines, lists, stats and a feed reader that takes each page from the
// next process. Each process in turn is killed with SIGKILL and started
// again; the standby is stopped (immediate) and started again. After each
// kill every lease the victim held (each projection, the relay and the
// sealer) must be held by exactly one surviving process, by its own GET
// /projections (the sealer: its log) and by PostgreSQL's lock table.
// Afterwards: every acknowledged command's event is in the log; no read
// failed but those cut by a kill (the standby going away costs nothing);
// the feed read across processes and sources is the log exactly; the
// relay's JetStream stream holds every event exactly once; the seals cover
// the log; `chronicle verify` and `chronicle verify --integrity` exit 0.
func TestClusterFaults(t *testing.T) {
	start := time.Now()
	primary := newCluster(t)
	standby := newStandby(t, primary)
	storeURL := postgresSchemaURL(t, primary.URL())
	schema := storeURL[strings.LastIndex(storeURL, "schema=")+len("schema="):]
	nats := natstest.Start(t)
	cl := &cluster{
		t: t, url: storeURL, schema: schema, byHost: map[string]int{},
		args: []string{"--replica", standby.URL() + "&schema=" + schema, "--replica-max-lag", "2s", "--relay-nats", nats.URL()},
		out:  newOutcomes(),
	}
	cl.http = &http.Client{Timeout: requestTimeout, Transport: cl}
	conn, err := pgx.Connect(context.Background(), primary.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	cl.locks = conn

	// The first process takes every lease before the others start, so the
	// first kill moves them all.
	cl.start(0)
	names := cl.waitHolders(-1, func(h map[string][]int) bool {
		for _, n := range []string{"order_summaries", "order_status_history", "relay_nats", sealerLease} {
			if len(h[n]) != 1 || h[n][0] != 0 {
				return false
			}
		}
		return true
	})
	cl.start(1)
	cl.start(2)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	led := newLedger()
	clients := newClients(6, "c", led, seed, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i, c := range clients {
		c.http = cl.http
		wg.Go(func() { c.runVia(ctx, cl.route(i%clusterSize)) })
	}
	for i := range clusterSize {
		wg.Go(func() { cl.read(ctx, i, led, rand.New(rand.NewPCG(seed, uint64(i)))) })
	}
	feed := &feedReader{cl: cl}
	wg.Go(func() { feed.run(ctx, false) })

	waitAcks := func(what string, n int) {
		t.Helper()
		from := led.acked()
		deadline := time.Now().Add(boundedWait)
		for led.acked() < from+n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: fewer than %d commands acknowledged within %v", what, n, boundedWait)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitAcks("before the first kill", 30)

	moves := map[string]int{}
	var takeovers []time.Duration
	for victim := range clusterSize {
		held := cl.held(victim)
		cl.kill(victim)
		killed := time.Now()
		cl.waitHolders(victim, func(h map[string][]int) bool {
			for _, n := range names {
				if len(h[n]) != 1 {
					return false
				}
			}
			return true
		})
		took := time.Since(killed)
		cl.mu.Lock()
		cl.moving--
		cl.moved++
		cl.mu.Unlock()
		if len(held) > 0 {
			takeovers = append(takeovers, took)
		}
		t.Logf("kill %d: leases %v moved in %v", victim, held, took.Round(time.Millisecond))
		for _, n := range held {
			moves[n]++
		}
		cl.start(victim)
		waitAcks(fmt.Sprintf("after kill %d", victim), 20)

		if victim == 0 {
			// The standby goes away and comes back under load.
			if err := standby.Stop(true); err != nil {
				t.Fatal(err)
			}
			cl.waitSource("primary", 30, "standby stopped")
			if err := standby.Start(); err != nil {
				t.Fatal(err)
			}
			cl.waitSource("replica", 30, "standby started again")
		}
	}
	for _, n := range names {
		if moves[n] == 0 {
			t.Errorf("the lease of %s never moved", n)
		}
	}
	cl.out.stopping.Store(true)
	cancel()
	wg.Wait()

	// Afterwards, through a process that was killed and restarted.
	srv := cl.node(0)
	waitProjections(t, srv, led, 0)
	store := openStore(t, storeURL)
	events := checkLedger(t, context.Background(), store, led)
	checkLog(t, context.Background(), store)
	feed.check(t, store)
	relayed := checkRelayedRevealed(t, store, nats)
	seals, sealGap := waitSealed(t, store)
	verify(t, storeURL)
	verifyIntegrity(t, storeURL)
	for i := range clusterSize {
		cl.node(i).stop()
	}
	cl.out.check(t)

	led.count(func(l *ledger) {
		t.Logf("RESULT cluster: processes=%d kills=%d standby_restarts=1 commands_acknowledged=%d events=%d relayed=%d seals=%d longest_seal_gap=%v "+
			"lease_moves=%v takeover=%v reads=%s cut_by_kill=%s command_retries=%d lost=0 duplicates=0 elapsed=%v",
			clusterSize, clusterSize, len(l.acks), events, relayed, seals, sealGap.Round(10*time.Millisecond), moves, roundAll(takeovers), cl.out.summary(),
			cl.out.cutSummary(), l.transport+l.timeouts, time.Since(start).Round(100*time.Millisecond))
	})
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}

// cluster is the scenario's serve processes. Requests go through it (it is
// their http.RoundTripper) so that it can tell a request cut by a kill from
// a failure.
type cluster struct {
	t      testing.TB
	url    string
	schema string
	args   []string
	http   *http.Client // the load's, through the cluster
	locks  *pgx.Conn    // the primary, for pg_locks
	out    *outcomes

	mu     sync.Mutex
	nodes  [clusterSize]*server
	gen    [clusterSize]int // bumped by each kill
	down   [clusterSize]bool
	byHost map[string]int
	// moving counts the kills whose leases are not taken over yet: the
	// read models pause meanwhile.
	moving int
	moved  int // kills whose leases were taken over
}

func (cl *cluster) start(i int) {
	cl.t.Helper()
	s := startServerArgs(cl.t, cl.url, cl.args)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.nodes[i], cl.down[i] = s, false
	cl.byHost[strings.TrimPrefix(s.base, "http://")] = i
}

// kill marks process i down, then kills it with SIGKILL.
func (cl *cluster) kill(i int) {
	cl.mu.Lock()
	cl.down[i] = true
	cl.gen[i]++
	cl.moving++
	s := cl.nodes[i]
	cl.mu.Unlock()
	s.kill()
	s.checkLog()
}

func (cl *cluster) node(i int) *server {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.nodes[i]
}

// route returns the base URL of process i, or of the next one up while i
// is down.
func (cl *cluster) route(i int) func() string {
	return func() string {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		for k := range clusterSize {
			if j := (i + k) % clusterSize; !cl.down[j] {
				return cl.nodes[j].base
			}
		}
		return cl.nodes[i].base
	}
}

// RoundTrip sends req and classifies its outcome. The body is read here,
// so a connection cut in mid-answer counts too.
func (cl *cluster) RoundTrip(req *http.Request) (*http.Response, error) {
	cl.mu.Lock()
	i, known := cl.byHost[req.URL.Host]
	gen := cl.gen[i]
	moved := cl.moved
	takeover := cl.moving > 0
	cl.mu.Unlock()
	kind := requestKind(req)
	res, err := http.DefaultTransport.RoundTrip(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if cl.out.stopping.Load() {
		if err != nil {
			return nil, err
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
		return res, nil
	}
	cl.mu.Lock()
	cut := known && (cl.down[i] || cl.gen[i] != gen)
	takeover = takeover || cl.moving > 0 || cl.moved != moved
	cl.mu.Unlock()
	if err != nil {
		if cut {
			cl.out.cut(kind)
		} else {
			cl.out.fail(fmt.Sprintf("%s %s: %v", req.Method, req.URL, err))
		}
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	cl.out.answered(kind, res, body, takeover)
	return res, nil
}

// requestKind names what a request reads or does, for the outcome counts.
func requestKind(req *http.Request) string {
	p := req.URL.Path
	switch {
	case req.Method != http.MethodGet:
		return "command"
	case p == "/events":
		return "feed"
	case strings.HasSuffix(p, "/events"):
		return "timeline"
	case p == "/orders":
		return "list"
	case strings.HasPrefix(p, "/stats/"):
		return "stats"
	case req.URL.Query().Has("min_version"):
		return "min_version"
	case strings.HasPrefix(p, "/orders/"):
		return "order"
	}
	return p
}

// outcomes counts the load's answers by kind and source.
type outcomes struct {
	stopping atomic.Bool // the load is ending: cancelled requests are no failures

	mu      sync.Mutex
	sources map[string]int // "kind source" -> reads answered 200
	cuts    map[string]int // kind -> requests cut by a kill of their process
	notYet  int            // 404 of an order a lagging read model does not have yet
	// paused are ?min_version= reads answered 504 while the read models'
	// leases moved: their wait (5 s) overlapped a takeover.
	paused int
	bad    []string
}

func newOutcomes() *outcomes {
	return &outcomes{sources: map[string]int{}, cuts: map[string]int{}}
}

func (o *outcomes) cut(kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cuts[kind]++
}

func (o *outcomes) fail(what string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.bad) < 50 {
		o.bad = append(o.bad, what)
	}
}

// answered classifies an answer: commands are the ledger's to judge, but
// for 5xx; a read must be 200, or 404 for an order or timeline that a
// plain (not min_version) read may not see yet, or 504 for a min_version
// read whose wait overlapped a takeover (the read models pause then).
func (o *outcomes) answered(kind string, res *http.Response, body []byte, takeover bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case kind == "command" && res.StatusCode < 500:
	case res.StatusCode == http.StatusOK:
		o.sources[kind+" "+res.Header.Get("X-Chronicle-Source")]++
	case res.StatusCode == http.StatusNotFound && (kind == "order" || kind == "timeline"):
		o.notYet++
	case res.StatusCode == http.StatusGatewayTimeout && kind == "min_version" && takeover:
		o.paused++
	default:
		if len(o.bad) < 50 {
			o.bad = append(o.bad, fmt.Sprintf("%s %s: %s (source %q) %s", res.Request.Method, res.Request.URL,
				res.Status, res.Header.Get("X-Chronicle-Source"), bytes.TrimSpace(body)))
		}
	}
}

func (o *outcomes) count(source string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for k, v := range o.sources {
		if strings.HasSuffix(k, " "+source) {
			n += v
		}
	}
	return n
}

func (o *outcomes) check(t testing.TB) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range o.bad {
		t.Errorf("failed, and not cut by a kill: %s", b)
	}
	var primary, replica int
	for k, v := range o.sources {
		if strings.HasSuffix(k, " primary") {
			primary += v
		} else if strings.HasSuffix(k, " replica") {
			replica += v
		}
	}
	if primary == 0 || replica == 0 {
		t.Errorf("reads: %d from the primary, %d from the replica: want both", primary, replica)
	}
}

func (o *outcomes) summary() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return sortedCounts(o.sources) + fmt.Sprintf(" not_yet_404=%d min_version_504_in_takeover=%d", o.notYet, o.paused)
}

func (o *outcomes) cutSummary() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return sortedCounts(o.cuts)
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", strings.ReplaceAll(k, " ", "/"), m[k])
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// waitSource waits until n more reads were answered from source.
func (cl *cluster) waitSource(source string, n int, what string) {
	cl.t.Helper()
	from := cl.out.count(source)
	deadline := time.Now().Add(boundedWait)
	for cl.out.count(source) < from+n {
		if time.Now().After(deadline) {
			cl.t.Fatalf("%s: fewer than %d reads from the %s within %v", what, n, source, boundedWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// read sends reads through process i (the next one up while it is down)
// until ctx ends: of acknowledged orders, at their acknowledged version
// (min_version), their timelines, lists and status counts.
func (cl *cluster) read(ctx context.Context, i int, led *ledger, rnd *rand.Rand) {
	route := cl.route(i)
	for n := 0; ctx.Err() == nil; n++ {
		led.mu.Lock()
		var a ack
		if len(led.acks) > 0 {
			a = led.acks[rnd.IntN(len(led.acks))]
		}
		led.mu.Unlock()
		var path string
		switch {
		case a.order == "" || n%5 == 0:
			path = "/orders?limit=5"
		case n%5 == 1:
			path = fmt.Sprintf("/orders/%s?min_version=%d", a.order, a.version)
		case n%5 == 2:
			path = "/orders/" + a.order
		case n%5 == 3:
			path = "/orders/" + a.order + "/events"
		default:
			path = "/stats/order-status"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, route()+path, nil)
		if res, err := cl.http.Do(req); err == nil {
			res.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// feedReader follows GET /events, each page from the next process up: the
// feed must be the log, whichever process and source answers.
type feedReader struct {
	cl    *cluster
	after string
	ids   []string
	next  int
}

// run follows the feed until ctx ends or, with toEnd, until a page is empty.
func (f *feedReader) run(ctx context.Context, toEnd bool) {
	for ctx.Err() == nil {
		f.next++
		path := "/events?limit=200"
		if f.after != "" {
			path += "&after=" + url.QueryEscape(f.after)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.cl.route(f.next%clusterSize)()+path, nil)
		res, err := f.cl.http.Do(req)
		if err == nil {
			var page struct {
				Events []struct {
					EventID string `json:"event_id"`
				} `json:"events"`
				Next string `json:"next"`
			}
			ok := res.StatusCode == http.StatusOK && json.NewDecoder(res.Body).Decode(&page) == nil
			res.Body.Close()
			if ok {
				for _, e := range page.Events {
					f.ids = append(f.ids, e.EventID)
				}
				f.after = page.Next
				if len(page.Events) > 0 {
					continue
				}
				if toEnd {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// check reads the rest of the feed and compares it with the log.
func (f *feedReader) check(t testing.TB, store chronicle.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), boundedWait)
	defer cancel()
	var logIDs []string
	var from chronicle.Checkpoint
	for {
		page, err := store.ReadAll(ctx, from, chronicle.ReadAllOptions{Limit: 1000})
		if err != nil {
			t.Fatalf("read the log: %v", err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			logIDs = append(logIDs, e.ID)
		}
		from = page[len(page)-1].Checkpoint()
	}
	for len(f.ids) < len(logIDs) && ctx.Err() == nil {
		f.run(ctx, true)
	}
	if len(f.ids) != len(logIDs) {
		t.Errorf("feed: %d events, the log %d", len(f.ids), len(logIDs))
	}
	for i := range min(len(f.ids), len(logIDs)) {
		if f.ids[i] != logIDs[i] {
			t.Errorf("feed: event %d is %s, the log's is %s (skip, repeat or reorder)", i, f.ids[i], logIDs[i])
			return
		}
	}
}

// held returns the leases process i holds, by its GET /projections.
func (cl *cluster) held(i int) []string {
	cl.t.Helper()
	var out []string
	for name, nodes := range cl.holders() {
		for _, n := range nodes {
			if n == i {
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// holders returns, for every projection the processes up list, the
// processes that say they hold its lease.
func (cl *cluster) holders() map[string][]int {
	cl.t.Helper()
	out := map[string][]int{}
	for i := range clusterSize {
		cl.mu.Lock()
		s, down := cl.nodes[i], cl.down[i]
		cl.mu.Unlock()
		if s == nil || down {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var body struct{ Projections []projection.Status }
		err := s.getJSON(ctx, "/projections", &body)
		cancel()
		if err != nil {
			continue // asked again by the caller's loop
		}
		for _, st := range body.Projections {
			if _, ok := out[st.Name]; !ok {
				out[st.Name] = nil
			}
			if st.Held {
				out[st.Name] = append(out[st.Name], i)
			}
		}
		if _, ok := out[sealerLease]; !ok {
			out[sealerLease] = nil
		}
		if s.isSealing() {
			out[sealerLease] = append(out[sealerLease], i)
		}
	}
	return out
}

// sealerLease names the sealer's lease among the projections' ones: no
// route shows its holder, the holder's log does ("seal: sealing lease
// taken").
const sealerLease = "sealer"

// waitHolders waits until done holds of the holders and PostgreSQL's lock
// table shows exactly one holder of each of those leases, and returns
// their names. killed is the process just killed (-1 for none): none of
// its leases may still be held by it.
func (cl *cluster) waitHolders(killed int, done func(map[string][]int) bool) []string {
	cl.t.Helper()
	deadline := time.Now().Add(boundedWait)
	var h map[string][]int
	for {
		h = cl.holders()
		if done(h) {
			names := make([]string, 0, len(h))
			ok := true
			for n := range h {
				names = append(names, n)
				if locks := cl.lockHolders(n); locks != 1 {
					ok = false
				}
			}
			sort.Strings(names)
			if ok {
				return names
			}
		}
		if time.Now().After(deadline) {
			cl.t.Fatalf("leases not taken over within %v after process %d died: %v", boundedWait, killed, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockHolders counts the sessions holding lease name in pg_locks: a
// projection's bigint advisory key shows as classid, objid and objsubid 1;
// the sealer's two int4 keys (hashtext of 'chronicle/sealer' and of the
// schema) as classid, objid and objsubid 2.
func (cl *cluster) lockHolders(name string) int {
	cl.t.Helper()
	var n int
	var err error
	if name == sealerLease {
		err = cl.locks.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND objsubid = 2
			AND classid = hashtext('chronicle/sealer')::oid AND objid = hashtext($1)::oid`, cl.schema).Scan(&n)
	} else {
		key := uint64(projection.LockKey(cl.schema, name))
		err = cl.locks.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid::bigint = $1 AND objid::bigint = $2`,
			int64(key>>32), int64(key&0xffffffff)).Scan(&n)
	}
	if err != nil {
		cl.t.Fatalf("pg_locks: %v", err)
	}
	return n
}

// checkRelayedRevealed is checkRelayed for events with personal fields,
// which the relay publishes decrypted, as GET /events shows them.
func checkRelayedRevealed(t testing.TB, store storeurl.Store, srv *natstest.Server) int {
	t.Helper()
	relayCaughtUp(t, store)
	msgs, err := srv.ReadAll(relay.StreamName, boundedWait)
	if err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	ctx := context.Background()
	master, err := personal.ReadMasterKey(os.Getenv("CHRONICLE_MASTER_KEY_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := personal.NewKeyring(ctx, store, master)
	if err != nil {
		t.Fatal(err)
	}
	reveal := func(ctx context.Context, bodies [][]byte) ([][]byte, error) {
		return keys.RevealEach(ctx, bodies, true)
	}
	if err := natstest.CheckRelayedRevealed(ctx, store, order.NewRegistry(), relay.DefaultSubjectPrefix, msgs, reveal); err != nil {
		t.Fatalf("relayed: %v", err)
	}
	return len(msgs)
}

// waitSealed waits until the latest seal covers the whole log (the sealer
// went on after each takeover) and returns the seals and the longest time
// between two of them.
func waitSealed(t testing.TB, store storeurl.Store) (int, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), boundedWait)
	defer cancel()
	head, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var latest chronicle.Seal
	for ctx.Err() == nil {
		latest, err = store.LatestSeal(ctx)
		if err == nil && !latest.LastCheckpoint.Before(head.Checkpoint) {
			seals, err := store.Seals(ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var gap time.Duration
			for i := 1; i < len(seals); i++ {
				gap = max(gap, seals[i].SealedAt.Sub(seals[i-1].SealedAt))
			}
			return len(seals), gap
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the log is not sealed up to %+v within %v: latest seal %+v, %v", head.Checkpoint, boundedWait, latest, err)
	return 0, 0
}
