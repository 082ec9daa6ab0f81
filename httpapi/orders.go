package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/order"
)

// Orders is the write side the server drives: run a command on an order
// (load, decide, append) and load an order now or in the past.
// *aggregate.Repository[order.State, order.Command, order.Event] is one.
type Orders interface {
	OrderLoader
	Handle(ctx context.Context, id string, cmd order.Command, opts ...aggregate.CommandOption) (aggregate.Result[order.State], error)
}

// OrderLoader loads an order now or in the past: the read side of Orders.
type OrderLoader interface {
	Load(ctx context.Context, id string) (aggregate.Loaded[order.State], error)
	LoadVersion(ctx context.Context, id string, version int64) (aggregate.Loaded[order.State], error)
	LoadAsOf(ctx context.Context, id string, t time.Time) (aggregate.Loaded[order.State], error)
}

// command describes one command route.
type command struct {
	name    string // metrics label and log field
	created bool   // 201 and Location instead of 200
	// decode turns the request into the order id and the command.
	decode func(r *http.Request, body []byte) (string, order.Command, error)
}

// createRequest is the body of POST /orders: order.Create plus the
// optional client-chosen id.
type createRequest struct {
	OrderID    *string      `json:"order_id"`
	CustomerID string       `json:"customer_id"`
	Currency   string       `json:"currency"`
	Items      []order.Item `json:"items"`
	Total      *int64       `json:"total"`
}

// The command decoders. Each checks the path id and strictly decodes the
// body; the domain checks the values themselves (Decide: 400 via
// *order.InvalidError).

func decodeCreate(_ *http.Request, body []byte) (string, order.Command, error) {
	var req createRequest
	if err := decodeStrict(body, &req); err != nil {
		return "", nil, err
	}
	// Omitted, the server chooses the id; given, it must be valid: an
	// empty one is a client's mistake, not a request for a new id.
	id := newOrderID()
	if req.OrderID != nil {
		if id = *req.OrderID; id == "" {
			return "", nil, badField("order_id", "empty: omit it for the server to choose one")
		}
		if err := order.ValidID("order_id", id); err != nil {
			return "", nil, err
		}
	}
	return id, order.Create{CustomerID: req.CustomerID, Currency: req.Currency, Items: req.Items, Total: req.Total}, nil
}

func decodeBody[C order.Command](r *http.Request, body []byte) (string, order.Command, error) {
	id, err := pathOrderID(r)
	if err != nil {
		return "", nil, err
	}
	var c C
	if err := decodeStrict(body, &c); err != nil {
		return "", nil, err
	}
	return id, c, nil
}

func decodeRemoveItem(r *http.Request, body []byte) (string, order.Command, error) {
	id, err := pathOrderID(r)
	if err != nil {
		return "", nil, err
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		return "", nil, badRequest("DELETE takes no request body")
	}
	sku := r.PathValue("sku")
	if err := order.ValidID("sku", sku); err != nil {
		return "", nil, err
	}
	return id, order.RemoveItem{SKU: sku}, nil
}

func pathOrderID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := order.ValidID("order_id", id); err != nil {
		return "", err
	}
	return id, nil
}

// newOrderID returns "ord_" and a time-ordered unique id, so generated ids
// sort by creation.
func newOrderID() string {
	return "ord_" + strings.ReplaceAll(chronicle.NewEventID(), "-", "")
}

// commandRoute returns the handler of command c.
func (s *Server) commandRoute(c command) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error { return s.runCommand(w, r, c) }
}

// ifMatch is a parsed If-Match header (RFC 9110 section 13.1.1).
type ifMatch struct {
	any bool // *: the order exists, at any version
	// versions are the versions the listed strong tags name: "N" is the
	// ETag of version N, written as the API writes it (so "02" names none:
	// strong comparison is of the opaque string). Weak tags, and strong
	// ones that name no version, match nothing.
	versions []int64
}

// matches reports whether the order at version cur (0: no order) meets the
// precondition. A missing order has no entity tag, so nothing matches it,
// not even *.
func (m *ifMatch) matches(cur int64) bool {
	return cur > 0 && (m.any || slices.Contains(m.versions, cur))
}

