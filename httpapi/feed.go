package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/feed"
	"github.com/chronicle-es/chronicle/timeline"
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
	afterStr string // as given, or the encoded start of the log
	opts     chronicle.ReadAllOptions
}

// parseFeedQuery checks every parameter: unknown or repeated ones, and
// values the feed would not have produced, are 400.
func parseFeedQuery(r *http.Request) (feedQuery, error) {
	q := feedQuery{opts: chronicle.ReadAllOptions{Limit: DefaultFeedLimit}}
	for name, vs := range r.URL.Query() {
		if len(vs) > 1 {
			return q, badField(name, "given more than once")
		}
		v := vs[0]
		switch name {
		case "after":
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
		default:
			return q, badField(name, "unknown parameter; GET /events takes after, types, stream_types and limit")
		}
	}
	// Last-Event-ID is how an SSE client resumes (a browser's EventSource
	// sends it with the URL it first opened): it takes precedence.
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		cp, err := feed.ParseCheckpoint(v)
		if err != nil {
			return q, badRequest("Last-Event-ID: not a checkpoint this feed returned")
		}
		q.after = cp
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

// feedEvents turns stored events into the feed's, upcast as timelines are
// (through the same code, so the two never differ).
func (s *Server) feedEvents(page []chronicle.RecordedEvent) []feed.Event {
	tl := timeline.New("", page, s.opts.Upcaster)
	out := make([]feed.Event, len(page))
	for i, e := range tl.Events {
		re := page[i]
		out[i] = feed.Event{
			Checkpoint:          feed.EncodeCheckpoint(re.Checkpoint()),
			Position:            re.Position,
			StreamID:            re.StreamID,
			Version:             re.Version,
			EventID:             re.ID,
			Type:                e.Type,
			SchemaVersion:       e.SchemaVersion,
			Data:                e.Data,
			Metadata:            e.Metadata,
			RecordedAt:          e.RecordedAt,
			StoredSchemaVersion: e.StoredSchemaVersion,
			UpcastError:         e.UpcastError,
			// HASH CHAIN: Hash and PrevHash from re once
			// chronicle.RecordedEvent carries them.
		}
	}
	return out
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
// commits. Store notifications wake it; a poll every FeedPollInterval
// catches what they cannot report (appends by another process on SQLite).
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

	// Subscribe before the first read, so that a commit in between wakes
	// us. Notifications come from the primary, also for a stream read from
	// a replica (which cannot LISTEN): the chase re-reads cover its replay.
	notify := s.opts.Store.Notify(ctx)
	cp := q.after
	// The first page is read before answering, so that a store that is
	// down is a 503 (or, on a replica, an answer from the primary) rather
	// than an empty stream.
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
	// further on with filters: an empty filtered read moves it to the head
	// taken before that read, so that events nobody asked for are not
	// read again at every wake-up.
	scan := cp
	filtered := len(q.opts.EventTypes)+len(q.opts.StreamTypes) > 0
	var buf bytes.Buffer
	heartbeat := time.NewTimer(s.opts.FeedHeartbeat)
	defer heartbeat.Stop()
	poll := time.NewTicker(s.opts.FeedPollInterval)
	defer poll.Stop()
	var chase time.Duration
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
	// idle waits for a reason to read again: a notification (then the
	// chase), the poll, or the end; it sends heartbeats meanwhile.
	idle := func() bool {
		var chaseC <-chan time.Time
		if chase > 0 {
			t := time.NewTimer(chase)
			defer t.Stop()
			chaseC = t.C
		}
		for {
			select {
			case <-notify:
				chase = feedChaseFirst
			case <-chaseC:
				if chase *= 2; chase > feedChaseMax {
					chase = 0
				}
			case <-poll.C:
			case <-heartbeat.C:
				buf.WriteString(": heartbeat\n\n")
				if write() != nil {
					return false
				}
				continue
			case <-ctx.Done():
				return false
			}
			return true
		}
	}
	if write() != nil { // the headers, at once
		return nil
	}
	for {
		if len(page) > 0 {
			for _, e := range s.feedEvents(page) {
				writeSSE(&buf, e)
			}
			if write() != nil {
				return nil // the client went away, or reads too slowly
			}
			scan = page[len(page)-1].Checkpoint()
		}
		if len(page) < q.opts.Limit && !idle() {
			return nil
		}
		var head chronicle.Head
		if filtered && len(page) == 0 {
			// Taken before the read: an empty page then proves that no
			// wanted event comes before head.
			if head, err = store().Head(ctx); err != nil {
				break
			}
		}
		if page, err = readAll(scan); err != nil {
			break
		}
		if len(page) == 0 && scan.Before(head.Checkpoint) {
			scan = head.Checkpoint
		}
	}
	if ctx.Err() == nil {
		// The headers are out: end the stream; the client resumes with
		// Last-Event-ID once the store is back.
		s.log.LogAttrs(ctx, slog.LevelWarn, "feed stream ended by a store error",
			slog.String("request_id", requestID(ctx)), slog.String("error", err.Error()))
	}
	return nil
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
