package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options are the Server's dependencies and limits. Store, Orders, Views and
// Projections are required; the rest have defaults.
type Options struct {
	// Store is the event store: idempotency look-ups, timelines, readiness.
	// When it is also a chronicle.SealStore, GET /audit/... list its seals
	// and keys and /metrics shows how far sealing lags (else they are 404).
	Store chronicle.Store
	// Upcaster brings stored events to their current shape for timelines;
	// *upcast.Registry (order.NewRegistry()) is the one to pass. Nil shows
	// events as stored.
	Upcaster Upcaster
	// Orders is the write side: commands and time travel.
	Orders Orders
	// Views answers the read-model queries.
	Views Views
	// Replicas, when set, take the reads (GET of orders, lists, stats,
	// timelines, time travel and the event feed) while one is usable;
	// commands and their answers stay on the primary. Each read's answer
	// says where it was served in X-Chronicle-Source: primary or replica.
	Replicas []Replica
	// Projections reports on and rebuilds read models, and lets
	// ?min_version= wait for them; *projection.Runner is one.
	Projections Projections

	// Logger receives access logs and internal errors. Default: discard.
	Logger *slog.Logger
	// Registry receives the server's metrics and is what /metrics serves.
	// Default: a new registry with only the server's metrics.
	Registry *prometheus.Registry
	// Tokens turns auth on: every route but /healthz, /readyz and
	// /metrics then needs a bearer token with a sufficient role. Empty:
	// auth off (cmd/chronicle then binds to loopback only; see
	// CheckListenAddr).
	Tokens []Token
	// JWT, when set, also accepts bearer JWTs of an identity provider
	// (and turns auth on by itself).
	JWT *JWTOptions
	// MaxBodyBytes limits request bodies (413 beyond). Default 1 MiB.
	MaxBodyBytes int64
	// MinVersionWait bounds how long ?min_version= waits for the read
	// model (504 beyond). Default 5 s.
	MinVersionWait time.Duration
	// MaxMinVersionWaiters bounds the ?min_version= requests waiting at
	// once (503 with Retry-After beyond). Default 1,000.
	MaxMinVersionWaiters int
	// ReadyTimeout bounds each readiness check. Default 2 s.
	ReadyTimeout time.Duration
	// WriteTimeout bounds writing a response, from its first byte; a
	// client that reads more slowly is cut. Time spent before the answer
	// (?min_version= or a rebuild's ?wait=true) does not count, unlike
	// with http.Server.WriteTimeout alone. A handler that streams would
	// push the deadline on with http.ResponseController.SetWriteDeadline
	// at each write. Default 30 s. Set http.Server.WriteTimeout to the
	// same, so that the connection has a write deadline outside handlers
	// too, and bound request bodies with http.Server.ReadTimeout (Go lifts
	// that deadline once the body is read, so it does not cut waits).
	WriteTimeout time.Duration
	// FeedHeartbeat is the longest an event stream of GET /events stays
	// silent: a comment line is sent when no event was. Default 15 s.
	FeedHeartbeat time.Duration
	// FeedPollInterval is how often an idle event stream reads the log
	// even without a notification from the store (appends by another
	// process on SQLite). Default 1 s.
	FeedPollInterval time.Duration
	// MaxFeedSubscribers bounds the event streams open at once (503 with
	// Retry-After beyond). Each holds a connection. Default 256.
	MaxFeedSubscribers int
	// Console serves the web console: GET / and GET /console/... When nil,
	// GET / answers a short text pointing at the API.
	Console http.Handler
	// Personal reveals the personal fields of every response (they are
	// stored encrypted: see package personal) and serves DELETE
	// /customers/{customer_id}/personal-data. Nil: bodies go out as
	// stored.
	Personal Personal
}

// DefaultWriteTimeout is Options.WriteTimeout when left 0: time for a
// large list page at 35 KiB/s.
const DefaultWriteTimeout = 30 * time.Second

// Projections is what the server needs of the projection runner.
// *projection.Runner implements it.
type Projections interface {
	Status(ctx context.Context) ([]projection.Status, error)
	WaitForStream(ctx context.Context, name, stream string, version int64) error
	WaitFor(ctx context.Context, name string, at chronicle.Checkpoint) error
	Rebuild(ctx context.Context, name string, progress func(projection.Progress)) error
}

