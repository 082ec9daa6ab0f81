package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/httpapi"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/relay"
	"github.com/chronicle-es/chronicle/seal"
)

// shutdownTimeout bounds how long serve waits for in-flight requests.
const shutdownTimeout = 30 * time.Second

// maxHeaderBytes bounds a request's line and headers (431 beyond). The API
// needs a few hundred bytes; a large limit only lets a client make the
// server read, log and count junk.
const maxHeaderBytes = 64 << 10

func (m *Main) serveCommand() *cobra.Command {
	var (
		addr       string
		tokensFile string
		jwt        httpapi.JWTOptions
		logFormat  string
		logLevel   string
		gather     time.Duration
		limits     serveLimits
		relayOpts  relay.Options
		replicas   replicaFlags
		signingKey string
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API, the projections and the web console",
		Long: `Run the order service: the HTTP API (see README.md), the projections that keep the
read models up to date, and the web console at /.

The store's schema is created or migrated first; /readyz answers 200 once the
store is open and the projections run.

Auth: tokens come from $CHRONICLE_TOKENS ("secret1:admin,secret2:read") or
--tokens-file (one secret:role or name:secret:role a line; roles read,
write, admin; an unnamed token is called token- and 8 hex digits of the
SHA-256 of its secret). With --jwks-file, --jwt-issuer and --jwt-audience a
bearer token may also be a JWT of an identity provider (RS256, ES256 or
EdDSA, with the kid of a key in the JWK set, iss and aud matching, exp
required; 60 s leeway): its sub names the holder and the claim named by
--jwt-role-claim its role. The JWK set file is read again when it changes.
Events appended through the API record the holder's name as their actor.
Without any token or JWK set, auth is off: serve refuses to listen on
anything but loopback and answers only requests for localhost, 127.0.0.1 or
[::1] (421 otherwise).
Request bodies must be Content-Type: application/json (415 otherwise).

Logs go to stderr. The access log has a line per request: failed requests
at info (4xx) or warn (5xx), successful ones at debug (--log-level debug
shows them; /metrics counts every request by route, status and duration).

Slow or idle clients are cut: a request's headers must arrive within
--read-header-timeout and the whole request within --read-timeout, a
response must be written within --write-timeout of its start (waits before
it, such as ?min_version=, do not count), and a connection idle between
requests closes after --idle-timeout. At most --max-conns connections are
open at once; further clients wait until one closes.

--relay-nats also relays the log to NATS JetStream, as 'chronicle relay'
does (see its help); GET /projections shows the relay as relay_nats.

Read replicas: with a PostgreSQL --store, each --replica names a
streaming-replication standby of it (pg_basebackup -R). Reads (GET of
orders, lists, stats, timelines, time travel, /events) go to a standby that
is reachable and less than --replica-max-lag behind, else to the primary;
commands always go to the primary. A read that fails on a standby is
answered by the primary. ?min_version= on a standby waits for it to replay
that version. X-Chronicle-Source says where each read was served.

SIGINT or SIGTERM shut it down gracefully: new connections are refused,
requests in flight finish (up to 30 s), event streams end (their clients
resume elsewhere or later with Last-Event-ID), and the projections stop after their
last committed batch.`,
		Example: `  chronicle serve
  chronicle serve --addr 127.0.0.1:9090 --store sqlite:///var/lib/chronicle/chronicle.db
  CHRONICLE_TOKENS=s3cret:admin chronicle serve --addr 0.0.0.0:8080 --store postgres://localhost/chronicle
  chronicle serve --store postgres://primary/chronicle --replica postgres://standby1/chronicle --replica postgres://standby2/chronicle`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			log, err := newLogger(m.Stderr, logFormat, logLevel)
			if err != nil {
				return &usageError{err}
			}
			tokens, err := m.loadTokens(tokensFile)
			if err != nil {
				return err
			}
			var idp *httpapi.JWTOptions
			if jwt.KeySetFile != "" || jwt.Issuer != "" || jwt.Audience != "" {
				if jwt.KeySetFile == "" || jwt.Issuer == "" || jwt.Audience == "" {
					return usagef("--jwks-file, --jwt-issuer and --jwt-audience go together")
				}
				idp = &jwt
			}
			if err := checkListenAddr(c.Context(), addr, len(tokens) > 0 || idp != nil); err != nil {
				return err
			}
			if gather < 0 {
				return usagef("--projection-gather %s: want a duration of 0 or more", gather)
			}
			if err := limits.check(); err != nil {
				return err
			}
			if relayOpts.URL != "" {
				if err := relayOpts.Check(); err != nil {
					return usagef("--relay-nats, --relay-subject-prefix: %v", err)
				}
			} else if c.Flags().Changed("relay-subject-prefix") {
				return usagef("--relay-subject-prefix needs --relay-nats")
			}
			if replicas.maxLag <= 0 {
				return usagef("--replica-max-lag %s: want a duration above 0", replicas.maxLag)
			}
			if loc, err := storeurl.Parse(m.storeURL(c)); err == nil && loc.Kind != storeurl.Postgres && len(replicas.urls) > 0 {
				// Before the store is opened: that would create a SQLite file.
				return usagef("--replica needs a PostgreSQL --store (a streaming-replication standby of it)")
			}
			var key ed25519.PrivateKey
			if signingKey != "" {
				b, err := os.ReadFile(signingKey)
				if err != nil {
					return fmt.Errorf("--signing-key: %w", err)
				}
				if key, err = audit.ParsePrivateKeyPEM(b); err != nil {
					return fmt.Errorf("--signing-key %s: %w (want an Ed25519 private key in PKCS#8 PEM: openssl genpkey -algorithm ed25519)", signingKey, err)
				}
			}
			return m.serve(c, addr, auth{tokens, idp}, log, gather, limits, relayOpts, replicas, key)
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	f.StringVar(&tokensFile, "tokens-file", "", "file of API tokens, one secret:role or name:secret:role a line (default $CHRONICLE_TOKENS)")
	f.StringVar(&jwt.KeySetFile, "jwks-file", "", "JWK set of an identity provider's keys: accept its JWTs as bearer tokens (with --jwt-issuer and --jwt-audience)")
	f.StringVar(&jwt.Issuer, "jwt-issuer", "", "the iss a JWT must have")
	f.StringVar(&jwt.Audience, "jwt-audience", "", "the aud a JWT must have")
	f.StringVar(&jwt.RoleClaim, "jwt-role-claim", httpapi.DefaultRoleClaim, "the JWT claim holding the role: read, write or admin")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.DurationVar(&gather, "projection-gather", 20*time.Millisecond,
		"under a stream of commands, the least time between two read-model transactions (more: fewer, larger transactions and less CPU per event, but more read-model lag)")
	f.DurationVar(&limits.readHeader, "read-header-timeout", 10*time.Second, "time a client has to send a request's line and headers")
	f.DurationVar(&limits.read, "read-timeout", 30*time.Second, "time a client has to send a whole request, body included")
	f.DurationVar(&limits.write, "write-timeout", httpapi.DefaultWriteTimeout, "time a client has to read a response, from its first byte")
	f.DurationVar(&limits.idle, "idle-timeout", 2*time.Minute, "how long a connection may stay open between requests")
	f.IntVar(&limits.maxConns, "max-conns", 1024, "most client connections open at once; more wait for one to close")
	f.DurationVar(&limits.feedHeartbeat, "feed-heartbeat", httpapi.DefaultFeedHeartbeat, "longest an event stream (GET /events as text/event-stream) stays silent: a comment line is sent then")
	f.IntVar(&limits.maxFeedSubscribers, "max-feed-subscribers", httpapi.DefaultMaxFeedSubscribers, "most event streams open at once; more are answered 503 with Retry-After (each also holds one of --max-conns)")
	f.StringVar(&relayOpts.URL, "relay-nats", "", "also relay the log to NATS JetStream at this nats://HOST:PORT (as 'chronicle relay' does)")
	f.StringVar(&relayOpts.SubjectPrefix, "relay-subject-prefix", relay.DefaultSubjectPrefix, "with --relay-nats: the first token(s) of every subject")
	f.StringArrayVar(&replicas.urls, "replica", nil, "a streaming-replication standby of the PostgreSQL --store to serve reads (repeatable)")
	f.DurationVar(&replicas.maxLag, "replica-max-lag", pgstore.DefaultReplicaMaxLag, "a standby further behind the primary than this serves no reads")
	f.StringVar(&signingKey, "signing-key", "", "Ed25519 private key (PKCS#8 PEM) that signs every seal of the log")
	f.IntVar(&limits.maxWaiters, "max-min-version-waiters", httpapi.DefaultMaxMinVersionWaiters,
		"most GET ?min_version= requests waiting at once; more are answered 503 with Retry-After")
	return c
}

// serveLimits bound what one client can hold of the server: time to send
// a request and to read the answer, and connections.
type serveLimits struct {
	readHeader, read, write, idle time.Duration
	maxConns                      int
	maxWaiters                    int // ?min_version= requests waiting at once
	feedHeartbeat                 time.Duration
	maxFeedSubscribers            int
}

func (l serveLimits) check() error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--read-header-timeout", l.readHeader}, {"--read-timeout", l.read}, {"--write-timeout", l.write}, {"--idle-timeout", l.idle}, {"--feed-heartbeat", l.feedHeartbeat}} {
		if d.v <= 0 {
			return usagef("%s %s: want a duration above 0", d.flag, d.v)
		}
	}
	if l.maxConns < 1 {
		return usagef("--max-conns %d: want 1 or more", l.maxConns)
	}
	if l.maxFeedSubscribers < 1 {
		return usagef("--max-feed-subscribers %d: want 1 or more", l.maxFeedSubscribers)
	}
	if l.maxWaiters < 1 {
		return usagef("--max-min-version-waiters %d: want 1 or more", l.maxWaiters)
	}
	return nil
}

