package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/chronicle-es/chronicle/projection"
	"github.com/prometheus/client_golang/prometheus"
)

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the store answers and every projection is
// running (not stopped at a failed event); 503 with the failing checks
// otherwise. The details are check names and statuses only: internal error
// text goes to the log.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.ReadyTimeout)
	defer cancel()
	checks := map[string]string{"store": "ok", "projections": "ok"}
	ready := true
	if _, err := s.opts.Store.Head(ctx); err != nil {
		checks["store"] = "unreachable"
		ready = false
		s.log.LogAttrs(ctx, slog.LevelWarn, "readiness: store", slog.String("request_id", requestID(ctx)), slog.String("error", err.Error()))
	}
	sts, err := s.opts.Projections.Status(ctx)
	if err != nil {
		checks["projections"] = "unknown"
		ready = false
		s.log.LogAttrs(ctx, slog.LevelWarn, "readiness: projections", slog.String("request_id", requestID(ctx)), slog.String("error", err.Error()))
	}
	for _, st := range sts {
		if st.Status == projection.StatusFailed {
			checks["projections"] = "failed: " + st.Name
			ready = false
		}
	}
	status, word := http.StatusOK, "ready"
	if !ready {
		status, word = http.StatusServiceUnavailable, "not ready"
	}
	return writeJSON(w, status, map[string]any{"status": word, "checks": checks})
}

// projectionsBody is the body of GET /projections.
type projectionsBody struct {
	Projections []projection.Status `json:"projections"`
}

func (s *Server) listProjections(w http.ResponseWriter, r *http.Request) error {
	sts, err := s.opts.Projections.Status(r.Context())
	if err != nil {
		return err
	}
	if sts == nil {
		sts = []projection.Status{}
	}
	return writeJSON(w, http.StatusOK, projectionsBody{Projections: sts})
}

// rebuildProjection starts a rebuild in the background and answers 202
// with the projection's status; with ?wait=true it answers 200 once the new
// read model is live. A second rebuild of the same projection while one
// runs is 409.
func (s *Server) rebuildProjection(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	wait, err := boolParam(r, "wait")
	if err != nil {
		return err
	}
	if _, err := s.projectionStatus(r.Context(), name); err != nil {
		return err
	}
	if k, ok := s.opts.Projections.(interface{ IsSink(string) bool }); ok && k.IsSink(name) {
		return newError(http.StatusConflict, typeConflict, name+" is a relay, not a read model: there is nothing to rebuild")
	}
	done, ok := s.rebuilds.start(name, func(ctx context.Context) error {
		err := s.opts.Projections.Rebuild(ctx, name, nil)
		if err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelError, "rebuild failed", slog.String("projection", name), slog.String("error", err.Error()))
		} else if err == nil {
			s.log.LogAttrs(ctx, slog.LevelInfo, "rebuild done", slog.String("projection", name))
		}
		return err
	})
	if !ok {
		return newError(http.StatusConflict, typeConflict, "a rebuild of "+name+" is already running")
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "rebuild started", slog.String("request_id", requestID(r.Context())), slog.String("projection", name))
	status := http.StatusAccepted
	if wait {
		select {
		case err := <-done:
			if err != nil {
				if r.Context().Err() != nil {
					return err
				}
				// The rebuild's cause is logged above; a projection that
				// cannot apply an event is a server-side fault.
				return fmt.Errorf("rebuild of %s failed: %w", name, err)
			}
		case <-r.Context().Done():
			return r.Context().Err()
		}
		status = http.StatusOK
	}
	st, err := s.projectionStatus(r.Context(), name)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/projections")
	return writeJSON(w, status, st)
}

func (s *Server) projectionStatus(ctx context.Context, name string) (projection.Status, error) {
	sts, err := s.opts.Projections.Status(ctx)
	if err != nil {
		return projection.Status{}, err
	}
	for _, st := range sts {
		if st.Name == name {
			return st, nil
		}
	}
	return projection.Status{}, notFound("no projection named %q", name)
}

func boolParam(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, badField(name, "want true or false, got %q", v)
	}
}

// background runs named jobs that outlive their request, one per name, and
// cancels and waits for them on stop.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	active map[string]bool
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel, active: map[string]bool{}}
}

// start runs f unless a job of that name runs; done receives f's result.
func (b *background) start(name string, f func(ctx context.Context) error) (done <-chan error, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.active[name] || b.ctx.Err() != nil {
		return nil, false
	}
	b.active[name] = true
	ch := make(chan error, 1)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		err := f(b.ctx)
		b.mu.Lock()
		delete(b.active, name)
		b.mu.Unlock()
		ch <- err
	}()
	return ch, true
}

func (b *background) stop() {
	b.cancel()
	b.wg.Wait()
}

// projectionCollector exports each projection's lag and status at scrape
// time, read from the runner, so the figures are never stale.
type projectionCollector struct {
	p       Projections
	timeout time.Duration
	log     *slog.Logger

	lagEvents, lagSeconds, position, status, up *prometheus.Desc
}

func newProjectionCollector(p Projections, timeout time.Duration, log *slog.Logger) *projectionCollector {
	return &projectionCollector{
		p: p, timeout: timeout, log: log,
		lagEvents: prometheus.NewDesc("chronicle_projection_lag_events",
			"Events of the global log a projection has not applied yet.", []string{"projection"}, nil),
		lagSeconds: prometheus.NewDesc("chronicle_projection_lag_seconds",
			"Age of the oldest event a projection has not applied yet; 0 when caught up.", []string{"projection"}, nil),
		position: prometheus.NewDesc("chronicle_projection_position",
			"Global position of a projection's checkpoint.", []string{"projection"}, nil),
		status: prometheus.NewDesc("chronicle_projection_status",
			"1 for a projection's current status (running, retrying, failed), 0 for the others.", []string{"projection", "status"}, nil),
		up: prometheus.NewDesc("chronicle_projection_status_up",
			"1 when the projections' status could be read at scrape time.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lagEvents, c.lagSeconds, c.position, c.status, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	sts, err := c.p.Status(ctx)
	if err != nil {
		c.log.Warn("metrics: projection status", slog.String("error", err.Error()))
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, st := range sts {
		ch <- prometheus.MustNewConstMetric(c.lagEvents, prometheus.GaugeValue, float64(st.LagEvents), st.Name)
		ch <- prometheus.MustNewConstMetric(c.lagSeconds, prometheus.GaugeValue, st.LagSeconds, st.Name)
		ch <- prometheus.MustNewConstMetric(c.position, prometheus.GaugeValue, float64(st.Position), st.Name)
		for _, s := range []string{projection.StatusRunning, "retrying", projection.StatusFailed} {
			v := 0.0
			if st.Status == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.status, prometheus.GaugeValue, v, st.Name, s)
		}
	}
}
