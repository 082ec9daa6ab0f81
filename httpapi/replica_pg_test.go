package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/internal/pgcluster"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/personal"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/jackc/pgx/v5"
)

// The replica tests share one primary and one streaming standby of it,
// started on first use and stopped when the package's tests end. They run
// one after another: some stop or pause the standby, and put it back.
var replication struct {
	once             sync.Once
	primary, standby *pgcluster.Cluster
	err              error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if replication.standby != nil {
		replication.standby.Remove()
	}
	if replication.primary != nil {
		replication.primary.Remove()
	}
	os.Exit(code)
}

// clusterPair returns the shared primary and standby. It skips t when
// PostgreSQL's server programs are missing, except in CI.
func clusterPair(t *testing.T) (primary, standby *pgcluster.Cluster) {
	t.Helper()
	replication.once.Do(func() {
		replication.primary, replication.err = pgcluster.StartPrimary()
		if replication.err == nil {
			replication.standby, replication.err = replication.primary.StartStandby()
		}
	})
	if err := replication.err; err != nil {
		if errors.Is(err, pgcluster.ErrUnavailable) && os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	return replication.primary, replication.standby
}

// replicaEnv is a server on a primary store with one replica.
type replicaEnv struct {
	*env
	primary *pgstore.Store
	replica *pgstore.Replica
	standby *pgcluster.Cluster
	// admin is a superuser connection to the standby.
	admin *pgx.Conn
}

// newReplicaEnv starts a server on a fresh schema of the shared primary,
// with the shared standby as its replica, and waits until the replica is
// usable.
func newReplicaEnv(t *testing.T, popts pgstore.Options, ropts pgstore.ReplicaOptions, opts ...envOption) *replicaEnv {
	t.Helper()
	pc, sc := clusterPair(t)
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	popts.Schema = "t_replica_" + hex.EncodeToString(b[:])
	primary, err := pgstore.Open(ctx, pc.URL(), popts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = primary.Close() })
	if ropts.CheckInterval == 0 {
		ropts.CheckInterval = 50 * time.Millisecond
	}
	replica, err := pgstore.OpenReplica(ctx, sc.URL(), primary, ropts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Close() })
	admin, err := pgx.Connect(ctx, sc.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	reg := order.NewRegistry()
	e := newEnv(t, primary, append(opts, func(o *Options) {
		o.Replicas = []Replica{{
			Store:  replica,
			Orders: aggregate.New(replica, nil, reg, order.Definition()),
			Views:  orderview.NewReader(replica),
			Health: replica,
		}}
	})...)
	re := &replicaEnv{env: e, primary: primary, replica: replica, standby: sc, admin: admin}
	re.waitUsable(true)
	re.waitReplayed() // the read models' tables too
	return re
}

// waitReplayed waits until the standby has replayed everything the
// primary has flushed now.
func (e *replicaEnv) waitReplayed() {
	e.t.Helper()
	ctx := context.Background()
	var flushed string
	if err := e.primary.SQLDB().QueryRowContext(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&flushed); err != nil {
		e.t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var done bool
		if err := e.admin.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", flushed).Scan(&done); err != nil {
			e.t.Fatal(err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the standby did not replay up to %s in 30 s", flushed)
		}
	}
}

// waitUsable waits until the replica is (or is not) usable.
func (e *replicaEnv) waitUsable(want bool) {
	e.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); e.replica.Usable() != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			lag, ok := e.replica.Lag()
			e.t.Fatalf("replica usable = %v after 60 s, want %v (lag %v, known %v)", !want, want, lag, ok)
		}
	}
}

// source sends r and returns the response and where it was served.
func (e *replicaEnv) source(r req, want int) (resp, string) {
	e.t.Helper()
	got := e.mustDo(r, want)
	return got, got.header.Get("X-Chronicle-Source")
}

// setReplay pauses or resumes the standby's replay and waits until it is so.
func (e *replicaEnv) setReplay(pause bool) {
	e.t.Helper()
	ctx := context.Background()
	fn, state := "pg_wal_replay_resume", "not paused"
	if pause {
		fn, state = "pg_wal_replay_pause", "paused"
	}
	if _, err := e.admin.Exec(ctx, "SELECT "+fn+"()"); err != nil {
		e.t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var got string
		if err := e.admin.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&got); err != nil {
			e.t.Fatal(err)
		}
		if got == state {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("replay state %q, want %q", got, state)
		}
	}
}

