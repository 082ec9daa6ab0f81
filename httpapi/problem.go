package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
)

// Problem is an RFC 9457 problem details body. Every error the API answers
// is one, as application/problem+json.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Instance is the request path the problem occurred at.
	Instance string `json:"instance,omitempty"`
	// RequestID matches the X-Request-Id header and the server's logs.
	RequestID string `json:"request_id,omitempty"`
	// CurrentStatus is the order's status when a command broke a rule (409).
	CurrentStatus string `json:"current_status,omitempty"`
	// CurrentVersion is the order's version when If-Match did not hold (412).
	CurrentVersion *int64 `json:"current_version,omitempty"`
	// Field names the request field that is wrong (400), when known.
	Field string `json:"field,omitempty"`
}

// Problem types: stable, non-resolvable URIs (RFC 9457 allows them) that
// clients can switch on.
const (
	typeBadRequest     = "urn:chronicle:problem:bad-request"
	typeUnauthorized   = "urn:chronicle:problem:unauthorized"
	typeForbidden      = "urn:chronicle:problem:forbidden"
	typeNotFound       = "urn:chronicle:problem:not-found"
	typeMethod         = "urn:chronicle:problem:method-not-allowed"
	typeRuleViolation  = "urn:chronicle:problem:rule-violation"
	typeAlreadyExists  = "urn:chronicle:problem:already-exists"
	typeConflict       = "urn:chronicle:problem:conflict"
	typePrecondition   = "urn:chronicle:problem:precondition-failed"
	typeTooLarge       = "urn:chronicle:problem:payload-too-large"
	typeMediaType      = "urn:chronicle:problem:unsupported-media-type"
	typeMisdirected    = "urn:chronicle:problem:misdirected-request"
	typeIdempotencyKey = "urn:chronicle:problem:idempotency-key-reused"
	typeTimeout        = "urn:chronicle:problem:timeout"
	typeUnavailable    = "urn:chronicle:problem:unavailable"
	typeInternal       = "urn:chronicle:problem:internal"
)

// apiError is an error a handler returns to be answered as a problem. Its
// detail is meant for the client; anything else a handler returns is an
// internal error, logged and answered with a generic 500.
type apiError struct {
	p Problem
	// header to set on the problem response (WWW-Authenticate, Allow, ...).
	header http.Header
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.p.Status, e.p.Title, e.p.Detail) }

func newError(status int, typ, detail string) *apiError {
	return &apiError{p: Problem{Type: typ, Title: http.StatusText(status), Status: status, Detail: detail}}
}

func badRequest(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, typeBadRequest, fmt.Sprintf(format, args...))
}

func badField(field, format string, args ...any) *apiError {
	e := badRequest("%s: %s", field, fmt.Sprintf(format, args...))
	e.p.Field = field
	return e
}

func notFound(format string, args ...any) *apiError {
	return newError(http.StatusNotFound, typeNotFound, fmt.Sprintf(format, args...))
}

// writeProblem answers p. The request id and instance are filled in here so
// that every problem carries them.
func writeProblem(w http.ResponseWriter, r *http.Request, e *apiError) {
	p := e.p
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	if p.RequestID == "" {
		p.RequestID = requestID(r.Context())
	}
	h := w.Header()
	h.Del("ETag")
	for k, v := range e.header {
		h[k] = v
	}
	b, err := json.Marshal(p)
	if err != nil { // cannot happen: strings and ints
		b = []byte(`{"type":"` + typeInternal + `","title":"Internal Server Error","status":500,"detail":"internal error"}`)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers err: an *apiError as itself, anything else as a 500
// whose cause is logged with the request id and never shown to the client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeProblem(w, r, ae)
		return
	}
	if r.Context().Err() != nil {
		// The client went away or the server is shutting down: nobody
		// reads this answer, and it is not a server fault worth an alarm.
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request abandoned",
			slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
		writeProblem(w, r, newError(http.StatusServiceUnavailable, typeUnavailable, "the request was cancelled"))
		return
	}
	if unavailable(err) {
		// Not this server's fault, and it passes: the store is down or
		// restarting. The client may retry the request as it is.
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "store unavailable",
			slog.String("request_id", requestID(r.Context())),
			slog.String("method", r.Method), slog.String("route", r.Pattern),
			slog.String("error", err.Error()))
		e := newError(http.StatusServiceUnavailable, typeUnavailable, "the store is unavailable; retry the request")
		e.header = http.Header{"Retry-After": {"1"}}
		writeProblem(w, r, e)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelError, "internal error",
		slog.String("request_id", requestID(r.Context())),
		slog.String("method", r.Method), slog.String("route", r.Pattern),
		slog.String("error", err.Error()))
	writeProblem(w, r, newError(http.StatusInternalServerError, typeInternal,
		"internal error; the server log has the details under this request id"))
}
