package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's own Prometheus series. They are registered on
// the registry of Options, never on a global one.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inflight  prometheus.Gauge
	commands  *prometheus.HistogramVec
	conflicts *prometheus.CounterVec
	replays   prometheus.Counter
	// feedSubscribers counts the open event streams of GET /events.
	feedSubscribers prometheus.Gauge
	// reads counts queries by where they were served; replicaFailures the
	// replica reads answered again by the primary.
	reads           *prometheus.CounterVec
	replicaFailures prometheus.Counter
}

// latencyBuckets span a fast SQLite append (~100 µs) to a slow wait (5 s).
func latencyBuckets() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chronicle_http_requests_total",
			Help: "HTTP requests by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chronicle_http_request_duration_seconds",
			Help:    "HTTP request latency by method and route pattern.",
			Buckets: latencyBuckets(),
		}, []string{"method", "route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chronicle_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		commands: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chronicle_command_append_duration_seconds",
			Help:    "Time to load, decide and append one order command, by command and outcome.",
			Buckets: latencyBuckets(),
		}, []string{"command", "outcome"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chronicle_command_conflicts_total",
			Help: "Concurrent-write conflicts met by order commands: retried (no If-Match) or precondition_failed (If-Match, 412).",
		}, []string{"outcome"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chronicle_idempotent_replays_total",
			Help: "Commands answered from an earlier request with the same Idempotency-Key.",
		}),
		feedSubscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chronicle_feed_subscribers",
			Help: "Event streams (GET /events as Server-Sent Events) open.",
		}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chronicle_reads_total",
			Help: "Queries (GET of orders, lists, stats, timelines, time travel, /events) by where they were served: primary or replica.",
		}, []string{"source"}),
		replicaFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chronicle_replica_read_failures_total",
			Help: "Reads that failed on a replica and were answered by the primary.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inflight, m.commands, m.conflicts, m.replays, m.feedSubscribers, m.reads, m.replicaFailures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