// readsBySource returns chronicle_reads_total by source.
func readsBySource(t *testing.T, base string) map[string]int {
	t.Helper()
	got := doHTTP(t, base, req{method: "GET", path: "/metrics"})
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(got.body))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		l := sc.Text()
		for _, src := range []string{"primary", "replica"} {
			if v, ok := strings.CutPrefix(l, `chronicle_reads_total{source="`+src+`"} `); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("metric line %q: %v", l, err)
				}
				out[src] = n
			}
		}
	}
	return out
}

// TestReplicaServesReads: every kind of read is answered by the standby
// (X-Chronicle-Source: replica, counted in chronicle_reads_total), and
// commands by the primary.
func TestReplicaServesReads(t *testing.T) {
	e := newReplicaEnv(t, pgstore.Options{}, pgstore.ReplicaOptions{})
	created := e.mustDo(req{method: "POST", path: "/orders", body: `{"order_id":"ord_r1","customer_id":"cust_1","items":[{"sku":"SKU-1","quantity":2,"unit_price":1000}]}`}, http.StatusCreated)
	if src := created.header.Get("X-Chronicle-Source"); src != "primary" {
		t.Errorf("command answered with X-Chronicle-Source %q, want primary", src)
	}
	e.mustDo(req{method: "POST", path: "/orders/ord_r1/payments", body: `{"method":"card","amount":2000}`}, http.StatusOK)
	before := readsBySource(t, e.ts.URL)

	got, src := e.source(req{method: "GET", path: "/orders/ord_r1?min_version=2"}, http.StatusOK)
	if src != "replica" || got.state(t).Version != 2 {
		t.Fatalf("GET ?min_version=2: source %q, version %d; want replica, 2", src, got.state(t).Version)
	}
	reads := []string{
		"/orders/ord_r1",
		"/orders/ord_r1?version=1",
		"/orders/ord_r1?as_of=" + time.Now().UTC().Add(time.Second).Format(time.RFC3339Nano),
		"/orders/ord_r1/events",
		"/orders?customer_id=cust_1",
		"/stats/order-status",
		"/events",
	}
	for _, path := range reads {
		got, src := e.source(req{method: "GET", path: path}, http.StatusOK)
		if src != "replica" {
			t.Errorf("GET %s: X-Chronicle-Source %q, want replica\n%s", path, src, got.body)
		}
	}
	// The replica's read models: the list shows the paid order.
	if body := string(e.mustDo(req{method: "GET", path: "/orders?status=paid"}, 200).body); !strings.Contains(body, "ord_r1") {
		t.Errorf("GET /orders?status=paid on the replica lacks ord_r1: %s", body)
	}
	after := readsBySource(t, e.ts.URL)
	if n := after["replica"] - before["replica"]; n != len(reads)+2 {
		t.Errorf("chronicle_reads_total{source=replica} rose by %d, want %d", n, len(reads)+2)
	}
	if after["primary"] != before["primary"] {
		t.Errorf("chronicle_reads_total{source=primary} rose from %d to %d", before["primary"], after["primary"])
	}
	// A write on the replica's store is refused before reaching PostgreSQL.
	if _, err := e.replica.Append(context.Background(), "x-1", chronicle.Any, []chronicle.Event{{Type: "X", Data: []byte(`{}`)}}); !errors.Is(err, pgstore.ErrReadOnly) {
		t.Errorf("Append on a replica: %v, want ErrReadOnly", err)
	}
	if err := e.replica.SaveSnapshot(context.Background(), chronicle.Snapshot{StreamID: "x-1", Version: 1, Data: []byte(`{}`)}); !errors.Is(err, pgstore.ErrReadOnly) {
		t.Errorf("SaveSnapshot on a replica: %v, want ErrReadOnly", err)
	}
}

