package httpapi

import (
	"context"
	"errors"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/prometheus/client_golang/prometheus"
)

// AppendMetrics measures the store's appends themselves (without load and
// decide): latency by outcome, and conflicts. Wrap the store given to
// aggregate.New with it, on the registry the Server serves.
type AppendMetrics struct {
	duration *prometheus.HistogramVec
}

// NewAppendMetrics registers chronicle_store_append_duration_seconds on reg.
func NewAppendMetrics(reg prometheus.Registerer) (*AppendMetrics, error) {
	m := &AppendMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chronicle_store_append_duration_seconds",
		Help:    "Latency of event store appends by outcome (ok, conflict, error); the count of conflict is the number of concurrent-write conflicts.",
		Buckets: latencyBuckets(),
	}, []string{"outcome"})}
	if err := reg.Register(m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// Wrap returns s with its appends measured.
func (m *AppendMetrics) Wrap(s aggregate.EventStore) aggregate.EventStore {
	return &measuredStore{EventStore: s, m: m}
}

var _ aggregate.AppendRecorder = (*measuredStore)(nil)

type measuredStore struct {
	aggregate.EventStore
	m *AppendMetrics
}

// AppendRecorded passes aggregate.AppendRecorder on when the store has it;
// otherwise it appends and returns no events (the repository reads them).
func (s *measuredStore) AppendRecorded(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, []chronicle.RecordedEvent, error) {
	ar, ok := s.EventStore.(aggregate.AppendRecorder)
	if !ok {
		res, err := s.Append(ctx, stream, expected, events)
		return res, nil, err
	}
	start := time.Now()
	res, recorded, err := ar.AppendRecorded(ctx, stream, expected, events)
	s.observe(start, err)
	return res, recorded, err
}

func (s *measuredStore) Append(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, error) {
	start := time.Now()
	res, err := s.EventStore.Append(ctx, stream, expected, events)
	s.observe(start, err)
	return res, err
}

func (s *measuredStore) observe(start time.Time, err error) {
	outcome := "ok"
	switch {
	case errors.Is(err, chronicle.ErrWrongVersion):
		outcome = "conflict"
	case err != nil:
		outcome = "error"
	}
	s.m.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}