func newLogger(w interface{ Write([]byte) (int, error) }, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// errNoAuthOnNetwork explains why serve will not start.
var errNoAuthOnNetwork = errors.New("refusing to listen on a non-loopback address without auth: " +
	"set CHRONICLE_TOKENS (\"secret:role,...\"), --tokens-file or --jwks-file, or listen on 127.0.0.1")

// checkListenAddr refuses, when auth is off, any address that is not
// loopback: an unauthenticated order service must not be reachable from the
// network by accident. A host name counts as loopback only when every
// address it resolves to is.
func checkListenAddr(ctx context.Context, addr string, auth bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--addr %q: %v (want host:port)", addr, err)
	}
	if auth {
		return nil
	}
	if host == "" {
		return fmt.Errorf("--addr %s listens on every interface: %w", addr, errNoAuthOnNetwork)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("--addr %s: %v", addr, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("--addr %s: %w", addr, errNoAuthOnNetwork)
		}
	}
	return nil
}

func (m *Main) loadTokens(file string) ([]apiToken, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file: %w", err)
		}
		defer f.Close()
		toks, err := readTokens(f)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file %s: %w", file, err)
		}
		return toks, nil
	}
	if env := m.Getenv("CHRONICLE_TOKENS"); env != "" {
		toks, err := parseTokens(env)
		if err != nil {
			return nil, fmt.Errorf("CHRONICLE_TOKENS: %w", err)
		}
		return toks, nil
	}
	return nil, nil
}