// TestReplicaRevealsPersonalData: a read served by the replica shows the
// personal fields in the clear, as the primary does, and "[erased]" as soon
// as the customer is erased (the keys are asked of the primary).
func TestReplicaRevealsPersonalData(t *testing.T) {
	var keys *personal.Keyring
	e := newReplicaEnv(t, pgstore.Options{}, pgstore.ReplicaOptions{}, func(o *Options) {
		var err error
		master, _ := personal.ParseMasterKey(personal.NewMasterKey())
		if keys, err = personal.NewKeyring(context.Background(), o.Store.(chronicle.KeyStore), master); err != nil {
			t.Fatal(err)
		}
		o.Personal = keys
		o.Orders = aggregate.New(personal.NewStore(o.Store, keys, order.PersonalData()), o.Store.(chronicle.SnapshotStore), order.NewRegistry(), order.Definition())
	})
	e.mustDo(req{method: "POST", path: "/orders", body: `{"order_id":"ord_pd","customer_id":"cust_pd","items":[{"sku":"SKU-1","quantity":1,"unit_price":100}]}`}, http.StatusCreated)
	e.mustDo(req{method: "PUT", path: "/orders/ord_pd/shipping-address", body: `{"name":"Philippa Replicant","line1":"5 Standby Road","city":"Walton","postal_code":"W1","country":"GB"}`}, http.StatusOK)
	reads := []string{"/orders/ord_pd?min_version=2", "/orders/ord_pd/events", "/orders/ord_pd/events?format=text", "/events"}
	check := func(want, not string) {
		t.Helper()
		for _, path := range reads {
			got, src := e.source(req{method: "GET", path: path}, http.StatusOK)
			body := string(got.body)
			if src != "replica" || !strings.Contains(body, want) || strings.Contains(body, not) || strings.Contains(body, personal.Prefix) {
				t.Errorf("GET %s: source %q, want replica showing %q, not %q:\n%s", path, src, want, not, body)
			}
		}
	}
	check("Philippa Replicant", personal.Erased)
	e.mustDo(req{method: "DELETE", path: "/customers/cust_pd/personal-data"}, http.StatusOK)
	check(personal.Erased, "Philippa")
}

