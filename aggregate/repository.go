package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/upcast"
)

// EventStore is the part of chronicle.Store a Repository uses.
type EventStore interface {
	Append(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, error)
	ReadStream(ctx context.Context, stream string, opts chronicle.ReadStreamOptions) ([]chronicle.RecordedEvent, error)
	EventByID(ctx context.Context, id string) (chronicle.RecordedEvent, error)
}

// AppendRecorder is an EventStore that can also return the events an
// append stored, exactly as ReadStream would read them back (recorded time,
// positions), or nil events when it cannot say (an idempotent retry: the
// stored events are the earlier ones). Handle then needs no read of its own
// events after appending. *sqlitestore.Store is one.
type AppendRecorder interface {
	AppendRecorded(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, []chronicle.RecordedEvent, error)
}

// Defaults.
const (
	// DefaultSnapshotEvery is the snapshot interval, in events.
	DefaultSnapshotEvery = 50
	// DefaultMaxAttempts bounds the runs of a command that keeps losing
	// races. Each lost run means another writer's append landed in between,
	// so N writers racing on one aggregate all land within N attempts.
	DefaultMaxAttempts = 32
)

// Repository loads aggregates of one type and runs commands on them. It is
// safe for concurrent use.
type Repository[S, C any, E Event] struct {
	events        EventStore
	snapshots     chronicle.SnapshotStore // nil: snapshots off
	reg           *upcast.Registry
	def           Definition[S, C, E]
	log           *slog.Logger
	snapshotEvery int
	maxAttempts   int
	backoffBase   time.Duration
	backoffMax    time.Duration
	cache         *stateCache[S] // nil: off (see WithStateCache)
	stats         counters
}

// Option configures a Repository.
type Option func(*config)

type config struct {
	log           *slog.Logger
	snapshotEvery int
	maxAttempts   int
	backoffBase   time.Duration
	backoffMax    time.Duration
	cacheSize     int
	cacheBytes    int64
}

// WithLogger sets where failed snapshot reads and writes are logged.
// Default: discarded (they are still counted in Stats).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithSnapshotEvery sets the snapshot interval: a snapshot is written when
// a command or a load leaves the aggregate n or more events past its last
// snapshot. 0 turns snapshots off (none read, none written). Default 50.
func WithSnapshotEvery(n int) Option {
	return func(c *config) { c.snapshotEvery = max(n, 0) }
}

// WithRetry sets how often Handle runs a command that loses a race
// (DefaultMaxAttempts; 1 = never retry) and the backoff between runs: a
// random wait up to base, doubling per attempt up to max.
// Defaults: 1 ms, 50 ms.
func WithRetry(maxAttempts int, base, max time.Duration) Option {
	return func(c *config) {
		c.maxAttempts, c.backoffBase, c.backoffMax = maxAttempts, base, max
	}
}