// Server is the HTTP API. It is an http.Handler; its zero value is not
// usable: create it with New.
type Server struct {
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	auth    *authenticator
	metrics *metrics
	routes  []route
	// rebuilds runs POST /projections/{name}/rebuild past the request.
	rebuilds *background
	// minVersionWaiters counts the ?min_version= requests waiting.
	minVersionWaiters atomic.Int64
	// feedSubscribers counts the event streams open.
	feedSubscribers atomic.Int64
	// nextReplica takes the replicas in turn.
	nextReplica atomic.Uint64
	// streams ends when the event streams must (EndStreams, Close).
	streams    context.Context
	endStreams context.CancelFunc
	// feedTail reads new events once for all event streams.
	feedTail *feedTail
}

// route is a registered pattern and the role it needs; the OpenAPI test
// walks them.
type route struct {
	pattern string
	role    Role
	// query lists the parameters a route registered with get takes
	// (strictQuery); others take any, unchecked.
	query       []string
	strictQuery bool
}

// New returns a Server with every route of API.md.
// Errors: a required dependency missing, or metrics that cannot register.
func New(opts Options) (*Server, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("httpapi: Options.Store is required")
	case opts.Orders == nil:
		return nil, errors.New("httpapi: Options.Orders is required")
	case opts.Views == nil:
		return nil, errors.New("httpapi: Options.Views is required")
	case opts.Projections == nil:
		return nil, errors.New("httpapi: Options.Projections is required")
	}
	for _, rep := range opts.Replicas {
		if rep.Store == nil || rep.Orders == nil || rep.Views == nil || rep.Health == nil {
			return nil, errors.New("httpapi: a Replica needs Store, Orders, Views and Health")
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MinVersionWait <= 0 {
		opts.MinVersionWait = 5 * time.Second
	}
	if opts.MaxMinVersionWaiters <= 0 {
		opts.MaxMinVersionWaiters = DefaultMaxMinVersionWaiters
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 2 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.FeedHeartbeat <= 0 {
		opts.FeedHeartbeat = DefaultFeedHeartbeat
	}
	if opts.FeedPollInterval <= 0 {
		opts.FeedPollInterval = DefaultFeedPollInterval
	}
	if opts.MaxFeedSubscribers <= 0 {
		opts.MaxFeedSubscribers = DefaultMaxFeedSubscribers
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("httpapi: metrics: %w", err)
	}
	if err := opts.Registry.Register(newProjectionCollector(opts.Projections, opts.ReadyTimeout, opts.Logger)); err != nil {
		return nil, fmt.Errorf("httpapi: metrics: %w", err)
	}
	if ss, ok := opts.Store.(chronicle.SealStore); ok {
		if err := opts.Registry.Register(newSealCollector(opts.Store, ss, opts.ReadyTimeout, opts.Logger)); err != nil {
			return nil, fmt.Errorf("httpapi: metrics: %w", err)
		}
	}
	var jwt *jwtVerifier
	if opts.JWT != nil {
		if jwt, err = newJWTVerifier(*opts.JWT, opts.Logger); err != nil {
			return nil, fmt.Errorf("httpapi: %w", err)
		}
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		mux:      http.NewServeMux(),
		auth:     newAuthenticator(opts.Tokens, jwt, opts.Logger),
		metrics:  m,
		rebuilds: newBackground(),
	}
	s.streams, s.endStreams = context.WithCancel(context.Background())
	s.feedTail = newFeedTail(s)
	s.registerRoutes()
	return s, nil
}

// Close ends the event streams and waits for background work the server
// started (read-model rebuilds) after cancelling it. Call it after
// http.Server.Shutdown.
func (s *Server) Close() error {
	s.endStreams()
	s.rebuilds.stop()
	return nil
}

// AuthEnabled reports whether tokens or an identity provider are
// configured.
func (s *Server) AuthEnabled() bool { return s.auth.enabled() }

func (s *Server) registerRoutes() {
	// Commands: write role.
	s.handle("POST /orders", RoleWrite, s.commandRoute(command{name: "create", created: true, decode: decodeCreate}))
	s.handle("POST /orders/{id}/items", RoleWrite, s.commandRoute(command{name: "add_item", decode: decodeBody[order.AddItem]}))
	s.handle("DELETE /orders/{id}/items/{sku}", RoleWrite, s.commandRoute(command{name: "remove_item", decode: decodeRemoveItem}))
	s.handle("PUT /orders/{id}/shipping-address", RoleWrite, s.commandRoute(command{name: "change_shipping_address", decode: decodeBody[order.ChangeShippingAddress]}))
	s.handle("POST /orders/{id}/payments", RoleWrite, s.commandRoute(command{name: "pay", decode: decodeBody[order.Pay]}))
	s.handle("POST /orders/{id}/shipments", RoleWrite, s.commandRoute(command{name: "ship", decode: decodeBody[order.Ship]}))
	s.handle("POST /orders/{id}/delivery", RoleWrite, s.commandRoute(command{name: "deliver", decode: decodeBody[order.Deliver]}))
	s.handle("POST /orders/{id}/cancellation", RoleWrite, s.commandRoute(command{name: "cancel", decode: decodeBody[order.Cancel]}))

	// Queries: read role, served by a replica when one is usable. Every
	// GET route of the API names the query parameters it takes (get).
	s.get("/orders", RoleRead, s.read(s.listOrders), "status", "customer_id", "limit", "cursor")
	s.get("/orders/{id}", RoleRead, s.read(s.getOrder), "min_version", "version", "as_of")
	s.get("/orders/{id}/events", RoleRead, s.read(s.orderEvents), "format")
	s.get("/stats/order-status", RoleRead, s.read(s.statusCounts), "at")
	s.get("/events", RoleRead, s.read(s.events), "after", "types", "stream_types", "limit")

	// Operations.
	s.handle("DELETE /customers/{customer_id}/personal-data", RoleAdmin, s.erasePersonalData)
	s.get("/audit/seals", RoleRead, s.listSeals, "after", "limit")
	s.get("/audit/seals/latest", RoleRead, s.latestSeal)
	s.get("/audit/public-keys", RoleRead, s.publicKeys)
	s.get("/projections", RoleRead, s.listProjections)
	s.handle("POST /projections/{name}/rebuild", RoleAdmin, s.rebuildProjection)
	s.get("/healthz", RoleNone, s.healthz)
	s.get("/readyz", RoleNone, s.readyz)
	s.get("/metrics", RoleNone, s.serveMetrics)
	s.get("/openapi.json", RoleRead, s.openAPI)
	// The console's page and assets hold no data, and a browser cannot send
	// a bearer token when it navigates: they load without auth, and the page
	// sends the token with every API call it makes. They take any query (a
	// link may carry tracking parameters; the page keeps its own state in
	// the fragment).
	s.handle("GET /{$}", RoleNone, s.console)
	s.handle("GET /console/{asset...}", RoleNone, s.console)

	// Everything else: problem+json 404 or 405 rather than the mux's text.
	s.mux.HandleFunc("/", s.unmatched)
}

// unmatched answers requests no route takes: 405 with Allow when the path
// exists under another method, else 404.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	r.Pattern = "" // the catch-all is not a route worth a metrics label
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := s.mux.Handler(probe); p != "" && p != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		if r.Method == http.MethodOptions || r.Method == http.MethodHead && contains(allow, http.MethodGet) {
			// HEAD of a GET route is served by the mux itself; OPTIONS gets the list.
			w.Header().Set("Allow", join(allow))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		e := newError(http.StatusMethodNotAllowed, typeMethod, r.Method+" is not allowed here; allowed: "+join(allow))
		e.header = http.Header{"Allow": {join(allow)}}
		writeProblem(w, r, e)
		return
	}
	writeProblem(w, r, notFound("no route for %s %s", r.Method, r.URL.Path))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func join(list []string) string {
	out := ""
	for i, v := range list {
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}}).ServeHTTP(w, r)
	return nil
}

// slogPrinter adapts the logger to promhttp's error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", slog.String("error", fmt.Sprint(v...))) }

func (s *Server) console(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Console == nil {
		if r.URL.Path != "/" {
			return notFound("no console is configured")
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("chronicle: the web console is not configured in this server.\nThe API is described at /openapi.json.\n"))
		return nil
	}
	s.opts.Console.ServeHTTP(w, r)
	return nil
}