// auth is how serve authenticates: tokens, and JWTs when jwt is set.
type auth struct {
	tokens []apiToken
	jwt    *httpapi.JWTOptions
}

func (m *Main) serve(c *cobra.Command, addr string, a auth, log *slog.Logger, gather time.Duration, limits serveLimits, relayOpts relay.Options, rf replicaFlags, key ed25519.PrivateKey) error {
	ctx := c.Context()
	store, loc, keys, err := m.openStore(c, log)
	if err != nil {
		return err
	}
	defer store.Close()
	log.Info("store open", "store", loc.String())
	if key == nil {
		// A signed log stays signed: verify --integrity fails on an
		// unsigned seal after a signed one, so the sealer would make none,
		// and sealing would stop with only a log line to say so.
		latest, err := store.LatestSeal(ctx)
		if err != nil && !errors.Is(err, chronicle.ErrNotFound) {
			return err
		}
		if latest.KeyID != "" {
			return fmt.Errorf("this store's seals are signed (seal %d, key %s): give --signing-key, with that key or a new one", latest.Seq, latest.KeyID)
		}
	}
	replicas, err := openReplicas(ctx, store, rf, log)
	if err != nil {
		return err
	}
	defer func() {
		for _, r := range replicas {
			r.Close()
		}
	}()

	reg := order.NewRegistry()
	// Gather: under a stream of commands the read models apply the events
	// of many appends per transaction (at most 1/gather a second each, 50
	// by default) instead of one transaction per group commit, which
	// appends had to wait for.
	// The relay's status shows in GET /projections once a relay has run on
	// the store, here or in another process (Watch).
	metrics := newMetricsRegistry()
	ropts := projection.Options{Upcaster: reg, Logger: log, Gather: gather, Watch: []string{relay.Name}}
	var runner *projection.Runner
	if relayOpts.URL != "" {
		var r *relay.Relay
		relayOpts.Reveal = revealer(keys)
		r, runner, err = startRelay(ctx, store, reg, relayOpts, metrics, ropts, orderview.Projections()...)
		if err != nil {
			return fmt.Errorf("set up read models and relay: %w", err)
		}
		defer r.Close()
		log.Info("relaying", "nats", relay.Redact(relayOpts.URL), "stream", relay.StreamName)
	} else {
		runner, err = projection.New(store, ropts, orderview.Projections()...)
		if err != nil {
			return err
		}
		if err := runner.Setup(ctx); err != nil {
			return fmt.Errorf("set up read models: %w", err)
		}
	}

	// Projections run until runCtx ends; a cancelled batch rolls back, so
	// they stop at their last committed checkpoint.
	runCtx, stopRunner := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := runner.Run(runCtx); err != nil {
			log.Error("projections stopped", "error", err)
		}
	}()
	// The sealer seals the log at least every second while events arrive
	// (on PostgreSQL, in the one process holding its lease).
	sealer := seal.New(store, seal.Options{Key: key, Logger: log})
	wg.Add(1)
	go func() {
		defer wg.Done()
		sealer.Run(runCtx)
	}()
	if key != nil {
		log.Info("seals are signed", "key_id", audit.KeyID(key.Public().(ed25519.PublicKey)))
	}
	stopProjections := func() {
		stopRunner()
		wg.Wait()
		log.Info("projections and sealer stopped")
	}

	h, err := newHandler(store, keys, replicas, reg, runner, metrics, a, limits, log)
	if err != nil {
		stopProjections()
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		stopProjections()
		return err
	}
	// ReadTimeout bounds the body too, yet does not cut a request that
	// waits once its body is read: the server lifts the read deadline
	// then. The handler starts WriteTimeout afresh when its answer starts.
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: limits.readHeader,
		ReadTimeout:       limits.read,
		WriteTimeout:      limits.write,
		IdleTimeout:       limits.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Event streams never finish by themselves: Shutdown ends them.
	srv.RegisterOnShutdown(h.EndStreams)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(httpapi.LimitListener(ln, limits.maxConns)) }()
	log.Info("listening", "addr", ln.Addr().String(), "auth", len(a.tokens) > 0 || a.jwt != nil)
	if m.Ready != nil {
		m.Ready(ln.Addr().String())
	}

	select {
	case err = <-served: // the listener failed
	case <-ctx.Done():
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		err = srv.Shutdown(sctx)
		cancel()
		if err != nil {
			err = fmt.Errorf("shutdown: %w", err)
		}
	}
	if cerr := h.Close(); cerr != nil && err == nil {
		err = cerr
	}
	stopProjections()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// replicaFlags are serve's --replica and --replica-max-lag.
