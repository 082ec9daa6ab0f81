package main

import (
	"io"
	"log/slog"
	"math"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/console"
	"github.com/chronicle-es/chronicle/httpapi"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/personal"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/upcast"
)

// apiToken is a configured bearer token; httpapi parses and checks them.
type apiToken = httpapi.Token

func parseTokens(s string) ([]apiToken, error)   { return httpapi.ParseTokens(s) }
func readTokens(r io.Reader) ([]apiToken, error) { return httpapi.ReadTokens(r) }

// stateCacheSize is how many orders' states serve keeps (see
// aggregate.WithStateCache).
const stateCacheSize = 10_000

// newMetricsRegistry returns the registry /metrics serves, with the Go
// runtime's and the process's metrics.
func newMetricsRegistry() *prometheus.Registry {
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return metrics
}

// newHandler wires the HTTP API over the store: the order repository for
// commands and time travel, the read models for queries, the projection
// runner for /projections and ?min_version= (limits bound the waiters and
// the write timeout), and the web console at /. Its Close releases what
// the handler started (background rebuilds); call it after the HTTP server
// has shut down. metrics is what /metrics serves (newMetricsRegistry);
// replicas are the standbys that serve reads.
func newHandler(store storeurl.Store, keys *personal.Keyring, replicas []*pgstore.Replica, reg *upcast.Registry, runner *projection.Runner, metrics *prometheus.Registry, a auth, limits serveLimits, log *slog.Logger) (*httpapi.Server, error) {
	var reps []httpapi.Replica
	for _, r := range replicas {
		reps = append(reps, httpapi.Replica{
			Store: r,
			// Snapshots off: a replica cannot write them, and time travel
			// replays an order's few events anyway.
			Orders: aggregate.New(r, nil, reg, order.Definition(), aggregate.WithLogger(log)),
			Views:  orderview.NewReader(r),
			Health: r,
		})
		labels := prometheus.Labels{"replica": r.Name()}
		metrics.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "chronicle_replica_lag_seconds", ConstLabels: labels,
				Help: "How far the replica was behind the primary at its last check; NaN when unknown (unreachable).",
			}, func() float64 {
				if lag, ok := r.Lag(); ok {
					return lag.Seconds()
				}
				return math.NaN()
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "chronicle_replica_usable", ConstLabels: labels,
				Help: "1 when the replica serves reads (reachable, a standby, within --replica-max-lag), else 0.",
			}, func() float64 {
				if r.Usable() {
					return 1
				}
				return 0
			}),
		)
	}
	appends, err := httpapi.NewAppendMetrics(metrics)
	if err != nil {
		return nil, err
	}
	api, err := httpapi.New(httpapi.Options{
		Store:    store,
		Upcaster: reg,
		// The state cache spares a command its load (two reads) when it
		// creates an order or follows a recent one: ~1 KiB an order, within
		// aggregate.DefaultStateCacheBytes however large the orders.
		Orders:       aggregate.New(appends.Wrap(personal.NewStore(store, keys, order.PersonalData())), store, reg, order.Definition(), aggregate.WithLogger(log), aggregate.WithStateCache(stateCacheSize)),
		Views:        orderview.NewReader(store),
		Replicas:     reps,
		Projections:  runner,
		Logger:       log,
		Registry:     metrics,
		Tokens:       a.tokens,
		JWT:          a.jwt,
		Console:      console.Handler(),
		Personal:     keys,
		WriteTimeout: limits.write,

		MaxMinVersionWaiters: limits.maxWaiters,
		FeedHeartbeat:        limits.feedHeartbeat,
		MaxFeedSubscribers:   limits.maxFeedSubscribers,
	})
	if err != nil {
		return nil, err
	}
	return api, nil
}