// parseIfMatch returns the request's If-Match, nil when there is none. Its
// field lines form one list (RFC 9110 section 5.3): * alone, or entity tags
// separated by commas. Anything else, an empty value included, is 400.
func parseIfMatch(r *http.Request) (*ifMatch, error) {
	vals := r.Header.Values("If-Match")
	if len(vals) == 0 {
		return nil, nil
	}
	malformed := badField("If-Match", `want * or a list of entity tags such as "3" (the order's ETag)`)
	rest := strings.Join(vals, ",")
	if strings.Trim(rest, " \t") == "*" {
		return &ifMatch{any: true}, nil
	}
	m := &ifMatch{}
	tags := 0
	for {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		if rest[0] == ',' { // RFC 9110 section 5.6.1.2: empty list elements are ignored
			rest = rest[1:]
			continue
		}
		weak := strings.HasPrefix(rest, "W/")
		if weak {
			rest = rest[2:]
		}
		if rest == "" || rest[0] != '"' {
			return nil, malformed
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return nil, malformed
		}
		opaque := rest[1 : 1+end]
		for i := 0; i < len(opaque); i++ {
			// etagc: %x21 / %x23-7E / obs-text
			if c := opaque[i]; c < 0x21 || c == 0x7f {
				return nil, malformed
			}
		}
		rest = strings.TrimLeft(rest[end+2:], " \t")
		if rest != "" && rest[0] != ',' {
			return nil, malformed
		}
		tags++
		if n, err := strconv.ParseInt(opaque, 10, 64); !weak && err == nil && n > 0 && itoa(n) == opaque {
			m.versions = append(m.versions, n)
		}
	}
	if tags == 0 {
		return nil, malformed
	}
	return m, nil
}

// handleIf runs cmd on order id under the If-Match precondition pre (nil:
// none). One listed version is checked by the aggregate on the state it
// decides on. Anything else (*, several versions, tags naming none) is
// checked here on the loaded order first; then its version is expected
// (but for *: an order never ceases to exist). Either way a precondition
// that does not hold, or a race lost at append time, is a
// *chronicle.ConflictError, before any business rule.
func (s *Server) handleIf(ctx context.Context, id string, cmd order.Command, pre *ifMatch, opts []aggregate.CommandOption) (aggregate.Result[order.State], error) {
	switch {
	case pre == nil:
	case !pre.any && len(pre.versions) == 1:
		opts = append(opts, aggregate.ExpectVersion(pre.versions[0]))
	default:
		l, err := s.opts.Orders.Load(ctx, id)
		if err != nil && !errors.Is(err, aggregate.ErrNotFound) {
			return aggregate.Result[order.State]{}, err
		}
		if !pre.matches(l.Version) {
			stream, _ := order.StreamID(id) // id is valid
			// Expected says little here; the 412 shows the current version.
			return aggregate.Result[order.State]{Loaded: l}, &chronicle.ConflictError{Stream: stream, Expected: chronicle.StreamExists, Actual: l.Version}
		}
		if !pre.any {
			opts = append(opts, aggregate.ExpectVersion(l.Version))
		}
	}
	return s.opts.Orders.Handle(ctx, id, cmd, opts...)
}

// parseCorrelationID returns the request's X-Correlation-Id, or its request
// id when there is none. It is stored in every event the command appends,
// so it is held to what a request id may be: at most 128 of A-Z, a-z, 0-9,
// '-', '_', '.', ':'.
func parseCorrelationID(r *http.Request) (string, error) {
	vals := r.Header.Values("X-Correlation-Id")
	switch {
	case len(vals) == 0:
		return requestID(r.Context()), nil
	case len(vals) > 1:
		return "", badField("X-Correlation-Id", "given more than once")
	case !validRequestID(vals[0]):
		return "", badField("X-Correlation-Id", "want 1 to 128 of A-Z, a-z, 0-9, '-', '_', '.', ':'")
	}
	return vals[0], nil
}

// commandEventIDs is how many event ids a keyed command gets; an order
// command causes one event, the rest are spare.
const commandEventIDs = 4

