package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/timeline"
)

// Views answers queries from the order read models; *orderview.Reader is
// one.
type Views interface {
	// Get errors: orderview.ErrNotFound.
	Get(ctx context.Context, orderID string) (order.State, error)
	// List errors: orderview.ErrBadCursor.
	List(ctx context.Context, f orderview.Filter) (orderview.Page, error)
	StatusCounts(ctx context.Context, at time.Time) (map[order.Status]int64, error)
}

// DefaultMaxMinVersionWaiters is how many ?min_version= requests may wait
// at once when Options leaves it 0.
const DefaultMaxMinVersionWaiters = 1000

// Upcaster brings stored events to their current shape; *upcast.Registry
// is one.
type Upcaster = timeline.Upcaster

// getOrder answers GET /orders/{id}: the read model, optionally after
// waiting for a version (?min_version=), or the state rebuilt from the log
// at a version (?version=) or time (?as_of=). On a replica ?min_version=
// waits for the replica's read model (waitReplica).
func (s *Server) getOrder(w http.ResponseWriter, r *http.Request, src *source) error {
	id, err := pathOrderID(r)
	if err != nil {
		return mapDomainError(err)
	}
	q := r.URL.Query()
	given := 0
	for _, p := range []string{"min_version", "version", "as_of"} {
		if q.Has(p) {
			given++
		}
	}
	if given > 1 {
		return badRequest("give at most one of min_version, version and as_of")
	}
	ctx := r.Context()
	switch {
	case q.Has("version"):
		v, err := intParam(r, "version", 1)
		if err != nil {
			return err
		}
		l, err := src.orders.LoadVersion(ctx, id, v)
		if err != nil {
			return s.timeTravelError(ctx, id, err, "order "+id+" has no version "+itoa(v))
		}
		return writeOrder(w, l.State)
	case q.Has("as_of"):
		t, err := timeParam(r, "as_of")
		if err != nil {
			return err
		}
		l, err := src.orders.LoadAsOf(ctx, id, t)
		if err != nil {
			return s.timeTravelError(ctx, id, err, "order "+id+" did not exist at "+t.Format(time.RFC3339Nano))
		}
		return writeOrder(w, l.State)
	case q.Has("min_version"):
		v, err := intParam(r, "min_version", 0)
		if err != nil {
			return err
		}
		// Each waiter holds a connection and a goroutine for up to
		// MinVersionWait: bound them.
		if n := s.minVersionWaiters.Add(1); n > int64(s.opts.MaxMinVersionWaiters) {
			s.minVersionWaiters.Add(-1)
			e := newError(http.StatusServiceUnavailable, typeUnavailable,
				"too many requests are waiting for the read model; retry shortly")
			e.header = http.Header{"Retry-After": {"1"}}
			return e
		}
		if src.replica != nil {
			st, err := s.waitReplica(ctx, w, src, id, v, time.Now().Add(s.opts.MinVersionWait))
			s.minVersionWaiters.Add(-1)
			if err != nil {
				return err
			}
			return writeOrder(w, st)
		}
		stream, _ := order.StreamID(id) // id is valid
		wctx, cancel := context.WithTimeout(ctx, s.opts.MinVersionWait)
		err = s.opts.Projections.WaitForStream(wctx, orderview.SummariesName, stream, v)
		cancel()
		s.minVersionWaiters.Add(-1)
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return newError(http.StatusGatewayTimeout, typeTimeout,
					"the read model did not reach version "+itoa(v)+" of order "+id+" within "+s.opts.MinVersionWait.String())
			}
			return err
		}
	}
	st, err := src.views.Get(ctx, id)
	if errors.Is(err, chronicle.ErrNotFound) {
		// The read model may not have caught up with a new order yet:
		// answer from the log rather than deny an order that exists.
		l, lerr := src.orders.Load(ctx, id)
		if lerr != nil {
			return s.timeTravelError(ctx, id, lerr, "order "+id+" not found")
		}
		st = l.State
	} else if err != nil {
		return err
	}
	return writeOrder(w, st)
}

