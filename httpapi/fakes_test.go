package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
)

// Fakes for what real stores cannot be made to do on demand: fail, panic,
// block. A nil embedded interface makes any call not overridden panic.

type fakeStore struct {
	chronicle.Store
	mu      sync.Mutex
	headErr error
}

func (f *fakeStore) setHeadErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.headErr = err
}

func (f *fakeStore) Head(context.Context) (chronicle.Head, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return chronicle.Head{}, f.headErr
}
func (f *fakeStore) EventByID(context.Context, string) (chronicle.RecordedEvent, error) {
	return chronicle.RecordedEvent{}, chronicle.ErrNotFound
}

type fakeOrders struct {
	Orders
	handle func() (aggregate.Result[order.State], error)
}

func (f *fakeOrders) Handle(context.Context, string, order.Command, ...aggregate.CommandOption) (aggregate.Result[order.State], error) {
	return f.handle()
}

type fakeViews struct{ Views }

type fakeProjections struct {
	mu       sync.Mutex
	statuses []projection.Status
	started  chan string   // receives the name when a rebuild starts
	release  chan struct{} // a rebuild returns when closed
}

func (f *fakeProjections) Status(context.Context) ([]projection.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]projection.Status(nil), f.statuses...), nil
}

func (f *fakeProjections) WaitForStream(ctx context.Context, _, _ string, _ int64) error {
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeProjections) WaitFor(ctx context.Context, _ string, _ chronicle.Checkpoint) error {
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeProjections) Rebuild(ctx context.Context, name string, _ func(projection.Progress)) error {
	f.started <- name
	select {
	case <-f.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newFakeProjections() *fakeProjections {
	return &fakeProjections{
		statuses: []projection.Status{{Name: orderview.SummariesName, Status: projection.StatusRunning}, {Name: orderview.HistoryName, Status: projection.StatusRunning}},
		started:  make(chan string, 1),
		release:  make(chan struct{}),
	}
}

// newFakeServer returns a server whose unset dependencies are fakes.
func newFakeServer(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Store == nil {
		o.Store = &fakeStore{}
	}
	if o.Orders == nil {
		o.Orders = &fakeOrders{}
	}
	if o.Views == nil {
		o.Views = fakeViews{}
	}
	if o.Projections == nil {
		o.Projections = newFakeProjections()
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestInternalErrorsStayInside(t *testing.T) {
	logs := &syncBuffer{}
	orders := &fakeOrders{handle: func() (aggregate.Result[order.State], error) {
		return aggregate.Result[order.State]{}, errors.New("pq: password authentication failed for user secret_admin")
	}}
	srv := newFakeServer(t, Options{Orders: orders, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	got := doHTTP(t, ts.URL, req{method: "POST", path: "/orders/o1/cancellation", body: `{"reason":"x"}`, header: map[string]string{"X-Request-Id": "req-42"}})
	p := isProblem(t, got, http.StatusInternalServerError)
	if strings.Contains(string(got.body), "secret_admin") || strings.Contains(string(got.body), "pq:") {
		t.Errorf("the client saw the internal error: %s", got.body)
	}
	if p["request_id"] != "req-42" || got.header.Get("X-Request-Id") != "req-42" {
		t.Errorf("request id: body %v, header %q", p["request_id"], got.header.Get("X-Request-Id"))
	}
	if l := logs.String(); !strings.Contains(l, "secret_admin") || !strings.Contains(l, "request_id=req-42") {
		t.Errorf("the log lacks the error under the request id:\n%s", l)
	}

	// An unusable X-Request-Id is replaced, not echoed.
	got = doHTTP(t, ts.URL, req{method: "GET", path: "/healthz", header: map[string]string{"X-Request-Id": "bad id\twith tab"}})
	if id := got.header.Get("X-Request-Id"); id == "" || strings.ContainsAny(id, " \t") {
		t.Errorf("X-Request-Id %q", id)
	}
}

func TestPanicIsA500(t *testing.T) {
	logs := &syncBuffer{}
	orders := &fakeOrders{handle: func() (aggregate.Result[order.State], error) { panic("boom: internal detail") }}
	srv := newFakeServer(t, Options{Orders: orders, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	got := doHTTP(t, ts.URL, req{method: "POST", path: "/orders/o1/cancellation", body: `{"reason":"x"}`})
	isProblem(t, got, http.StatusInternalServerError)
	if strings.Contains(string(got.body), "boom") {
		t.Errorf("the client saw the panic: %s", got.body)
	}
	if !strings.Contains(logs.String(), "boom: internal detail") {
		t.Error("the panic is not logged")
	}
	doHTTP(t, ts.URL, req{method: "GET", path: "/healthz"}) // still serving
}

func TestRetriesExhausted(t *testing.T) {
	orders := &fakeOrders{handle: func() (aggregate.Result[order.State], error) {
		return aggregate.Result[order.State]{}, &chronicle.ConflictError{Stream: "order-o1", Expected: chronicle.Exact(3), Actual: 4}
	}}
	ts := httptest.NewServer(newFakeServer(t, Options{Orders: orders}))
	defer ts.Close()
	got := doHTTP(t, ts.URL, req{method: "POST", path: "/orders/o1/cancellation", body: `{"reason":"x"}`})
	isProblem(t, got, http.StatusServiceUnavailable)
	if got.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

func TestReadyz(t *testing.T) {
	store := &fakeStore{}
	proj := newFakeProjections()
	ts := httptest.NewServer(newFakeServer(t, Options{Store: store, Projections: proj}))
	defer ts.Close()
	if got := doHTTP(t, ts.URL, req{method: "GET", path: "/readyz"}); got.status != 200 {
		t.Fatalf("ready: %d %s", got.status, got.body)
	}
	store.setHeadErr(errors.New("connection refused"))
	got := doHTTP(t, ts.URL, req{method: "GET", path: "/readyz"})
	if got.status != 503 || strings.Contains(string(got.body), "refused") {
		t.Errorf("store down: %d %s", got.status, got.body)
	}
	store.setHeadErr(nil)
	proj.mu.Lock()
	proj.statuses[1].Status = projection.StatusFailed
	proj.mu.Unlock()
	if got := doHTTP(t, ts.URL, req{method: "GET", path: "/readyz"}); got.status != 503 || !strings.Contains(string(got.body), orderview.HistoryName) {
		t.Errorf("projection failed: %d %s", got.status, got.body)
	}
	if got := doHTTP(t, ts.URL, req{method: "GET", path: "/healthz"}); got.status != 200 {
		t.Errorf("healthz: %d", got.status)
	}
}

func TestRebuildOneAtATime(t *testing.T) {
	proj := newFakeProjections()
	srv := newFakeServer(t, Options{Projections: proj})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	got := doHTTP(t, ts.URL, req{method: "POST", path: "/projections/order_summaries/rebuild"})
	if got.status != http.StatusAccepted || got.header.Get("Location") != "/projections" {
		t.Fatalf("rebuild: %d %s", got.status, got.body)
	}
	<-proj.started
	isProblem(t, doHTTP(t, ts.URL, req{method: "POST", path: "/projections/order_summaries/rebuild"}), http.StatusConflict)

	// Another projection may rebuild meanwhile; ?wait=true returns when done.
	done := make(chan resp, 1)
	go func() {
		r, err := tryHTTP(ts.URL, req{method: "POST", path: "/projections/order_status_history/rebuild?wait=true"})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	<-proj.started
	close(proj.release)
	if r := <-done; r.status != http.StatusOK {
		t.Errorf("rebuild with wait: %d %s", r.status, r.body)
	}
}

func TestMinVersionTimeout(t *testing.T) {
	srv := newFakeServer(t, Options{MinVersionWait: time.Millisecond})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	isProblem(t, doHTTP(t, ts.URL, req{method: "GET", path: "/orders/o1?min_version=3"}), http.StatusGatewayTimeout)
}
