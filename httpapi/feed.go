package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/feed"
	"github.com/chronicle-es/chronicle/internal/eventjson"
)

// Feed limits and defaults (Options may change the last three).
const (
	// DefaultFeedLimit is the page size of GET /events without ?limit=.
	DefaultFeedLimit = 100
	// MaxFeedLimit is the largest ?limit= (400 beyond).
	MaxFeedLimit = 1000
	// maxFeedFilter bounds the values of types= and stream_types=.
	maxFeedFilter = 100

	DefaultFeedHeartbeat      = 15 * time.Second
	DefaultMaxFeedSubscribers = 256
	DefaultFeedPollInterval   = time.Second
)

// feedQuery is a parsed GET /events.
type feedQuery struct {
	after    chronicle.Checkpoint
	afterNow bool   // after=now: the head, resolved by resolve
	afterStr string // as given, or the encoded start of the log
	lastID   bool   // after came from Last-Event-ID
	opts     chronicle.ReadAllOptions
}

// resolve turns after=now into the head of the log as readers see it, and
// refuses (400) a checkpoint that is no stored event's: one forged, or of
// another store. A checkpoint beyond the head would read as an empty page
// until the log passed it, and then skip the events before it for good.
// s is the primary, which holds every event a replica could have served.
func (q *feedQuery) resolve(ctx context.Context, s chronicle.Store) error {
	if !q.afterNow {
		if q.after.IsZero() {
			return nil
		}
		ok, err := isCheckpoint(ctx, s, q.after)
		if err != nil || ok {
			return err
		}
		if q.lastID {
			return badRequest("Last-Event-ID: not a checkpoint of this store's log")
		}
		return badField("after", "not a checkpoint of this store's log")
	}
	h, err := s.Head(ctx)
	if err != nil {
		return err
	}
	q.after, q.afterNow = h.Checkpoint, false
	q.afterStr = feed.EncodeCheckpoint(q.after)
	return nil
}

// isCheckpoint reports whether cp is the checkpoint of a stored event that
// readers can see: the first event after the point just before it is that
// event.
func isCheckpoint(ctx context.Context, s chronicle.Store, cp chronicle.Checkpoint) (bool, error) {
	if cp.Position <= 0 {
		return false, nil
	}
	next, err := s.ReadAll(ctx, chronicle.Checkpoint{TxID: cp.TxID, Position: cp.Position - 1}, chronicle.ReadAllOptions{Limit: 1})
	if err != nil {
		return false, err
	}
	return len(next) == 1 && next[0].Checkpoint() == cp, nil
}

// parseFeedQuery checks every parameter's value: values the feed would not
// have produced are 400. The route refused unknown and repeated parameters
// already (checkQuery).
func parseFeedQuery(r *http.Request) (feedQuery, error) {
	q := feedQuery{opts: chronicle.ReadAllOptions{Limit: DefaultFeedLimit}}
	for name, vs := range r.URL.Query() {
		v := vs[0]
		switch name {
		case "after":
			if v == "now" { // not a checkpoint: those have 22 characters
				q.afterNow = true
				continue
			}
			cp, err := feed.ParseCheckpoint(v)
			if err != nil {
				return q, badField("after", "not a checkpoint this feed returned")
			}
			q.after = cp
		case "types", "stream_types":
			list, err := feedFilter(name, v)
			if err != nil {
				return q, err
			}
			if name == "types" {
				q.opts.EventTypes = list
			} else {
				q.opts.StreamTypes = list
			}
		case "limit":
			n, err := intParam(r, "limit", 1)
			if err != nil {
				return q, err
			}
			if n > MaxFeedLimit {
				return q, badField("limit", "at most %d", MaxFeedLimit)
			}
			q.opts.Limit = int(n)
		}
	}
	// Last-Event-ID is how an SSE client resumes (a browser's EventSource
	// sends it with the URL it first opened): it takes precedence.
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		cp, err := feed.ParseCheckpoint(v)
		if err != nil {
			return q, badRequest("Last-Event-ID: not a checkpoint this feed returned")
		}
		q.after, q.afterNow, q.lastID = cp, false, true
	}
	q.afterStr = feed.EncodeCheckpoint(q.after)
	return q, nil
}