// TestReplicaIdlePrimaryNoLag: a paused standby of a primary that writes
// nothing has nothing to replay: it is not behind, however long the
// primary stays idle (a lag measured from the last replayed commit's time
// would grow and wrongly send reads to the primary).
func TestReplicaIdlePrimaryNoLag(t *testing.T) {
	e := newReplicaEnv(t, pgstore.Options{}, pgstore.ReplicaOptions{MaxLag: 200 * time.Millisecond})
	e.create("ord_idle")
	t.Cleanup(func() { e.setReplay(false) })
	lsn := func(conn interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}, fn string) string {
		var v string
		if err := conn.QueryRowContext(context.Background(), "SELECT "+fn+"()::text").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Background work (the projections' last transaction, a NOTIFY,
	// autovacuum) may write WAL now and then: retry until the standby is
	// paused having replayed all of it, and a window of 4 max lags passes
	// with no more.
	for try := 0; ; try++ {
		if try == 20 {
			t.Skip("the primary never stayed idle for 800ms")
		}
		e.setReplay(false)
		e.waitReplayed()
		e.setReplay(true)
		before := lsn(e.primary.SQLDB(), "pg_current_wal_flush_lsn")
		if got := lsn(e.replica.SQLDB(), "pg_last_wal_replay_lsn"); got != before {
			t.Logf("try %d: replayed %s, flushed %s", try, got, before)
			continue
		}
		time.Sleep(800 * time.Millisecond)
		usable := e.replica.Usable()
		if after := lsn(e.primary.SQLDB(), "pg_current_wal_flush_lsn"); after != before {
			t.Logf("try %d: the primary wrote WAL (%s to %s)", try, before, after)
			continue
		}
		if !usable {
			lag, ok := e.replica.Lag()
			t.Fatalf("paused standby of an idle primary is not usable (lag %v, known %v)", lag, ok)
		}
		break
	}
	if _, src := e.source(req{method: "GET", path: "/orders/ord_idle"}, 200); src != "replica" {
		t.Errorf("source %q, want replica", src)
	}
}

// TestReplicaMinVersionWaitsForReplay: ?min_version= on a replica waits
// until the standby has replayed that version, and then answers from it.
// Without the wait the replica would not have the order yet, and the
// primary would answer.
func TestReplicaMinVersionWaitsForReplay(t *testing.T) {
	// A lag bound the paused standby stays within, so it keeps the read.
	e := newReplicaEnv(t, pgstore.Options{}, pgstore.ReplicaOptions{MaxLag: time.Minute})
	e.setReplay(true)
	t.Cleanup(func() { e.setReplay(false) })
	e.create("ord_mv1")

	type answer struct {
		r   resp
		err error
	}
	done := make(chan answer, 1)
	go func() {
		r, err := tryHTTP(e.ts.URL, req{method: "GET", path: "/orders/ord_mv1?min_version=1"})
		done <- answer{r, err}
	}()
	// The answer must wait for the replay: give it time to go wrong.
	select {
	case a := <-done:
		t.Fatalf("answered while the standby's replay was paused: %v, %d %s, source %q", a.err, a.r.status, a.r.body, a.r.header.Get("X-Chronicle-Source"))
	case <-time.After(300 * time.Millisecond):
	}
	e.setReplay(false)
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.r.status != http.StatusOK || a.r.header.Get("X-Chronicle-Source") != "replica" || a.r.state(t).Version != 1 {
		t.Fatalf("after replay: %d, source %q, %s; want 200 from the replica at version 1", a.r.status, a.r.header.Get("X-Chronicle-Source"), a.r.body)
	}
}

// TestReplicaMinVersionDeadline: a version the standby does not replay
// within the wait is 504, as on the primary; one the primary's read model
// has by then is answered by the primary.
func TestReplicaMinVersionDeadline(t *testing.T) {
	e := newReplicaEnv(t, pgstore.Options{}, pgstore.ReplicaOptions{MaxLag: time.Minute},
		func(o *Options) { o.MinVersionWait = 300 * time.Millisecond })
	e.create("ord_mv2")
	isProblem(t, e.do(req{method: "GET", path: "/orders/ord_mv2?min_version=9"}), http.StatusGatewayTimeout)

	e.setReplay(true)
	t.Cleanup(func() { e.setReplay(false) })
	e.mustDo(req{method: "POST", path: "/orders/ord_mv2/payments", body: `{"method":"card","amount":2000}`}, http.StatusOK)
	e.waitVersion("ord_mv2", 2)
	got, src := e.source(req{method: "GET", path: "/orders/ord_mv2?min_version=2"}, http.StatusOK)
	if src != "primary" || got.state(t).Version != 2 {
		t.Fatalf("standby paused: source %q, version %d; want the primary's version 2", src, got.state(t).Version)
	}
}

// TestReplicaLagSendsReadsToPrimary: a standby whose replay is paused
// while the primary writes falls behind by more than the max lag: reads
// go to the primary; resumed, it catches up and takes them again.
func TestReplicaLagSendsReadsToPrimary(t *testing.T) {
	e := newReplicaEnv(t, pgstore.Options{}, pgstore.ReplicaOptions{MaxLag: 500 * time.Millisecond})
	e.create("ord_lag")
	if _, src := e.source(req{method: "GET", path: "/orders/ord_lag?min_version=1"}, 200); src != "replica" {
		t.Fatalf("before the pause: source %q, want replica", src)
	}
	e.setReplay(true)
	t.Cleanup(func() { e.setReplay(false) })
	// Write until the lag shows: an idle primary leaves nothing to replay.
	for i := 0; ; i++ {
		e.mustDo(req{method: "POST", path: "/orders/ord_lag/items", body: `{"sku":"LAG","quantity":1,"unit_price":100}`}, 200)
		if _, src := e.source(req{method: "GET", path: "/orders/ord_lag"}, 200); src == "primary" {
			break
		}
		if i > 2000 {
			t.Fatal("reads stayed on the paused standby")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if lag, ok := e.replica.Lag(); !ok || lag < 500*time.Millisecond {
		t.Errorf("replica lag %v (known %v) while it serves no reads, want >= 500ms", lag, ok)
	}
	for _, path := range []string{"/orders/ord_lag", "/orders/ord_lag/events", "/events", "/stats/order-status"} {
		if _, src := e.source(req{method: "GET", path: path}, 200); src != "primary" {
			t.Errorf("GET %s while the standby lags: source %q, want primary", path, src)
		}
	}
	e.setReplay(false)
	e.waitUsable(true)
	if _, src := e.source(req{method: "GET", path: "/orders/ord_lag"}, 200); src != "replica" {
		t.Errorf("after the resume: source %q, want replica", src)
	}
}

// TestReplicaStoppedUnderLoad: the standby stopped and started again while
// clients read and write costs no failed request; reads move to the
// primary and come back.
func TestReplicaStoppedUnderLoad(t *testing.T) {
	e := newReplicaEnv(t, pgstore.Options{}, pgstore.ReplicaOptions{})
	for i := range 10 {
		e.create(fmt.Sprintf("ord_load%d", i))
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		sources  = map[string]int{}
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("ord_load%d", (w+i)%10)
				var r req
				switch i % 5 {
				case 0:
					r = req{method: "POST", path: "/orders/" + id + "/items", body: fmt.Sprintf(`{"sku":"S-%d","quantity":1,"unit_price":1}`, w)}
				case 1:
					r = req{method: "GET", path: "/orders?limit=5"}
				case 2:
					r = req{method: "GET", path: "/orders/" + id + "/events"}
				case 3:
					r = req{method: "GET", path: "/events?limit=50"}
				default:
					r = req{method: "GET", path: "/orders/" + id}
				}
				got, err := tryHTTP(e.ts.URL, r)
				mu.Lock()
				if err != nil || got.status >= 300 {
					failures = append(failures, fmt.Sprintf("%s %s: %v %d %s", r.method, r.path, err, got.status, got.body))
				} else if r.method == "GET" {
					sources[got.header.Get("X-Chronicle-Source")]++
				}
				mu.Unlock()
			}
		})
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	count := func(src string) int {
		mu.Lock()
		defer mu.Unlock()
		return sources[src]
	}
	waitReads := func(src string, n int) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); count(src) < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d reads from the %s in 60 s", n, src)
			}
		}
	}
	waitReads("replica", 20)
	if err := e.standby.Stop(false); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = e.standby.Start()
		}
	})
	e.waitUsable(false)
	waitReads("primary", count("primary")+50)
	if err := e.standby.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	e.waitUsable(true)
	waitReads("replica", count("replica")+50)
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d requests failed while the standby stopped and started; first: %s", len(failures), failures[0])
	}
	t.Logf("reads by source: %v", sources)
}