// runCommand is every command route: decode, replay an idempotent retry,
// run the command, answer the new state.
func (s *Server) runCommand(w http.ResponseWriter, r *http.Request, c command) error {
	ctx := r.Context()
	w.Header().Set(sourceHeader, sourcePrimary) // a command's answer reads the primary
	start := time.Now()
	outcome := "error"
	defer func() {
		s.metrics.commands.WithLabelValues(c.name, outcome).Observe(time.Since(start).Seconds())
	}()

	pre, err := parseIfMatch(r)
	if err != nil {
		return err
	}
	key, err := parseIdempotencyKey(r)
	if err != nil {
		return err
	}
	corr, err := parseCorrelationID(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	id, cmd, err := c.decode(r, body)
	if err != nil {
		return mapDomainError(err)
	}

	// Who did what: the actor comes from the credentials alone, never from
	// anything the client sends, and no body field reaches metadata.
	meta := map[string]string{"actor": actor(ctx), "request_id": requestID(ctx), "correlation_id": corr}
	opts := []aggregate.CommandOption{}
	var hash, sent string
	if key != "" {
		// The hash covers the path as the client sent it: a create without
		// order_id hashes no id, so its retry matches.
		hash = requestHash(r.Method, r.Pattern, r.PathValue("id"), r.PathValue("sku"), body)
		sent = bytesHash(r.Method, r.Pattern, r.PathValue("id"), r.PathValue("sku"), body)
		if done, err := s.replay(w, r, c, key, hash, sent); done || err != nil {
			if done {
				outcome = "replayed"
			}
			return err
		}
		meta["idempotency_key"] = key
		meta["request_hash"] = hash
		ids := make([]string, commandEventIDs)
		for i := range ids {
			ids[i] = derivedEventID(key, i)
		}
		opts = append(opts, aggregate.EventIDs(ids...))
	}
	opts = append(opts, aggregate.Metadata(meta))

	res, err := s.handleIf(ctx, id, cmd, pre, opts)
	if key != "" && (err != nil || res.Replayed) {
		// A concurrent request with the same key may have won: its events
		// hold our ids (a replay, or ErrDuplicateEvent when it created
		// another order), or its effect makes ours break a rule. Either way
		// the answer is the first request's, or 422 for another request.
		if done, rerr := s.replay(w, r, c, key, hash, sent); done || rerr != nil {
			if done {
				outcome = "replayed"
			}
			return rerr
		}
		if err == nil {
			return errors.New("idempotent replay of key " + key + " found no event")
		}
	}
	if err != nil {
		var ce *chronicle.ConflictError
		if errors.As(err, &ce) {
			if pre != nil {
				s.metrics.conflicts.WithLabelValues("precondition_failed").Inc()
				return preconditionError(ce.Actual)
			}
			// Every retry lost a race: the client may simply try again.
			s.metrics.conflicts.WithLabelValues("exhausted").Inc()
			e := newError(http.StatusServiceUnavailable, typeConflict, "the order changed concurrently too often; retry the command")
			e.header = http.Header{"Retry-After": {"1"}}
			return e
		}
		var nf *order.NotFoundError
		if errors.As(err, &nf) && nf.OrderID == "" && nf.SKU == "" {
			return notFound("order %s not found", id)
		}
		return withVersion(mapDomainError(err), res.Version)
	}
	if res.Attempts > 1 {
		s.metrics.conflicts.WithLabelValues("retried").Add(float64(res.Attempts - 1))
	}
	outcome = "ok"
	return writeState(w, c, res.State)
}

func preconditionError(current int64) error {
	detail := "If-Match names no entity tag of the order: its ETag is \"" + itoa(current) + "\""
	if current == 0 {
		detail = "If-Match cannot hold: the order does not exist"
	}
	e := newError(http.StatusPreconditionFailed, typePrecondition, detail)
	e.p.CurrentVersion = &current
	// The order's current version, so a client can re-read and retry.
	return withVersion(e, current)
}

// withVersion gives a refusal that depends on an existing order's state
// (409, 404 for an unknown item, 412) the version headers every response
// about one order carries: version v is what it reflects. A missing order
// (v 0) has no version to show.
func withVersion(err error, v int64) error {
	var e *apiError
	if v <= 0 || !errors.As(err, &e) {
		return err
	}
	switch e.p.Status {
	case http.StatusConflict, http.StatusNotFound, http.StatusPreconditionFailed:
		if e.header == nil {
			e.header = http.Header{}
		}
		e.header.Set("X-Event-Version", itoa(v))
		e.header.Set("ETag", `"`+itoa(v)+`"`)
	}
	return err
}

// writeState answers a command's new state with its version headers.
func writeState(w http.ResponseWriter, c command, st order.State) error {
	status := http.StatusOK
	if c.created {
		status = http.StatusCreated
		w.Header().Set("Location", "/orders/"+st.OrderID)
	}
	setVersion(w, st.Version)
	return writeJSON(w, status, st)
}

// setVersion sets the headers every response about one order carries.
func setVersion(w http.ResponseWriter, v int64) {
	w.Header().Set("X-Event-Version", itoa(v))
	w.Header().Set("ETag", `"`+itoa(v)+`"`)
}

// replay answers a request whose Idempotency-Key is already in the log: the
// first response again (done), or 422 when the key came with another
// request. It answers nothing when the key is new.
// hash is the request's (requestHash), sent its body's bytes' (bytesHash).
func (s *Server) replay(w http.ResponseWriter, r *http.Request, c command, key, hash, sent string) (done bool, err error) {
	ctx := r.Context()
	first, err := s.opts.Store.EventByID(ctx, derivedEventID(key, 0))
	if errors.Is(err, chronicle.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if m := readIdemMeta(first.Metadata); m.IdempotencyKey != key || m.RequestHash != hash && m.RequestHash != sent {
		return false, newError(http.StatusUnprocessableEntity, typeIdempotencyKey,
			"this Idempotency-Key was used with a different request; use a new key for a new request")
	}
	// The first response showed the state after the command's last event.
	last := first.Version
	for i := 1; ; i++ {
		e, err := s.opts.Store.EventByID(ctx, derivedEventID(key, i))
		if errors.Is(err, chronicle.ErrNotFound) {
			break
		}
		if err != nil {
			return false, err
		}
		if e.StreamID != first.StreamID {
			break
		}
		last = e.Version
	}
	id, ok := order.IDFromStream(first.StreamID)
	if !ok {
		return false, errors.New("idempotency key " + key + " names an event of stream " + first.StreamID)
	}
	l, err := s.opts.Orders.LoadVersion(ctx, id, last)
	if err != nil {
		return false, err
	}
	s.metrics.replays.Inc()
	w.Header().Set("Idempotent-Replayed", "true")
	return true, writeState(w, c, l.State)
}

// mapDomainError turns the order package's typed errors into problems;
// anything else stays an internal error.
func mapDomainError(err error) error {
	var ie *order.InvalidError
	var re *order.RuleError
	var nf *order.NotFoundError
	var ae *order.AlreadyExistsError
	var ce *chronicle.InvalidError
	switch {
	case errors.As(err, &ie):
		return badField(ie.Field, "%s", ie.Reason)
	case errors.As(err, &re):
		e := newError(http.StatusConflict, typeRuleViolation, "cannot "+re.Command+" an order that is "+string(re.Status)+": "+re.Reason)
		e.p.CurrentStatus = string(re.Status)
		return e
	case errors.As(err, &ae):
		e := newError(http.StatusConflict, typeAlreadyExists, "order "+ae.OrderID+" already exists")
		e.p.CurrentStatus = string(ae.Status)
		return e
	case errors.As(err, &nf):
		if nf.SKU != "" {
			return notFound("order %s has no item %q", nf.OrderID, nf.SKU)
		}
		if nf.OrderID != "" {
			return notFound("order %s not found", nf.OrderID)
		}
		return notFound("order not found")
	case errors.As(err, &ce):
		// Input the store refused before writing (e.g. an event too large).
		if errors.Is(err, chronicle.ErrEventTooLarge) {
			return newError(http.StatusRequestEntityTooLarge, typeTooLarge, "the order's event would exceed the store's size limit")
		}
		return badRequest("the store refused the input: %s: %s", ce.Field, ce.Reason)
	}
	return err
}