// feedFilter parses a comma-separated list of names.
func feedFilter(name, v string) ([]string, error) {
	list := strings.Split(v, ",")
	if len(list) > maxFeedFilter {
		return nil, badField(name, "at most %d values", maxFeedFilter)
	}
	for _, s := range list {
		if err := chronicle.ValidateName(name, s); err != nil {
			return nil, badField(name, "%q: %v", s, err)
		}
		if name == "stream_types" && strings.Contains(s, "-") {
			return nil, badField(name, "%q: a stream type has no '-'", s)
		}
	}
	return list, nil
}

// feedPage is the JSON body of GET /events.
type feedPage struct {
	Events []feed.Event `json:"events"`
	// Next is the checkpoint to pass as after= for what follows.
	Next string `json:"next"`
}

// events answers GET /events: a page of the global log, or with Accept:
// text/event-stream a stream of it that follows new events.
func (s *Server) events(w http.ResponseWriter, r *http.Request, src *source) error {
	q, err := parseFeedQuery(r)
	if err != nil {
		return err
	}
	if err := q.resolve(r.Context(), s.opts.Store); err != nil {
		return err
	}
	if r.Method == http.MethodGet && acceptsEventStream(r) {
		if !r.URL.Query().Has("limit") {
			q.opts.Limit = MaxFeedLimit // a stream's read size, not a page's
		}
		return s.streamEvents(w, r, q, src)
	}
	page, err := src.store.ReadAll(r.Context(), q.after, q.opts)
	if err != nil {
		return err
	}
	body := feedPage{Events: s.feedEvents(page), Next: q.afterStr}
	if n := len(body.Events); n > 0 {
		body.Next = body.Events[n-1].Checkpoint
	}
	return writeJSON(w, http.StatusOK, body)
}

// feedEvents turns stored events into the feed's (see eventjson: the
// relay publishes the same JSON).
func (s *Server) feedEvents(page []chronicle.RecordedEvent) []feed.Event {
	return eventjson.Events(page, s.opts.Upcaster)
}

// acceptsEventStream reports whether the client asked for Server-Sent
// Events.
func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// The re-reads after a notification, as projection runners do them: on
// PostgreSQL a committed event stays invisible to ReadAll while an older
// transaction is still open, and no second notification comes when it
// becomes visible.
const (
	feedChaseFirst = 2 * time.Millisecond
	feedChaseMax   = 256 * time.Millisecond
)

// streamEvents serves the feed as Server-Sent Events until the client goes
// away, the server shuts down (EndStreams) or the store fails: every event
// after q.after once, in the log's read order, then each new one as it
// commits. A stream behind reads the store itself (the replica it is
// served from, if any); once caught up it
// follows the server's feedTail, which reads each new event once for all
// streams.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, q feedQuery, src *source) error {
	if n := s.feedSubscribers.Add(1); n > int64(s.opts.MaxFeedSubscribers) {
		s.feedSubscribers.Add(-1)
		e := newError(http.StatusServiceUnavailable, typeUnavailable, "too many feed subscribers; retry shortly")
		e.header = http.Header{"Retry-After": {"5"}}
		return e
	}
	s.metrics.feedSubscribers.Inc()
	defer func() {
		s.feedSubscribers.Add(-1)
		s.metrics.feedSubscribers.Dec()
	}()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()

	// Before the first read, so that the tail starts no later than it.
	s.feedTail.acquire()
	defer s.feedTail.release()
	cp := q.after
	// The first page is read before answering, so that a store that is
	// down is a 503 rather than an empty stream.
	page, err := src.store.ReadAll(ctx, cp, q.opts)
	if err != nil {
		return err
	}
	// Once started, a stream read from a replica moves to the primary when
	// the replica fails or falls behind: checkpoints are the same on both.
	store := func() chronicle.Store {
		if src.replica != nil && !src.replica.Health.Usable() {
			src = s.primary()
		}
		return src.store
	}
	readAll := func(cp chronicle.Checkpoint) ([]chronicle.RecordedEvent, error) {
		page, err := store().ReadAll(ctx, cp, q.opts)
		if err != nil && src.replica != nil && ctx.Err() == nil {
			s.retryOnPrimary(r, src, err)
			src = s.primary()
			page, err = src.store.ReadAll(ctx, cp, q.opts)
		}
		return page, err
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // proxies: pass each event on at once
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)

	// scan is where the next read starts. It is the last event sent, or
	// further on with filters: events nobody asked for are not read again.
	scan := cp
	want := feedFilterFunc(q.opts)
	var buf bytes.Buffer
	heartbeat := time.NewTimer(s.opts.FeedHeartbeat)
	defer heartbeat.Stop()
	write := func() error {
		// Each write gets WriteTimeout of its own: the stream has no end.
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		buf.Reset()
		heartbeat.Reset(s.opts.FeedHeartbeat)
		return rc.Flush()
	}
	if write() != nil { // the headers, at once
		return nil
	}
	var head chronicle.Head
	for {
		// Behind the tail: read the store.
		if len(page) > 0 {
			for _, e := range s.feedEvents(page) {
				writeSSE(&buf, e)
			}
			if write() != nil {
				return nil // the client went away, or reads too slowly
			}
			scan = page[len(page)-1].Checkpoint()
		} else if scan.Before(head.Checkpoint) {
			// An empty filtered read after taking head proves that no
			// wanted event comes before head.
			scan = head.Checkpoint
		}
		if len(page) < q.opts.Limit {
			// Caught up with the store: follow the tail.
			if err = s.followTail(ctx, &buf, write, heartbeat, &scan, want, q.opts.Limit); err != nil || ctx.Err() != nil {
				break
			}
		}
		head = chronicle.Head{}
		if want != nil {
			if head, err = store().Head(ctx); err != nil {
				break
			}
		}
		if page, err = readAll(scan); err != nil {
			break
		}
	}
	if err != nil && err != errClientGone && ctx.Err() == nil {
		// The headers are out: end the stream; the client resumes with
		// Last-Event-ID once the store is back.
		s.log.LogAttrs(ctx, slog.LevelWarn, "feed stream ended by a store error",
			slog.String("request_id", requestID(ctx)), slog.String("error", err.Error()))
	}
	return nil
}

