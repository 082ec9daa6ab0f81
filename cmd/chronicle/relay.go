package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/chronicle-es/chronicle/personal"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/relay"
	"github.com/chronicle-es/chronicle/upcast"
)

func (m *Main) relayCommand() *cobra.Command {
	var (
		opts                relay.Options
		metricsAddr         string
		logFormat, logLevel string
	)
	c := &cobra.Command{
		Use:   "relay --nats nats://HOST:PORT",
		Short: "Publish every event of the log to NATS JetStream",
		Long: `Publish every event of the global log, in read order, to NATS JetStream:
subject <prefix>.<stream_type>.<type> (e.g. chronicle.order.OrderShipped), body
the event JSON of GET /events, headers Nats-Msg-Id (the event id),
Chronicle-Stream, Chronicle-Version and Chronicle-Checkpoint.

It creates the JetStream stream CHRONICLE (subjects <prefix>.>, file storage,
duplicate window 2 minutes) when missing. Its checkpoint (relay_nats, shown by
GET /projections and 'projections list') moves only after JetStream
acknowledged every event up to it; while NATS is unreachable it retries, with
backoff, for as long as it takes. 'serve --relay-nats' runs the same relay.

One relay runs per store: several relay or serve processes may run, one holds
the lease and the others take over when it dies (on PostgreSQL an advisory
lock, on SQLite a lock on the file <database>-relay_nats.lock).

--metrics-addr serves /metrics (the relay's counters and lag, Prometheus
text format) on that address. SIGINT or SIGTERM stop it after the window in
flight.`,
		Example: `  chronicle relay --nats nats://127.0.0.1:4222
  chronicle relay --nats nats://127.0.0.1:4222 --subject-prefix acme.orders --store postgres://localhost/chronicle`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			log, err := newLogger(m.Stderr, logFormat, logLevel)
			if err != nil {
				return &usageError{err}
			}
			if opts.URL == "" {
				return usagef("relay: --nats is required")
			}
			if err := opts.Check(); err != nil {
				return usagef("relay: %v", err)
			}
			if metricsAddr != "" {
				if _, _, err := net.SplitHostPort(metricsAddr); err != nil {
					return usagef("relay: --metrics-addr %q: %v (want host:port)", metricsAddr, err)
				}
			}
			return m.relay(c, opts, metricsAddr, log)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.URL, "nats", "", "the NATS server, nats://HOST:PORT (required)")
	f.StringVar(&opts.SubjectPrefix, "subject-prefix", relay.DefaultSubjectPrefix, "first token(s) of every subject")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics on this host:port (default: none)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return c
}

func (m *Main) relay(c *cobra.Command, opts relay.Options, metricsAddr string, log *slog.Logger) error {
	ctx := c.Context()
	store, loc, keys, err := m.openStore(c, log)
	if err != nil {
		return err
	}
	defer store.Close()
	log.Info("store open", "store", loc.String())
	opts.Reveal = revealer(keys)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r, runner, err := startRelay(ctx, store, order.NewRegistry(), opts, reg, projection.Options{Logger: log})
	if err != nil {
		return err
	}
	defer r.Close()
	if metricsAddr != "" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("metrics", "addr", ln.Addr().String())
	}
	log.Info("relaying", "nats", relay.Redact(opts.URL), "stream", relay.StreamName)
	if err := runner.Run(ctx); err != nil {
		return err
	}
	log.Info("relay stopped")
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// revealer is the relay's Reveal with keys: messages carry personal data
// decrypted, as GET /events does.
func revealer(keys *personal.Keyring) func(context.Context, [][]byte) ([][]byte, error) {
	return func(ctx context.Context, bodies [][]byte) ([][]byte, error) {
		return keys.RevealEach(ctx, bodies, true)
	}
}

// startRelay makes the relay (counted in reg) and a runner of it with
// ropts, set up; the caller runs the runner and closes the relay.
func startRelay(ctx context.Context, store storeurl.Store, up *upcast.Registry, opts relay.Options, reg prometheus.Registerer, ropts projection.Options,
	projections ...projection.Projection) (*relay.Relay, *projection.Runner, error) {
	var runner *projection.Runner
	metrics, err := relay.NewMetrics(reg, func(ctx context.Context) (projection.Status, bool, error) {
		return relay.StatusOf(runner)(ctx)
	})
	if err != nil {
		return nil, nil, err
	}
	opts.Upcaster, opts.Metrics, opts.Logger = up, metrics, ropts.Logger
	r, err := relay.New(opts)
	if err != nil {
		return nil, nil, err
	}
	ropts.Upcaster = up
	ropts.Sinks = append(ropts.Sinks, r)
	runner, err = projection.New(store, ropts, projections...)
	if err == nil {
		err = runner.Setup(ctx)
	}
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, runner, nil
}
