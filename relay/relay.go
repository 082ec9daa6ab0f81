package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/feed"
	"github.com/chronicle-es/chronicle/internal/eventjson"
	"github.com/chronicle-es/chronicle/timeline"
)

// The names the relay uses.
const (
	// Name is the relay's checkpoint, lease and status name, as GET
	// /projections shows it.
	Name = "relay_nats"
	// StreamName is the JetStream stream the relay creates when missing.
	StreamName = "CHRONICLE"
	// DefaultSubjectPrefix is the first token of every subject.
	DefaultSubjectPrefix = "chronicle"
	// DuplicateWindow is the created stream's duplicate window: how long
	// JetStream remembers a Nats-Msg-Id to drop a message published again.
	DuplicateWindow = 2 * time.Minute
	// DefaultAckTimeout is Options.AckTimeout when left 0.
	DefaultAckTimeout = 5 * time.Second
)

// The message headers besides Nats-Msg-Id (the event id).
const (
	HeaderStream     = "Chronicle-Stream"
	HeaderVersion    = "Chronicle-Version"
	HeaderCheckpoint = "Chronicle-Checkpoint"
)

// Errors.
var (
	// ErrBadURL: the NATS URL is not nats://HOST:PORT (or tls://).
	ErrBadURL = errors.New("relay: bad NATS URL")
	// ErrBadPrefix: the subject prefix is not dot-separated tokens of
	// letters, digits, '_' and '-'.
	ErrBadPrefix = errors.New("relay: bad subject prefix")
	// ErrAckTimeout: JetStream did not acknowledge a window in time.
	ErrAckTimeout = errors.New("relay: no acknowledgement from JetStream in time")
)

// Options configure a Relay.
type Options struct {
	// URL is the NATS server's, nats://HOST:PORT. Required.
	URL string
	// SubjectPrefix is the first token(s) of every subject. Default
	// DefaultSubjectPrefix.
	SubjectPrefix string
	// Stream is the JetStream stream created when missing. Default
	// StreamName.
	Stream string
	// Upcaster brings events to their current shape, as GET /events does
	// (order.NewRegistry()). Nil sends them as stored.
	Upcaster timeline.Upcaster
	// AckTimeout bounds the wait for a window's acknowledgements; the
	// window is then published again. Default DefaultAckTimeout.
	AckTimeout time.Duration
	// Reveal, when set, is given the bodies of each window before they are
	// published and returns them as readers may see them (the personal
	// fields decrypted, or "[erased]"), as GET /events shows them.
	Reveal func(ctx context.Context, bodies [][]byte) ([][]byte, error)
	// Metrics, when set, counts what the relay does.
	Metrics *Metrics
	// Logger receives the connection's comings and goings. Default: discard.
	Logger *slog.Logger
}

// Redact returns u with its password, if any, replaced by "xxxxx", for logs
// and errors; a URL that does not parse is replaced whole.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// Check validates the URL and prefix of opts (ErrBadURL, ErrBadPrefix).
func (o Options) Check() error {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Hostname() == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return fmt.Errorf("%w: %q (want nats://HOST:PORT)", ErrBadURL, Redact(o.URL))
	}
	// The port is required: the client library would quietly take 4222.
	if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%w: %q: want a port from 1 to 65535", ErrBadURL, Redact(o.URL))
	}
	if o.SubjectPrefix != "" && !prefixRE.MatchString(o.SubjectPrefix) {
		return fmt.Errorf("%w: %q (want tokens of letters, digits, '_' and '-', separated by dots)", ErrBadPrefix, o.SubjectPrefix)
	}
	return nil
}

// Relay publishes the global log to JetStream. It is a projection.Sink:
// run it with a projection.Runner (Options.Sinks), which gives it a
// checkpoint, a lease and batches (its windows) in read order, and moves
// the checkpoint past a window only once Deliver returned, after JetStream
// acknowledged every message of it.
type Relay struct {
	opts   Options
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	prefix string

	mu    sync.Mutex
	ready bool // the stream exists
	retry bool // the last window failed: the next one is published again

	subjects map[[2]string]string // by stream and event type
}

