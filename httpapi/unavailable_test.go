package httpapi

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/projection"
)

// sqlStateError stands for a driver error carrying a SQLSTATE (pgconn's
// *PgError has the same method).
type sqlStateError string

func (e sqlStateError) Error() string    { return "FATAL: (SQLSTATE " + string(e) + ")" }
func (e sqlStateError) SQLState() string { return string(e) }

// sqliteError stands for SQLite's driver error: a result code.
type sqliteError int

func (e sqliteError) Error() string { return fmt.Sprintf("sqlite error (%d)", int(e)) }
func (e sqliteError) Code() int     { return int(e) }

// A store that is down or restarting answers 503 with Retry-After, not
// 500: found by the torture suite (TestPostgresCrashUnderLoad).
func TestStoreUnavailableIs503(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"starting up", sqlStateError("57P03"), http.StatusServiceUnavailable},
		{"admin shutdown", sqlStateError("57P01"), http.StatusServiceUnavailable},
		{"connection failure", sqlStateError("08006"), http.StatusServiceUnavailable},
		{"disk full", sqlStateError("53100"), http.StatusServiceUnavailable},
		{"dial refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, http.StatusServiceUnavailable},
		{"connection cut", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), http.StatusServiceUnavailable},
		{"sqlite disk full", sqliteError(13), http.StatusServiceUnavailable},
		{"sqlite disk I/O error", sqliteError(778), http.StatusServiceUnavailable}, // SQLITE_IOERR_WRITE
		{"sqlite read-only", sqliteError(8), http.StatusServiceUnavailable},
		{"sqlite constraint", sqliteError(19), http.StatusInternalServerError},
		{"syntax error", sqlStateError("42601"), http.StatusInternalServerError},
		{"other", fmt.Errorf("boom"), http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orders := &fakeOrders{handle: func() (aggregate.Result[order.State], error) {
				return aggregate.Result[order.State]{}, fmt.Errorf("append order-o1: %w", tc.err)
			}}
			ts := httptest.NewServer(newFakeServer(t, Options{Orders: orders}))
			defer ts.Close()
			got := doHTTP(t, ts.URL, req{method: "POST", path: "/orders/o1/cancellation", body: `{"reason":"x"}`})
			isProblem(t, got, tc.want)
			if ra := got.header.Get("Retry-After"); (ra != "") != (tc.want == http.StatusServiceUnavailable) {
				t.Errorf("Retry-After %q with status %d", ra, tc.want)
			}
		})
	}
}

// rebuildFails is a projections fake whose rebuilds fail with err.
type rebuildFails struct {
	*fakeProjections
	err error
}

func (f rebuildFails) Rebuild(context.Context, string, func(projection.Progress)) error { return f.err }

// A rebuild (?wait=true) that fails because the store went away answers
// 503 like any other request, not 500: its cause must stay inspectable.
func TestRebuildStoreUnavailableIs503(t *testing.T) {
	proj := rebuildFails{newFakeProjections(), fmt.Errorf("projection order_summaries: rebuild: %w", sqlStateError("57P01"))}
	ts := httptest.NewServer(newFakeServer(t, Options{Projections: proj}))
	defer ts.Close()
	got := doHTTP(t, ts.URL, req{method: "POST", path: "/projections/order_summaries/rebuild?wait=true"})
	isProblem(t, got, http.StatusServiceUnavailable)
}