type replicaFlags struct {
	urls   []string
	maxLag time.Duration
}

// openReplicas opens the --replica standbys of a PostgreSQL store. They
// need not be up: one that is down or behind serves no reads until it
// catches up.
func openReplicas(ctx context.Context, store storeurl.Store, rf replicaFlags, log *slog.Logger) ([]*pgstore.Replica, error) {
	if len(rf.urls) == 0 {
		return nil, nil
	}
	primary, ok := store.(*pgstore.Store)
	if !ok {
		return nil, usagef("--replica needs a PostgreSQL --store (a streaming-replication standby of it)")
	}
	var out []*pgstore.Replica
	for _, raw := range rf.urls {
		rl, err := storeurl.Parse(raw)
		if err == nil && rl.Kind != storeurl.Postgres {
			err = fmt.Errorf("--replica %s: want a postgres:// URL", storeurl.Redact(raw))
		}
		if err == nil && rl.Schema != "" && rl.Schema != primary.Schema() {
			err = fmt.Errorf("--replica %s: schema %s differs from the store's (%s)", storeurl.Redact(raw), rl.Schema, primary.Schema())
		}
		var r *pgstore.Replica
		if err == nil {
			r, err = pgstore.OpenReplica(ctx, rl.URL, primary, pgstore.ReplicaOptions{MaxLag: rf.maxLag, Logger: log})
		}
		if err != nil {
			for _, r := range out {
				r.Close()
			}
			return nil, &usageError{err}
		}
		log.Info("replica open", "replica", r.Name(), "max_lag", rf.maxLag)
		out = append(out, r)
	}
	return out, nil
}
