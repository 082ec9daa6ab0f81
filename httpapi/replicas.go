package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
)

// Replica is a read-only copy of the store that can take reads: a
// PostgreSQL streaming-replication standby, with the events (same
// checkpoints) and the read models of the primary. *pgstore.Replica
// provides Store and Health.
type Replica struct {
	// Store reads the replica's log: timelines and the event feed. Its
	// Notify is not used: the feed wakes on Options.Store's.
	Store chronicle.Store
	// Orders loads orders from the replica's log: time travel.
	Orders OrderLoader
	// Views answers from the replica's read models.
	Views Views
	// Health says whether the replica may take a read now.
	Health ReplicaHealth
}

// ReplicaHealth is what the server asks of a replica before and after a
// read; *pgstore.Replica implements it.
type ReplicaHealth interface {
	// Usable reports whether the replica is reachable and close enough
	// behind the primary to serve a read now. It must be cheap: it is
	// asked on every read.
	Usable() bool
	// Failed reports that a read on the replica failed: it should not be
	// Usable until checked again.
	Failed()
}

// Where a read was served, in X-Chronicle-Source and the reads metric.
const (
	sourcePrimary = "primary"
	sourceReplica = "replica"
	sourceHeader  = "X-Chronicle-Source"
)

// source is where one read is served from.
type source struct {
	name    string
	store   chronicle.Store
	orders  OrderLoader
	views   Views
	replica *Replica // nil on the primary
}

func (s *Server) primary() *source {
	return &source{name: sourcePrimary, store: s.opts.Store, orders: s.opts.Orders, views: s.opts.Views}
}

// pickReplica returns a usable replica, taking them in turn, or nil.
func (s *Server) pickReplica() *source {
	n := len(s.opts.Replicas)
	if n == 0 {
		return nil
	}
	start := int(s.nextReplica.Add(1))
	for i := range n {
		rep := &s.opts.Replicas[(start+i)%n]
		if rep.Health.Usable() {
			return &source{name: sourceReplica, store: rep.Store, orders: rep.Orders, views: rep.Views, replica: rep}
		}
	}
	return nil
}

// read serves a query from a usable replica, else from the primary. A
// replica's answer that failed before any byte was written is answered
// again by the primary: a store error (the replica went away: it is then
// told so) or a 404 (the replica may not have replayed the order yet).
func (s *Server) read(h func(http.ResponseWriter, *http.Request, *source) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if src := s.pickReplica(); src != nil {
			w.Header().Set(sourceHeader, sourceReplica)
			sw := &startedWriter{ResponseWriter: w}
			err := h(sw, r, src)
			if err == nil || sw.started || r.Context().Err() != nil || !s.retryOnPrimary(r, src, err) {
				// The header, not src: a ?min_version= wait may end on the primary.
				s.metrics.reads.WithLabelValues(w.Header().Get(sourceHeader)).Inc()
				return err
			}
		}
		w.Header().Set(sourceHeader, sourcePrimary)
		s.metrics.reads.WithLabelValues(sourcePrimary).Inc()
		return h(w, r, s.primary())
	}
}

// retryOnPrimary reports whether a replica's failed read goes to the
// primary, and marks the replica failed when the error was its own.
func (s *Server) retryOnPrimary(r *http.Request, src *source, err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.p.Status == http.StatusNotFound
	}
	src.replica.Health.Failed()
	s.metrics.replicaFailures.Inc()
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "read on a replica failed; answered by the primary",
		slog.String("request_id", requestID(r.Context())), slog.String("route", r.Pattern), slog.String("error", err.Error()))
	return true
}

// startedWriter records whether a response has started.
type startedWriter struct {
	http.ResponseWriter
	started bool
}

func (w *startedWriter) WriteHeader(code int) {
	w.started = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *startedWriter) Write(b []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *startedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// A ?min_version= wait on a replica polls its read model (a standby
// cannot LISTEN), first after replicaPollFirst, then doubling: replication
// usually takes milliseconds, and the cap bounds what a full set of waiters
// costs the standby (MaxMinVersionWaiters point reads per replicaPollMax).
const (
	replicaPollFirst = time.Millisecond
	replicaPollMax   = 50 * time.Millisecond
)

// waitReplica waits until the replica's read model shows the order at
// version v or later, and returns it. The wait ends at deadline: the
// primary then answers, without waiting any more, when its read model
// has version v (the replica is slow); else the answer is 504, as on the
// primary. A replica that fails during the wait sends the request to the
// primary, which waits until deadline as it always does.
func (s *Server) waitReplica(ctx context.Context, w http.ResponseWriter, src *source, id string, v int64, deadline time.Time) (order.State, error) {
	pause := replicaPollFirst
	for {
		st, err := src.views.Get(ctx, id)
		if err == nil && st.Version >= v {
			return st, nil
		}
		if err != nil && !errors.Is(err, chronicle.ErrNotFound) {
			return order.State{}, err // retried on the primary
		}
		if time.Now().Add(pause).After(deadline) {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return order.State{}, ctx.Err()
		}
		pause = min(2*pause, replicaPollMax)
	}
	st, err := s.opts.Views.Get(ctx, id)
	if err == nil && st.Version >= v {
		w.Header().Set(sourceHeader, sourcePrimary)
		return st, nil
	}
	if err != nil && !errors.Is(err, chronicle.ErrNotFound) {
		return order.State{}, err
	}
	return order.State{}, newError(http.StatusGatewayTimeout, typeTimeout,
		"the read model did not reach version "+itoa(v)+" of order "+id+" within "+s.opts.MinVersionWait.String())
}
