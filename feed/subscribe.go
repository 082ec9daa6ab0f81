package feed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Options tune Subscribe. The zero value follows every event with the
// defaults below.
type Options struct {
	// Token is sent as "Authorization: Bearer <Token>" when set.
	Token string
	// Types and StreamTypes filter the feed (types=, stream_types=).
	Types, StreamTypes []string
	// Client makes the requests. Default: an http.Client without a
	// timeout (a stream lasts); IdleTimeout cuts dead connections.
	Client *http.Client
	// MinBackoff and MaxBackoff bound the wait before reconnecting: it
	// starts at MinBackoff, doubles after each failed attempt up to
	// MaxBackoff, and is jittered (between half and all of it). A
	// connection that delivered anything starts again at MinBackoff.
	// Defaults 100 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout is how long a connection may stay silent (no event, no
	// heartbeat) before it is taken for dead and replaced. Default 45 s,
	// three of the server's default heartbeats.
	IdleTimeout time.Duration
	// OnError, when set, is told of each failure that Subscribe recovers
	// from by reconnecting (for logs).
	OnError func(error)
}

// StatusError is a response that reconnecting would not change: a 4xx
// other than 408 and 429 (bad request, bad token, wrong role, ...).
type StatusError struct {
	StatusCode int
	Body       string // the start of the problem body
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("feed: status %d: %s", e.StatusCode, e.Body)
}

// HandlerError is a handler's error, with the event it failed on.
type HandlerError struct {
	Event Event
	Err   error
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("feed: handler failed on event %s (%s v%d): %v", e.Event.Checkpoint, e.Event.StreamID, e.Event.Version, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }

// Subscribe follows the feed of the chronicle server at baseURL (e.g.
// "http://127.0.0.1:8080") from the event after checkpoint from ("" for
// the start of the log), calling handler for each event in the global
// log's read order, one at a time. It returns only when ctx ends (with
// ctx's error), when handler fails, or on a *StatusError.
//
// Connection failures, server errors and restarts are retried with
// backoff (see Options): each new connection resumes exactly after the
// last event handler returned nil for, so handler sees every event once
// and in order while Subscribe runs. A handler error stops Subscribe and
// is returned as a *HandlerError: that event was not accepted, and a new
// Subscribe from the last accepted checkpoint retries it. For exactly-once
// effects across restarts of the consumer, store each event's Checkpoint
// with its effects and pass the stored one as from.
func Subscribe(ctx context.Context, baseURL, from string, handler func(context.Context, Event) error, opts Options) error {
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 45 * time.Second
	}
	if from != "" {
		if _, err := ParseCheckpoint(from); err != nil {
			return err
		}
	}
	u, err := feedURL(baseURL, opts)
	if err != nil {
		return err
	}
	s := &subscription{url: u, opts: opts, handler: handler, last: from}
	backoff := opts.MinBackoff
	for {
		progressed, err := s.connect(ctx)
		var se *StatusError
		var he *HandlerError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &he), errors.As(err, &se) && se.StatusCode != http.StatusRequestTimeout && se.StatusCode != http.StatusTooManyRequests && se.StatusCode < 500:
			return err
		}
		if opts.OnError != nil {
			opts.OnError(err)
		}
		if progressed {
			backoff = opts.MinBackoff
		}
		wait := max(backoff/2+rand.N(backoff/2+1), s.retryAfter)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, opts.MaxBackoff)
	}
}

func feedURL(baseURL string, opts Options) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/") + "/events")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("feed: base URL %q: want http:// or https://", baseURL)
	}
	q := url.Values{}
	if len(opts.Types) > 0 {
		q.Set("types", strings.Join(opts.Types, ","))
	}
	if len(opts.StreamTypes) > 0 {
		q.Set("stream_types", strings.Join(opts.StreamTypes, ","))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

type subscription struct {
	url        string
	opts       Options
	handler    func(context.Context, Event) error
	last       string        // checkpoint of the last event handled
	retryAfter time.Duration // the server's Retry-After on the last attempt
}

// connect streams one connection until it fails; progressed reports that
// it delivered something (the next failure then starts a fresh backoff).
// It never returns nil.
func (s *subscription) connect(ctx context.Context) (progressed bool, err error) {
	s.retryAfter = 0
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := time.AfterFunc(s.opts.IdleTimeout, cancel)
	defer idle.Stop()

	req, err := http.NewRequestWithContext(cctx, http.MethodGet, s.url, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if s.last != "" {
		req.Header.Set("Last-Event-ID", s.last)
	}
	if s.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.Token)
	}
	res, err := s.opts.Client.Do(req)
	if err != nil {
		return false, fmt.Errorf("feed: connect: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		if secs, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && secs > 0 {
			s.retryAfter = min(time.Duration(secs)*time.Second, s.opts.MaxBackoff)
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return false, &StatusError{StatusCode: res.StatusCode, Body: string(b)}
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, fmt.Errorf("feed: the server answered %q, not text/event-stream", ct)
	}

	sc := bufio.NewScanner(res.Body)
	// An event holds at most about 1 MiB of data and metadata.
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var id, data string
	var hasData bool
	for sc.Scan() {
		idle.Reset(s.opts.IdleTimeout)
		progressed = true
		line := sc.Text()
		if line == "" { // end of an event
			if hasData {
				// The handler's time is not the connection's silence.
				idle.Stop()
				if err := s.deliver(ctx, id, data); err != nil {
					return true, err
				}
				idle.Reset(s.opts.IdleTimeout)
			}
			id, data, hasData = "", "", false
			continue
		}
		if line[0] == ':' { // a comment: heartbeat
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "data":
			if hasData {
				data += "\n"
			}
			data += value
			hasData = true
		}
	}
	if err := sc.Err(); err != nil {
		return progressed, fmt.Errorf("feed: read: %w", err)
	}
	return progressed, fmt.Errorf("feed: read: %w", io.ErrUnexpectedEOF)
}

// deliver decodes one event and hands it over; only handler's nil moves
// the resume point.
func (s *subscription) deliver(ctx context.Context, id, data string) error {
	var ev Event
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return fmt.Errorf("feed: decode event %s: %w", id, err)
	}
	if ev.Checkpoint == "" {
		ev.Checkpoint = id
	}
	if err := s.handler(ctx, ev); err != nil {
		return &HandlerError{Event: ev, Err: err}
	}
	s.last = ev.Checkpoint
	return nil
}