// TestReplicaFeedNeverSkips: a transaction held open on the primary while
// later ones commit holds the feed back on the standby too (its snapshot
// counts the primary's open transaction as running), so a reader of the
// standby never skips the held event; time travel on the standby shows
// the held version only once it committed.
func TestReplicaFeedNeverSkips(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan error)
	var holding atomic.Bool
	e := newReplicaEnv(t, pgstore.Options{BeforeCommit: func(stream string, _ []chronicle.Event) error {
		if stream != "order-ord_held" || !holding.CompareAndSwap(true, false) {
			return nil
		}
		close(entered)
		return <-release
	}}, pgstore.ReplicaOptions{MaxLag: time.Minute})
	ctx := context.Background()
	e.create("ord_held")
	e.mustDo(req{method: "GET", path: "/orders/ord_held?min_version=1"}, 200)

	// Hold the order's second event in an open transaction.
	holding.Store(true)
	held := make(chan resp, 1)
	go func() {
		r, err := tryHTTP(e.ts.URL, req{method: "POST", path: "/orders/ord_held/payments", body: `{"method":"card","amount":2000}`})
		if err != nil {
			r.body = []byte(err.Error())
		}
		held <- r
	}()
	<-entered
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	// Later transactions commit, and the standby replays them.
	later, err := e.primary.Append(ctx, "later-1", chronicle.NoStream, []chronicle.Event{{Type: "Later", Data: []byte(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := e.replica.SQLDB().QueryRowContext(ctx, "SELECT count(*) FROM events WHERE stream_id = 'later-1'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the standby did not replay the later commit")
		}
	}
	// The feed on the standby: the later event is committed and replayed,
	// yet not returned while the held one may still commit before it.
	evs, err := e.replica.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.StreamID == "later-1" {
			t.Fatalf("ReadAll on the standby returned position %d of a later transaction while an earlier one is open: a reader would skip the held event", later.FirstPosition)
		}
	}
	got, src := e.source(req{method: "GET", path: "/events"}, 200)
	if src != "replica" || strings.Contains(string(got.body), "later-1") {
		t.Fatalf("GET /events from %s shows the later event while an earlier transaction is open:\n%s", src, got.body)
	}
	next := got.json(t)["next"].(string)
	head, err := e.replica.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head.Committed < later.FirstPosition || head.HeldSince.IsZero() {
		t.Errorf("standby Head %+v: want the later event counted as committed and held back", head)
	}
	// Time travel on the standby: version 2 does not exist yet anywhere.
	isProblem(t, e.do(req{method: "GET", path: "/orders/ord_held?version=2"}), http.StatusNotFound)

	released = true
	close(release)
	if r := <-held; r.status != http.StatusOK {
		t.Fatalf("held command: %d %s", r.status, r.body)
	}
	// Resuming from where it was, the standby's feed returns the held
	// event, then the later one.
	var seen []string
	for deadline := time.Now().Add(30 * time.Second); len(seen) < 2; time.Sleep(10 * time.Millisecond) {
		got, src := e.source(req{method: "GET", path: "/events?after=" + next}, 200)
		if src != "replica" {
			t.Fatalf("GET /events: source %q", src)
		}
		var page struct {
			Events []struct {
				StreamID string `json:"stream_id"`
				Version  int64  `json:"version"`
			} `json:"events"`
		}
		if err := json.Unmarshal(got.body, &page); err != nil {
			t.Fatal(err)
		}
		seen = seen[:0]
		for _, ev := range page.Events {
			seen = append(seen, fmt.Sprintf("%s v%d", ev.StreamID, ev.Version))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby's feed after %s shows %v, want the held event and the later one", next, seen)
		}
	}
	if want := []string{"order-ord_held v2", "later-1 v1"}; strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("standby feed after the commit: %v, want %v", seen, want)
	}
	if got, src := e.source(req{method: "GET", path: "/orders/ord_held?version=2"}, 200); src != "replica" || got.state(t).Status != order.StatusPaid {
		t.Errorf("time travel to version 2 on the standby: source %q, %s", src, got.body)
	}
}

