package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle/personal"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	actorKey
)

// anonymous is the actor of requests made with auth off.
const anonymous = "anonymous"

// actor returns who made the request: the token's name or the JWT's sub
// (see authorize), or anonymous.
func actor(ctx context.Context) string {
	if a, _ := ctx.Value(actorKey).(string); a != "" {
		return a
	}
	return anonymous
}

// requestID returns the request's id, or "" outside a request.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// newRequestID returns 16 random bytes in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// validRequestID accepts a caller's X-Request-Id only when it is short and
// plain, because it ends up in logs and response headers.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// recorder remembers the status and size of a response for logs and
// metrics, and starts the write deadline when the response starts.
type recorder struct {
	http.ResponseWriter
	status       int
	bytes        int64
	writeTimeout time.Duration
	// personal reveals personal fields in what is written (nil: none);
	// ctx is the request's (a recorder lives exactly as long as its
	// request, and Write has no other way to get it); log says why a
	// response was cut.
	personal Personal
	ctx      context.Context
	log      *slog.Logger
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
		rec.startWrite()
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
		rec.startWrite()
	}
	// Only successful answers hold personal data; an error may quote the
	// request (a path, a field), which must not reveal a token sent in it.
	if rec.personal != nil && rec.status < 400 && bytes.Contains(b, []byte(personal.Prefix)) {
		// Every body is written whole (a page, an event, a timeline), so
		// no token is split between two writes.
		ct := rec.Header().Get("Content-Type")
		out, err := rec.personal.Reveal(rec.ctx, b, !strings.HasPrefix(ct, "text/plain"))
		if err != nil {
			// The status is sent already: cut the response rather than
			// send personal data unrevealed or half a body.
			rec.log.LogAttrs(rec.ctx, slog.LevelError, "reveal personal data", slog.Any("error", err))
			panic(http.ErrAbortHandler)
		}
		if _, err := rec.ResponseWriter.Write(out); err != nil {
			return 0, err
		}
		rec.bytes += int64(len(out))
		return len(b), nil
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// startWrite gives the response writeTimeout from now: whatever the
// handler waited for before answering does not count against it.
func (rec *recorder) startWrite() {
	_ = http.NewResponseController(rec.ResponseWriter).SetWriteDeadline(time.Now().Add(rec.writeTimeout))
}

// ServeHTTP runs every request through the outer layers: request id,
// panic recovery, access log and metrics, the Host check when auth is
// off, then the mux. Auth, media type and body limits are per route (see
// handle).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		id = newRequestID()
	}
	w.Header().Set("X-Request-Id", id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
	rec := &recorder{ResponseWriter: w, writeTimeout: s.opts.WriteTimeout, personal: s.opts.Personal, ctx: r.Context(), log: s.log}
	s.metrics.inflight.Inc()
	defer func() {
		s.metrics.inflight.Dec()
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic",
				slog.String("request_id", id), slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			if rec.status == 0 {
				writeProblem(rec, r, newError(http.StatusInternalServerError, typeInternal,
					"internal error; the server log has the details under this request id"))
			}
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		// Labels come from bounded sets, never from what the client sent:
		// a known method or "other", a route pattern or "unmatched", and
		// a status code this server chose.
		method := methodLabel(r.Method)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		s.metrics.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
		s.metrics.duration.WithLabelValues(method, route).Observe(elapsed.Seconds())
		// Never the Authorization header, nor the query (it may hold ids
		// a log reader need not see twice): the route and path suffice.
		s.log.LogAttrs(r.Context(), accessLevel(status), "request",
			slog.String("request_id", id),
			slog.String("method", method),
			slog.String("route", route),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", elapsed),
			slog.String("remote", r.RemoteAddr),
		)
	}()
	if !s.auth.enabled() && !loopbackHost(r.Host) {
		writeProblem(rec, r, newError(http.StatusMisdirectedRequest, typeMisdirected,
			"without auth this server answers only requests for localhost, 127.0.0.1 or [::1]"))
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// loopbackHost reports whether a request's Host names the loopback
// interface: localhost, 127.0.0.1 or [::1], with any port. Without auth
// it is what keeps a web page from reaching the server through a domain
// that resolves to 127.0.0.1 (DNS rebinding): the browser sends that
// domain as the Host.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return strings.EqualFold(host, "localhost") || host == "127.0.0.1" || host == "::1"
}

// checkMediaType refuses a request body that is not JSON. A web page can
// make a browser send text/plain, a form or a typeless body to any site
// without asking first (no CORS preflight); it cannot do so for
// application/json. Requests without a body pass.
func checkMediaType(r *http.Request) *apiError {
	if r.ContentLength == 0 {
		return nil
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil && mt == "application/json" {
		cs, ok := params["charset"]
		if len(params) == 0 || len(params) == 1 && ok && strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	return newError(http.StatusUnsupportedMediaType, typeMediaType,
		"the request body must be JSON, sent as Content-Type: application/json")
}

// methodLabel is method when it is one of HTTP's own, else "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// accessLevel is the level of a request's access-log line. Successes are
// Debug: under load they are thousands of lines a second that /metrics
// already counts by route, status and duration, and a command's own
// events carry its request id (correlation_id); formatting and writing
// them took about 3% of the server's CPU under W8. Client errors are Info
// and server errors Warn, so that the lines worth reading stand out.
// --log-level debug logs every request.
func accessLevel(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelWarn
	case status >= 400:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// handle registers h for pattern behind the role check. Unmatched requests
// never reach it; see notFound in routes.
func (s *Server) handle(pattern string, need Role, h func(http.ResponseWriter, *http.Request) error) {
	s.register(route{pattern: pattern, role: need}, h)
}

// get registers h for GET pattern behind the role check, taking exactly the
// query parameters params, each at most once (checkQuery).
func (s *Server) get(pattern string, need Role, h func(http.ResponseWriter, *http.Request) error, params ...string) {
	s.register(route{pattern: "GET " + pattern, role: need, query: params, strictQuery: true}, func(w http.ResponseWriter, r *http.Request) error {
		if err := checkQuery(r, params); err != nil {
			return err
		}
		return h(w, r)
	})
}

func (s *Server) register(rt route, h func(http.ResponseWriter, *http.Request) error) {
	s.routes = append(s.routes, rt)
	need := rt.role
	s.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
		who, e := s.auth.authorize(r, need)
		if e != nil {
			writeProblem(w, r, e)
			return
		}
		if who != "" {
			r = r.WithContext(context.WithValue(r.Context(), actorKey, who))
		}
		if e := checkMediaType(r); e != nil {
			writeProblem(w, r, e)
			return
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}