// timeTravelError maps a load's not-found to 404 with detail.
func (s *Server) timeTravelError(_ context.Context, _ string, err error, detail string) error {
	if errors.Is(err, aggregate.ErrNotFound) || errors.Is(err, order.ErrNotFound) {
		return notFound("%s", detail)
	}
	return mapDomainError(err)
}

func writeOrder(w http.ResponseWriter, st order.State) error {
	setVersion(w, st.Version)
	return writeJSON(w, http.StatusOK, st)
}

// listBody is the body of GET /orders.
type listBody struct {
	Orders []order.State `json:"orders"`
	// NextCursor fetches the next page; null on the last one.
	NextCursor *string `json:"next_cursor"`
}

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request, src *source) error {
	q := r.URL.Query()
	var f orderview.Filter
	if v := q.Get("status"); v != "" {
		ok := false
		for _, st := range order.Statuses() {
			ok = ok || string(st) == v
		}
		if !ok {
			return badField("status", "want one of created, paid, shipped, delivered, cancelled")
		}
		f.Status = order.Status(v)
	}
	if v := q.Get("customer_id"); v != "" {
		if err := order.ValidID("customer_id", v); err != nil {
			return mapDomainError(err)
		}
		f.CustomerID = v
	}
	if q.Has("limit") {
		n, err := intParam(r, "limit", 1)
		if err != nil {
			return err
		}
		if n > orderview.MaxLimit {
			return badField("limit", "at most %d", orderview.MaxLimit)
		}
		f.Limit = int(n)
	}
	f.Cursor = q.Get("cursor")
	page, err := src.views.List(r.Context(), f)
	if errors.Is(err, orderview.ErrBadCursor) {
		return badField("cursor", "not a cursor this API returned")
	}
	if err != nil {
		return err
	}
	body := listBody{Orders: page.Items}
	if body.Orders == nil {
		body.Orders = []order.State{}
	}
	if page.NextCursor != "" {
		body.NextCursor = &page.NextCursor
	}
	return writeJSON(w, http.StatusOK, body)
}

// orderEvents answers the timeline, as JSON or (?format=text) as the CLI
// prints it.
func (s *Server) orderEvents(w http.ResponseWriter, r *http.Request, src *source) error {
	id, err := pathOrderID(r)
	if err != nil {
		return mapDomainError(err)
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "text" {
		return badField("format", "want json or text")
	}
	stream, _ := order.StreamID(id)
	tl, err := timeline.Load(r.Context(), src.store, s.opts.Upcaster, id, stream, chronicle.ReadStreamOptions{})
	if errors.Is(err, chronicle.ErrStreamNotFound) {
		return notFound("order %s not found", id)
	}
	if err != nil {
		return err
	}
	setVersion(w, tl.Version)
	if format == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		return tl.WriteText(w)
	}
	return writeJSON(w, http.StatusOK, tl)
}

// statusBody is the body of GET /stats/order-status.
type statusBody struct {
	At     time.Time              `json:"at"`
	Counts map[order.Status]int64 `json:"counts"`
}

func (s *Server) statusCounts(w http.ResponseWriter, r *http.Request, src *source) error {
	at := time.Now().UTC()
	if r.URL.Query().Has("at") {
		t, err := timeParam(r, "at")
		if err != nil {
			return err
		}
		at = t
	}
	counts, err := src.views.StatusCounts(r.Context(), at)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, statusBody{At: at, Counts: counts})
}

// intParam parses query parameter name as an integer >= min.
func intParam(r *http.Request, name string, min int64) (int64, error) {
	v := r.URL.Query().Get(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, badField(name, "want an integer, got %q", v)
	}
	if n < min {
		return 0, badField(name, "must be at least %d", min)
	}
	return n, nil
}

// timeParam parses query parameter name as an RFC 3339 time, returned in UTC.
func timeParam(r *http.Request, name string) (time.Time, error) {
	// An unencoded "+01:00" offset arrives as " 01:00": take it as meant.
	v := strings.ReplaceAll(r.URL.Query().Get(name), " ", "+")
	t, err := ParseTime(v)
	if err != nil {
		return time.Time{}, badField(name, "%v", err)
	}
	return t, nil
}