// New returns a repository for def's aggregates in events, with snapshots
// in snapshots (nil: none), reading every event through reg.
// It panics when events, reg or a function of def is nil.
func New[S, C any, E Event](events EventStore, snapshots chronicle.SnapshotStore, reg *upcast.Registry, def Definition[S, C, E], opts ...Option) *Repository[S, C, E] {
	if events == nil || reg == nil || def.StreamID == nil || def.Decide == nil || def.Evolve == nil {
		panic("aggregate: New needs an event store, an upcast registry, and StreamID, Decide and Evolve")
	}
	c := config{snapshotEvery: DefaultSnapshotEvery, maxAttempts: DefaultMaxAttempts, backoffBase: time.Millisecond, backoffMax: 50 * time.Millisecond,
		cacheBytes: DefaultStateCacheBytes}
	for _, o := range opts {
		o(&c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if snapshots == nil {
		c.snapshotEvery = 0
	}
	return &Repository[S, C, E]{
		events: events, snapshots: snapshots, reg: reg, def: def, log: c.log,
		snapshotEvery: c.snapshotEvery, maxAttempts: max(c.maxAttempts, 1),
		backoffBase: max(c.backoffBase, 0), backoffMax: max(c.backoffMax, c.backoffBase),
		cache: newStateCache(c.cacheSize, c.cacheBytes, def.Size),
	}
}

// Loaded is an aggregate's state at a stream version.
type Loaded[S any] struct {
	State   S
	Version int64 // the stream version State reflects; 0 = no events
	// SnapshotVersion is the version of the snapshot the load started
	// from; 0 when it replayed from the first event.
	SnapshotVersion int64
}

// Sentinel errors.
var (
	// ErrNotFound: the stream has no events, none at the version or time
	// asked for. The error is a *NotFoundError.
	ErrNotFound = errors.New("aggregate: not found")
)

// NotFoundError says what was not found. It matches ErrNotFound and
// chronicle.ErrStreamNotFound.
type NotFoundError struct {
	Stream  string
	Version int64     // set by LoadVersion
	AsOf    time.Time // set by LoadAsOf
	Last    int64     // the stream's version, when known; 0 = no events
}

func (e *NotFoundError) Error() string {
	switch {
	case e.Version > 0:
		return fmt.Sprintf("aggregate: stream %q has no version %d (last is %d)", e.Stream, e.Version, e.Last)
	case !e.AsOf.IsZero():
		return fmt.Sprintf("aggregate: stream %q has no events at or before %s", e.Stream, e.AsOf.Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("aggregate: stream %q not found", e.Stream)
}

// Is matches ErrNotFound and chronicle.ErrStreamNotFound.
func (e *NotFoundError) Is(target error) bool {
	return target == ErrNotFound || target == chronicle.ErrStreamNotFound
}

// Load returns the aggregate's current state: its latest usable snapshot
// and the events after it, upcast. When it replays at least the snapshot
// interval past the last snapshot it writes a new one (best effort).
// Errors: *NotFoundError when the stream has no events; invalid ids as
// def.StreamID returns them; store, upcast and Evolve errors.
func (r *Repository[S, C, E]) Load(ctx context.Context, id string) (Loaded[S], error) {
	stream, err := r.def.StreamID(id)
	if err != nil {
		return Loaded[S]{}, err
	}
	l, _, err := r.load(ctx, stream)
	if err != nil {
		return l, err
	}
	if l.Version == 0 {
		return l, &NotFoundError{Stream: stream}
	}
	return l, nil
}

// LoadVersion returns the state after exactly the events 1..version
// ("time travel" by version). It may start from a snapshot at or before
// version.
// Errors: *NotFoundError when version < 1 or beyond the stream's last
// version; otherwise as Load.
func (r *Repository[S, C, E]) LoadVersion(ctx context.Context, id string, version int64) (Loaded[S], error) {
	stream, err := r.def.StreamID(id)
	if err != nil {
		return Loaded[S]{}, err
	}
	return r.loadVersion(ctx, stream, version)
}

// LoadAsOf returns the state after the events recorded at or before t
// ("time travel" by time). It always replays from the first event: a
// snapshot does not say when its events were recorded.
// Errors: *NotFoundError when no event was recorded by t; otherwise as Load.
func (r *Repository[S, C, E]) LoadAsOf(ctx context.Context, id string, t time.Time) (Loaded[S], error) {
	stream, err := r.def.StreamID(id)
	if err != nil {
		return Loaded[S]{}, err
	}
	if t.IsZero() {
		// The zero time is no bound to the store (ReadStreamOptions), and
		// no event was recorded that early.
		return Loaded[S]{}, &NotFoundError{Stream: stream, AsOf: t}
	}
	events, err := r.read(ctx, stream, chronicle.ReadStreamOptions{Until: t})
	if err != nil {
		return Loaded[S]{}, err
	}
	// Only a gap-free prefix is a state the stream was ever in.
	n := 0
	for n < len(events) && events[n].Version == int64(n+1) {
		n++
	}
	if n == 0 {
		return Loaded[S]{}, &NotFoundError{Stream: stream, AsOf: t}
	}
	return r.fold(Loaded[S]{}, events[:n])
}

func (r *Repository[S, C, E]) loadVersion(ctx context.Context, stream string, version int64) (Loaded[S], error) {
	if version < 1 {
		return Loaded[S]{}, &NotFoundError{Stream: stream, Version: version}
	}
	var l Loaded[S]
	if snap, ok := r.snapshot(ctx, stream); ok && snap.Version <= version {
		l = snap
	}
	if l.Version < version {
		events, err := r.read(ctx, stream, chronicle.ReadStreamOptions{From: l.Version + 1, To: version})
		if err != nil {
			return Loaded[S]{}, err
		}
		if l, err = r.fold(l, events); err != nil {
			return Loaded[S]{}, err
		}
	}
	if l.Version != version {
		return Loaded[S]{}, &NotFoundError{Stream: stream, Version: version, Last: l.Version}
	}
	return l, nil
}

// load returns the head state of stream, version 0 when it has no events,
// and the version of the stream's latest snapshot.
func (r *Repository[S, C, E]) load(ctx context.Context, stream string) (Loaded[S], int64, error) {
	l, _ := r.snapshot(ctx, stream)
	events, err := r.read(ctx, stream, chronicle.ReadStreamOptions{From: l.Version + 1})
	if errors.Is(err, chronicle.ErrStreamNotFound) {
		return Loaded[S]{}, 0, nil // a snapshot without events is an orphan: ignore it
	}
	if err != nil {
		return Loaded[S]{}, 0, err
	}
	if l, err = r.fold(l, events); err != nil {
		return Loaded[S]{}, 0, err
	}
	return l, r.maybeSnapshot(ctx, stream, l, l.SnapshotVersion), nil
}

// read reads and upcasts part of a stream. ErrStreamNotFound passes through.
func (r *Repository[S, C, E]) read(ctx context.Context, stream string, opts chronicle.ReadStreamOptions) ([]chronicle.RecordedEvent, error) {
	events, err := r.events.ReadStream(ctx, stream, opts)
	if errors.Is(err, chronicle.ErrStreamNotFound) {
		return nil, &NotFoundError{Stream: stream}
	}
	if err != nil {
		return nil, fmt.Errorf("aggregate: read %s: %w", stream, err)
	}
	return r.reg.UpcastAll(events)
}

func (r *Repository[S, C, E]) fold(l Loaded[S], events []chronicle.RecordedEvent) (Loaded[S], error) {
	r.stats.replayed.Add(int64(len(events)))
	for _, e := range events {
		if e.Version != l.Version+1 {
			return l, fmt.Errorf("aggregate: stream %q: read version %d after %d", e.StreamID, e.Version, l.Version)
		}
		s, err := r.def.Evolve(l.State, e)
		if err != nil {
			return l, fmt.Errorf("aggregate: evolve %s version %d (%s): %w", e.StreamID, e.Version, e.Type, err)
		}
		l.State, l.Version = s, e.Version
	}
	return l, nil
}

// Stats counts what a repository did since it was created.
type Stats struct {
	Commands          int64 // commands that appended events
	Conflicts         int64 // appends that lost a race (retried or returned)
	SnapshotsWritten  int64
	SnapshotsIgnored  int64 // of another schema version, or undecodable
	SnapshotFailures  int64 // snapshot reads or writes that failed (logged)
	EventsReplayed    int64 // events folded by loads
	IdempotentReplays int64 // commands recognised as retries of earlier ones
	CachedStates      int   // states the state cache keeps now (WithStateCache)
	CachedBytes       int64 // their approximate size (Definition.Size)
}

type counters struct {
	commands, conflicts, written, ignored, failures, replayed, idempotent atomic.Int64
}

// Stats returns the repository's counters.
func (r *Repository[S, C, E]) Stats() Stats {
	c := &r.stats
	n, bytes := r.cache.stats()
	return Stats{
		Commands: c.commands.Load(), Conflicts: c.conflicts.Load(),
		SnapshotsWritten: c.written.Load(), SnapshotsIgnored: c.ignored.Load(), SnapshotFailures: c.failures.Load(),
		EventsReplayed: c.replayed.Load(), IdempotentReplays: c.idempotent.Load(),
		CachedStates: n, CachedBytes: bytes,
	}
}

// snapshot returns the stream's usable snapshot, if any. Every problem
// with it means "no snapshot": it is only a cache.
func (r *Repository[S, C, E]) snapshot(ctx context.Context, stream string) (Loaded[S], bool) {
	if r.snapshotEvery == 0 {
		return Loaded[S]{}, false
	}
	snap, err := r.snapshots.LoadSnapshot(ctx, stream)
	if errors.Is(err, chronicle.ErrNotFound) {
		return Loaded[S]{}, false
	}
	if err != nil {
		r.stats.failures.Add(1)
		r.log.WarnContext(ctx, "aggregate: snapshot read failed; replaying", "stream", stream, "err", err)
		return Loaded[S]{}, false
	}
	if snap.SchemaVersion != r.def.snapshotSchema() || snap.Version < 1 {
		r.stats.ignored.Add(1)
		return Loaded[S]{}, false
	}
	var s S
	if err := json.Unmarshal(snap.Data, &s); err != nil {
		r.stats.ignored.Add(1)
		r.log.WarnContext(ctx, "aggregate: snapshot does not decode; replaying", "stream", stream, "version", snap.Version, "err", err)
		return Loaded[S]{}, false
	}
	return Loaded[S]{State: s, Version: snap.Version, SnapshotVersion: snap.Version}, true
}

// maybeSnapshot writes a snapshot of l when it is the interval or more past
// its last one (at version last), and returns the latest snapshot's version.
// Failures are logged and counted, never returned: they must
// not fail the command or load that got here. It does not take ctx's
// cancellation, so a client going away does not count as a failure, but it
// is bounded.
func (r *Repository[S, C, E]) maybeSnapshot(ctx context.Context, stream string, l Loaded[S], last int64) int64 {
	if r.snapshotEvery == 0 || l.Version-last < int64(r.snapshotEvery) {
		return last
	}
	data, err := json.Marshal(l.State)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = r.snapshots.SaveSnapshot(ctx, chronicle.Snapshot{StreamID: stream, Version: l.Version, SchemaVersion: r.def.snapshotSchema(), Data: data})
		cancel()
	}
	if err != nil {
		r.stats.failures.Add(1)
		r.log.WarnContext(ctx, "aggregate: snapshot write failed", "stream", stream, "version", l.Version, "err", err)
		return last
	}
	r.stats.written.Add(1)
	return l.Version
}

// backoff waits before attempt n (2, 3, ...) or until ctx ends.
func (r *Repository[S, C, E]) backoff(ctx context.Context, attempt int) error {
	ceiling := r.backoffBase << min(attempt-2, 16)
	if ceiling > r.backoffMax || ceiling <= 0 {
		ceiling = r.backoffMax
	}
	if ceiling <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(rand.N(ceiling) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