// New connects to NATS and returns the relay. It does not wait for the
// server: the connection is retried in the background for as long as it
// takes, and windows fail (to be retried) meanwhile.
// Errors: ErrBadURL, ErrBadPrefix.
func New(opts Options) (*Relay, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = DefaultSubjectPrefix
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.Stream == "" {
		opts.Stream = StreamName
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{opts: opts, log: log, prefix: opts.SubjectPrefix, subjects: map[[2]string]string{}}
	nc, err := nats.Connect(opts.URL,
		nats.Name("chronicle relay"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.Timeout(2*time.Second),
		// No buffering while disconnected: a window's messages all go
		// out on one connection, in order, or fail and are published
		// again from the first, so that JetStream stores each stream's
		// events in version order.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("relay: disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("relay: connected to NATS", "url", c.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("relay: connect to %s: %w", Redact(opts.URL), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(opts.AckTimeout), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	r.nc, r.js = nc, js
	return r, nil
}

// Close closes the NATS connection.
func (r *Relay) Close() {
	// Closing is no disconnection to report (and the handler would run
	// after Close returned).
	r.nc.SetDisconnectErrHandler(nil)
	r.nc.SetReconnectHandler(nil)
	r.nc.Close()
}

// Name implements projection.Sink.
func (r *Relay) Name() string { return Name }

// Filter implements projection.Sink: every event.
func (r *Relay) Filter() chronicle.ReadAllOptions { return chronicle.ReadAllOptions{} }

// Subject returns the subject of an event of streamType and eventType:
// prefix.streamType.eventType, each of the last two with '.', '*', '>' and
// white space replaced by '_' (an empty one is "_").
func (r *Relay) Subject(streamType, eventType string) string {
	return r.prefix + "." + token(streamType) + "." + token(eventType)
}

// subject is Subject, remembered: a log has few stream and event types.
func (r *Relay) subject(streamType, eventType string) string {
	k := [2]string{streamType, eventType}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.subjects[k]; ok {
		return s
	}
	if len(r.subjects) >= maxSubjects {
		clear(r.subjects)
	}
	s := r.Subject(streamType, eventType)
	r.subjects[k] = s
	return s
}

// maxSubjects bounds the subjects remembered.
const maxSubjects = 1024

func token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(c rune) rune {
		switch c {
		case '.', '*', '>', ' ', '\t', '\n', '\r', '\f', '\v':
			return '_'
		}
		if c < 0x20 || c == 0x7f {
			return '_'
		}
		return c
	}, s)
}

// ensureStream creates the stream when missing.
func (r *Relay) ensureStream(ctx context.Context) error {
	r.mu.Lock()
	ready := r.ready
	r.mu.Unlock()
	if ready {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.AckTimeout)
	defer cancel()
	_, err := r.js.Stream(ctx, r.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = r.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       r.opts.Stream,
			Subjects:   []string{r.prefix + ".>"},
			Storage:    jetstream.FileStorage,
			Duplicates: DuplicateWindow,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // another relay made it meanwhile
		}
		if err == nil {
			r.log.Info("relay: created JetStream stream", "stream", r.opts.Stream, "subjects", r.prefix+".>")
		}
	}
	if err != nil {
		return fmt.Errorf("relay: stream %s: %w", r.opts.Stream, err)
	}
	r.mu.Lock()
	r.ready = true
	r.mu.Unlock()
	return nil
}

// Deliver implements projection.Sink: it publishes one window of events
// asynchronously, in order, and returns once JetStream has acknowledged
// every one of them. An error means the window must be published again
// (JetStream drops the messages it already has, by Nats-Msg-Id).
func (r *Relay) Deliver(ctx context.Context, events []chronicle.RecordedEvent) error {
	err := r.deliver(ctx, events)
	if err != nil {
		// Look for the stream again: someone may have deleted it.
		r.mu.Lock()
		r.ready = false
		r.mu.Unlock()
	}
	return err
}

func (r *Relay) deliver(ctx context.Context, events []chronicle.RecordedEvent) error {
	m := r.opts.Metrics
	r.mu.Lock()
	retry := r.retry
	r.retry = true // until this window is acknowledged
	r.mu.Unlock()
	if retry {
		m.addRetried(len(events))
	}
	if err := r.ensureStream(ctx); err != nil {
		return err
	}
	out := eventjson.Events(events, r.opts.Upcaster)
	// The window's bodies share one buffer; each is a full slice of it,
	// taken once it no longer moves.
	buf := make([]byte, 0, 512*len(out))
	ends := make([]int, len(out))
	for i, e := range out {
		var err error
		if buf, err = eventjson.Append(buf, e); err != nil {
			return fmt.Errorf("relay: encode %s v%d: %w", e.StreamID, e.Version, err)
		}
		ends[i] = len(buf)
	}
	bodies := make([][]byte, len(out))
	for i, start := 0, 0; i < len(out); i++ {
		bodies[i], start = buf[start:ends[i]:ends[i]], ends[i]
	}
	if r.opts.Reveal != nil {
		var err error
		if bodies, err = r.opts.Reveal(ctx, bodies); err != nil {
			return fmt.Errorf("relay: reveal: %w", err)
		}
	}
	futures := make([]jetstream.PubAckFuture, 0, len(out))
	values := make([]string, 3*len(out)) // the headers' values, one allocation
	for i, e := range out {
		v := values[3*i : 3*i+3 : 3*i+3]
		v[0], v[1], v[2] = e.StreamID, strconv.FormatInt(e.Version, 10), e.Checkpoint
		msg := &nats.Msg{
			Subject: r.subject(chronicle.StreamType(e.StreamID), events[i].Type),
			Data:    bodies[i],
			Header: nats.Header{
				HeaderStream:     v[0:1:1],
				HeaderVersion:    v[1:2:2],
				HeaderCheckpoint: v[2:3:3],
			},
		}
		f, err := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(e.EventID))
		if err != nil {
			return fmt.Errorf("relay: publish %s v%d: %w", e.StreamID, e.Version, err)
		}
		m.addPublished(1)
		futures = append(futures, f)
	}
	timer := time.NewTimer(r.opts.AckTimeout)
	defer timer.Stop()
	for i, f := range futures {
		select {
		case <-f.Ok():
			m.addAcknowledged(1)
		case err := <-f.Err():
			return fmt.Errorf("relay: publish %s v%d: %w", out[i].StreamID, out[i].Version, err)
		case <-timer.C:
			return fmt.Errorf("%w (%s)", ErrAckTimeout, r.opts.AckTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.retry = false
	r.mu.Unlock()
	return nil
}

// CheckpointOf returns the checkpoint a message carries (its
// Chronicle-Checkpoint header), to replay the feed or the store from it.
func CheckpointOf(h nats.Header) (chronicle.Checkpoint, error) {
	return feed.ParseCheckpoint(h.Get(HeaderCheckpoint))
}
