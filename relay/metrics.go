package relay

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle-es/chronicle/projection"
)

// Metrics count what a relay does. A nil *Metrics counts nothing.
type Metrics struct {
	published, acknowledged, retried prometheus.Counter
}

// StatusFunc returns the relay's status (projection.Runner.Status's row
// named Name); ok is false when no relay has run on the store.
type StatusFunc func(ctx context.Context) (st projection.Status, ok bool, err error)

// NewMetrics registers the relay's counters, and its lag read through
// status at scrape time, with reg.
func NewMetrics(reg prometheus.Registerer, status StatusFunc) (*Metrics, error) {
	m := &Metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "chronicle_relay_published_total",
			Help: "Messages the relay published to JetStream, again after a failure included."}),
		acknowledged: prometheus.NewCounter(prometheus.CounterOpts{Name: "chronicle_relay_acknowledged_total",
			Help: "Messages JetStream acknowledged (duplicates it dropped included)."}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{Name: "chronicle_relay_retried_total",
			Help: "Events of windows the relay tried again after a failure (NATS down, no acknowledgement in time)."}),
	}
	lag := func(pick func(projection.Status) float64) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, ok, err := status(ctx)
			if err != nil || !ok {
				return 0
			}
			return pick(st)
		}
	}
	for _, c := range []prometheus.Collector{m.published, m.acknowledged, m.retried,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chronicle_relay_lag_events",
			Help: "Events of the global log the relay has not had acknowledged yet."},
			lag(func(st projection.Status) float64 { return float64(st.LagEvents) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chronicle_relay_lag_seconds",
			Help: "Age of the oldest event the relay has not had acknowledged yet; 0 when caught up."},
			lag(func(st projection.Status) float64 { return st.LagSeconds })),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// StatusOf returns a StatusFunc reading the relay's row from runner's
// Status (its Options.Sinks or Options.Watch must name the relay).
func StatusOf(runner interface {
	Status(ctx context.Context) ([]projection.Status, error)
}) StatusFunc {
	return func(ctx context.Context) (projection.Status, bool, error) {
		sts, err := runner.Status(ctx)
		if err != nil {
			return projection.Status{}, false, err
		}
		for _, st := range sts {
			if st.Name == Name {
				return st, true, nil
			}
		}
		return projection.Status{}, false, nil
	}
}

func (m *Metrics) addPublished(n int) {
	if m != nil {
		m.published.Add(float64(n))
	}
}

func (m *Metrics) addAcknowledged(n int) {
	if m != nil {
		m.acknowledged.Add(float64(n))
	}
}

func (m *Metrics) addRetried(n int) {
	if m != nil {
		m.retried.Add(float64(n))
	}
}
