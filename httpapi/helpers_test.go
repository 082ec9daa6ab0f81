package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/sqlitestore"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// backend is a store of either kind.
type backend = testbackends.Backend

// reopener opens a store, and the same store again after it was closed:
// what a server restart sees.
type reopener struct {
	name string
	open func(t *testing.T) func() backend
}

// reopeners returns one reopener per backend, SQLite first. The PostgreSQL
// one skips the test when CHRONICLE_TEST_POSTGRES is unset.
func reopeners() []reopener {
	return []reopener{
		{"sqlite", func(t *testing.T) func() backend {
			path := filepath.Join(t.TempDir(), "chronicle.db")
			return func() backend {
				s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
				if err != nil {
					t.Fatalf("sqlitestore.Open: %v", err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
		}},
		{"postgres", func(t *testing.T) func() backend {
			url := testbackends.PostgresURL(t)
			schema := freshSchema(t, url)
			return func() backend {
				s, err := pgstore.Open(context.Background(), url, pgstore.Options{Schema: schema})
				if err != nil {
					t.Fatalf("pgstore.Open: %v", err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
		}},
	}
}

// forEachBackend runs f per backend with a fresh store.
func forEachBackend(t *testing.T, f func(t *testing.T, open func() backend)) {
	for _, ro := range reopeners() {
		t.Run(ro.name, func(t *testing.T) { f(t, ro.open(t)) })
	}
}

func freshSchema(t *testing.T, url string) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "t_http_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// env is a server over real HTTP on one store, with its projections running.
type env struct {
	t      *testing.T
	store  backend
	server *Server
	ts     *httptest.Server
	runner *projection.Runner
	logs   *syncBuffer
	stopFn func()
}

// stop shuts the server and its projections down (a restart's first half).
func (e *env) stop() { e.stopFn() }

type envOption func(*Options)

// newEnv starts a server on store. It stops when the test ends (before the
// store closes: cleanups run last-registered first), or at stop.
func newEnv(t *testing.T, store backend, opts ...envOption) *env {
	t.Helper()
	return newEnvRunner(t, store, projection.Options{}, opts...)
}

// newEnvRunner is newEnv with the projections' options; their Upcaster, when
// set, stands in front of the order registry.
func newEnvRunner(t *testing.T, store backend, popts projection.Options, opts ...envOption) *env {
	t.Helper()
	reg := order.NewRegistry()
	if up := popts.Upcaster; up != nil {
		popts.Upcaster = projection.UpcasterFunc(func(e chronicle.RecordedEvent) (chronicle.RecordedEvent, error) {
			u, err := up.Upcast(e)
			if err != nil {
				return u, err
			}
			return reg.Upcast(u)
		})
	} else {
		popts.Upcaster = reg
	}
	runner, err := projection.New(store, popts, orderview.Projections()...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := runner.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := runner.Run(ctx); err != nil {
			t.Errorf("runner: %v", err)
		}
	})
	logs := &syncBuffer{}
	metrics := prometheus.NewRegistry()
	appends, err := NewAppendMetrics(metrics)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Store:       store,
		Upcaster:    reg,
		Orders:      aggregate.New(appends.Wrap(store), store, reg, order.Definition(), aggregate.WithSnapshotEvery(5)),
		Registry:    metrics,
		Views:       orderview.NewReader(store),
		Projections: runner,
		Logger:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, server: srv, ts: httptest.NewServer(srv), runner: runner, logs: logs}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.EndStreams() // the test server waits for requests to end
			e.ts.Close()
			_ = srv.Close()
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	e.stopFn = stop
	return e
}

// resp is a response, read in full.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func (r resp) state(t *testing.T) order.State {
	t.Helper()
	var s order.State
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("body is not an order: %v\n%s", err, r.body)
	}
	return s
}

// req is a request to send: headers as "Name: value" pairs.
type req struct {
	method, path string
	body         string
	header       map[string]string
}

func (e *env) do(r req) resp {
	e.t.Helper()
	return doHTTP(e.t, e.ts.URL, r)
}

func doHTTP(t testing.TB, base string, r req) resp {
	t.Helper()
	got, err := tryHTTP(base, r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// tryHTTP sends r; safe in any goroutine.
func tryHTTP(base string, r req) (resp, error) {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, base+r.path, body)
	if err != nil {
		return resp{}, err
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		return resp{}, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, fmt.Errorf("%s %s: read body: %w", r.method, r.path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}, nil
}

// mustDo sends r and fails unless the status is want.
func (e *env) mustDo(r req, want int) resp {
	e.t.Helper()
	got := e.do(r)
	if got.status != want {
		e.t.Fatalf("%s %s: status %d, want %d\n%s", r.method, r.path, got.status, want, got.body)
	}
	return got
}

// create makes order id with one item (total 2*1000) and returns its state.
func (e *env) create(id string) order.State {
	e.t.Helper()
	body := `{"order_id":"` + id + `","customer_id":"cust_1","items":[{"sku":"SKU-1","quantity":2,"unit_price":1000}]}`
	return e.mustDo(req{method: "POST", path: "/orders", body: body}, http.StatusCreated).state(e.t)
}

// logSize returns how many events the store holds and the highest
// position, to prove a request wrote nothing. It counts in SQL rather than
// with Head: on PostgreSQL Head may trail commits that are already durable
// (it waits for older transactions), so it can move between two reads
// without any new write.
func (e *env) logSize() [2]int64 {
	e.t.Helper()
	var n, max int64
	err := e.store.SQLDB().QueryRowContext(context.Background(), "SELECT count(*), coalesce(max(position), 0) FROM events").Scan(&n, &max)
	if err != nil {
		e.t.Fatal(err)
	}
	return [2]int64{n, max}
}

// waitVersion blocks until the read model has order id at version v.
func (e *env) waitVersion(id string, v int64) {
	e.t.Helper()
	if err := e.runner.WaitForStream(context.Background(), orderview.SummariesName, "order-"+id, v); err != nil {
		e.t.Fatal(err)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// isProblem fails unless r is a problem+json body with status want.
func isProblem(t *testing.T, r resp, want int) map[string]any {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d\n%s", r.status, want, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json\n%s", ct, r.body)
	}
	m := r.json(t)
	for _, k := range []string{"type", "title", "status", "detail"} {
		if _, ok := m[k]; !ok {
			t.Errorf("problem lacks %q: %s", k, r.body)
		}
	}
	if st, _ := m["status"].(float64); int(st) != want {
		t.Errorf("problem status %v, want %d", m["status"], want)
	}
	return m
}