// TestReplicaCutOffFromPrimary: a standby that stops receiving WAL (its
// connection to the primary cut) has replayed all it received, so its own
// view says it is not behind; measured against the primary's WAL it is,
// and reads go to the primary until it follows again.
func TestReplicaCutOffFromPrimary(t *testing.T) {
	e := newReplicaEnv(t, pgstore.Options{}, pgstore.ReplicaOptions{MaxLag: 500 * time.Millisecond})
	ctx := context.Background()
	var conninfo string
	if err := e.admin.QueryRow(ctx, "SHOW primary_conninfo").Scan(&conninfo); err != nil {
		t.Fatal(err)
	}
	setConninfo := func(v string) {
		t.Helper()
		if _, err := e.admin.Exec(ctx, "ALTER SYSTEM SET primary_conninfo = '"+strings.ReplaceAll(v, "'", "''")+"'"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
	}
	setConninfo("")
	restored := false
	t.Cleanup(func() {
		if !restored {
			setConninfo(conninfo)
		}
	})
	// Wait until the WAL receiver is gone.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := e.admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_wal_receiver").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the WAL receiver still runs 30 s after primary_conninfo was emptied")
		}
	}
	e.create("ord_cut")
	for i := 0; ; i++ {
		e.mustDo(req{method: "POST", path: "/orders/ord_cut/items", body: `{"sku":"CUT","quantity":1,"unit_price":100}`}, 200)
		var caughtUp bool
		if err := e.admin.QueryRow(ctx, "SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()").Scan(&caughtUp); err != nil {
			t.Fatal(err)
		}
		if !caughtUp {
			t.Fatal("a standby cut off from its primary shows received WAL not replayed")
		}
		if _, src := e.source(req{method: "GET", path: "/orders?limit=1"}, 200); src == "primary" {
			break
		}
		if i > 2000 {
			t.Fatal("reads stayed on the standby cut off from the primary")
		}
		time.Sleep(10 * time.Millisecond)
	}
	setConninfo(conninfo)
	restored = true
	e.waitUsable(true)
	if got, src := e.source(req{method: "GET", path: "/orders/ord_cut?min_version=2"}, 200); src != "replica" {
		t.Errorf("after reconnecting: source %q, want replica\n%s", src, got.body)
	}
}

// TestReplicaFeedStream: an event stream served by a standby is woken by
// the primary's notifications (a standby cannot LISTEN), and carries on
// from the primary, missing nothing, when the standby stops.
func TestReplicaFeedStream(t *testing.T) {
	// No poll: only notifications and their chase deliver.
	e := newReplicaEnv(t, pgstore.Options{}, pgstore.ReplicaOptions{},
		func(o *Options) { o.FeedPollInterval, o.FeedHeartbeat = time.Hour, time.Hour })
	s := openStream(t, e.ts.URL, "/events", nil)
	if src := s.res.Header.Get("X-Chronicle-Source"); src != "replica" {
		t.Fatalf("stream served by %q, want replica", src)
	}
	isData := func(id string) func(string) bool {
		return func(l string) bool {
			return strings.HasPrefix(l, "data: ") && strings.Contains(l, `"stream_id":"order-`+id+`"`)
		}
	}
	e.create("ord_s1")
	s.waitLine(t, isData("ord_s1"))

	if err := e.standby.Stop(false); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = e.standby.Start()
		}
	})
	e.create("ord_s2")
	e.create("ord_s3")
	s.waitLine(t, isData("ord_s2"))
	s.waitLine(t, isData("ord_s3"))
	if err := e.standby.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	e.waitUsable(true)
}