// errClientGone ends a stream whose client went away or reads too slowly.
var errClientGone = errors.New("feed client gone")

// followTail sends the tail's events after *scan that want accepts (all
// when nil), advancing *scan past every event it looked at, with
// heartbeats when idle. It returns nil when the stream fell behind the
// tail (read the store), errClientGone when a write failed, a store error
// that stopped the tail, or when ctx ends.
func (s *Server) followTail(ctx context.Context, buf *bytes.Buffer, write func() error, heartbeat *time.Timer,
	scan *chronicle.Checkpoint, want func(tailEvent) bool, limit int) error {
	for {
		evs, behind, change, err := s.feedTail.next(*scan, limit)
		switch {
		case err != nil:
			return err
		case behind:
			return nil
		case len(evs) > 0:
			for _, e := range evs {
				if want == nil || want(e) {
					buf.Write(e.sse)
				}
			}
			*scan = evs[len(evs)-1].cp
			if buf.Len() > 0 && write() != nil {
				return errClientGone
			}
			continue
		}
		select {
		case <-change:
		case <-heartbeat.C:
			buf.WriteString(": heartbeat\n\n")
			if write() != nil {
				return errClientGone
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// feedFilterFunc returns whether a tail event passes the filters of opts;
// nil when there are none.
func feedFilterFunc(opts chronicle.ReadAllOptions) func(tailEvent) bool {
	if len(opts.EventTypes)+len(opts.StreamTypes) == 0 {
		return nil
	}
	return func(e tailEvent) bool {
		return (len(opts.EventTypes) == 0 || slices.Contains(opts.EventTypes, e.typ)) &&
			(len(opts.StreamTypes) == 0 || slices.Contains(opts.StreamTypes, e.streamType))
	}
}

// writeSSE appends e as one Server-Sent Event: id the checkpoint, event
// the type, data the JSON on one line (JSON has no raw newlines, and the
// type no control characters).
func writeSSE(buf *bytes.Buffer, e feed.Event) {
	b, _ := json.Marshal(e) // cannot fail: the data is stored JSON
	buf.WriteString("id: ")
	buf.WriteString(e.Checkpoint)
	buf.WriteString("\nevent: ")
	buf.WriteString(e.Type)
	buf.WriteString("\ndata: ")
	buf.Write(b)
	buf.WriteString("\n\n")
}

// EndStreams ends the feed's event streams, as the server shutting down
// must: http.Server.Shutdown waits for requests to finish, and a stream
// never does. Register it with http.Server.RegisterOnShutdown. Clients
// resume where they were, on this server or another.
func (s *Server) EndStreams() { s.endStreams() }
