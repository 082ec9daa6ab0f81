package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/chronicle-es/chronicle"
)

// CommandOption qualifies one Handle call.
type CommandOption func(*commandConfig)

type commandConfig struct {
	expected    int64 // -1: none
	meta        map[string]string
	eventIDs    []string
	idempotency string
}

// ExpectVersion makes the command conditional on the aggregate being at
// exactly version v (HTTP If-Match). It is checked before the command is
// decided, and a race lost at append time is returned, not retried.
func ExpectVersion(v int64) CommandOption {
	return func(c *commandConfig) { c.expected = max(v, 0) }
}

// Correlation sets the correlation and causation ids recorded in the
// metadata of the events the command appends. Empty ids are left out.
func Correlation(correlationID, causationID string) CommandOption {
	return Metadata(map[string]string{"correlation_id": correlationID, "causation_id": causationID})
}

// Metadata adds string fields to the metadata of the events the command
// appends (e.g. a hash of the request an Idempotency-Key was used for).
// Empty values are left out.
func Metadata(fields map[string]string) CommandOption {
	return func(c *commandConfig) {
		if c.meta == nil {
			c.meta = map[string]string{}
		}
		for k, v := range fields {
			if v != "" {
				c.meta[k] = v
			}
		}
	}
}

// EventIDs sets the ids of the events the command appends, in order; the
// command fails if it causes more events than ids. Running the command again
// with the same ids after it landed appends nothing and returns the state
// it produced (see Result.Replayed).
func EventIDs(ids ...string) CommandOption {
	return func(c *commandConfig) { c.eventIDs = append([]string(nil), ids...) }
}

// IdempotencyKey derives the ids of the events the command appends from
// key and the stream (see IdempotentEventID), so that a retried request
// with the same key appends nothing and gets the first result again.
func IdempotencyKey(key string) CommandOption {
	return func(c *commandConfig) { c.idempotency = key }
}

// IdempotentEventID returns the id of the i-th event appended to stream by a
// command with this idempotency key: a UUID (version 8) from a SHA-256 of
// them, the same in every process.
func IdempotentEventID(stream, key string, i int) string {
	return chronicle.DerivedEventID("aggregate idempotency", stream, key, strconv.Itoa(i))
}

// Result is the outcome of a command.
type Result[S any] struct {
	Loaded[S] // the state and version after the command: read your writes
	// Events are the events the command appended (or, when Replayed, had
	// appended the first time), upcast.
	Events []chronicle.RecordedEvent
	// Replayed is true when the command's event ids were already stored:
	// nothing was appended, and the state is the one right after them.
	Replayed bool
	// Attempts is how many times the command was decided (1 + retries).
	Attempts int
}

// Handle runs cmd on the aggregate id: it loads it, decides, and appends the
// new events expecting the version it loaded. When another writer got there
// first it runs the whole thing again on the new state, up to the retry
// limit with jittered backoff, unless ExpectVersion was given. A command
// that causes no events appends nothing and returns the current state.
// ctx cancels the loads, appends and waits.
//
// Errors: invalid ids as def.StreamID returns them; Decide's errors as they
// are, with the Result holding the state they were decided on (version 0
// when the aggregate does not exist); *chronicle.ConflictError
// (chronicle.ErrWrongVersion) when the aggregate is not at the
// ExpectVersion version (Actual 0 when it does not exist) or a race was
// lost on every attempt; store, upcast and Evolve errors wrapped.
func (r *Repository[S, C, E]) Handle(ctx context.Context, id string, cmd C, opts ...CommandOption) (Result[S], error) {
	cfg := commandConfig{expected: -1}
	for _, o := range opts {
		o(&cfg)
	}
	stream, err := r.def.StreamID(id)
	if err != nil {
		return Result[S]{}, err
	}
	for i, eid := range cfg.eventIDs {
		if cfg.eventIDs[i], err = chronicle.ParseEventID(eid); err != nil {
			return Result[S]{}, &chronicle.InvalidError{Field: fmt.Sprintf("event_ids[%d]", i), Reason: err.Error()}
		}
	}
	// ids returns the ids of the command's first n events: derived from the
	// idempotency key, else those given (fewer when fewer were given).
	ids := func(n int) []string {
		if cfg.idempotency != "" {
			out := make([]string, n)
			for i := range out {
				out[i] = IdempotentEventID(stream, cfg.idempotency, i)
			}
			return out
		}
		return cfg.eventIDs[:min(n, len(cfg.eventIDs))]
	}
	if first := ids(1); len(first) > 0 {
		if res, ok, err := r.replayed(ctx, stream, first[0], ids); ok || err != nil {
			return res, err
		}
	}
	meta, err := encodeMetadata(cfg.meta)
	if err != nil {
		return Result[S]{}, err
	}
	// guessed: cur is the state cache's (see WithStateCache), not loaded,
	// and stands only if the append lands at its version. Any other outcome
	// on a guessed state runs the command again on a loaded state, without
	// counting an attempt.
	guessed := r.cache != nil
	for attempt := 1; ; {
		var cur Loaded[S]
		var lastSnapshot int64
		if guessed {
			cs := r.cache.get(stream)
			cur, lastSnapshot = cs.l, cs.lastSnapshot
		} else if cur, lastSnapshot, err = r.load(ctx, stream); err != nil {
			return Result[S]{}, err
		}
		if cfg.expected >= 0 && cur.Version != cfg.expected {
			if guessed {
				guessed = false
				continue
			}
			return Result[S]{}, &chronicle.ConflictError{Stream: stream, Expected: chronicle.Exact(cfg.expected), Actual: cur.Version}
		}
		decided, err := r.def.Decide(cur.State, cmd)
		if guessed && (err != nil || len(decided) == 0) {
			guessed = false
			continue
		}
		if err != nil {
			// The state decided on, so that a caller can say which version
			// the refusal reflects.
			return Result[S]{Loaded: cur, Attempts: attempt}, err
		}
		if len(decided) == 0 {
			return Result[S]{Loaded: cur, Attempts: attempt}, nil
		}
		eventIDs := ids(len(decided))
		var events []chronicle.Event
		if cfg.eventIDs != nil && len(eventIDs) < len(decided) {
			err = fmt.Errorf("aggregate: command caused %d events but was given %d event ids", len(decided), len(cfg.eventIDs))
		} else {
			events, err = r.encode(decided, eventIDs, meta)
		}
		if guessed && err != nil {
			guessed = false
			continue
		}
		if err != nil {
			return Result[S]{}, err
		}
		res, recorded, err := r.append(ctx, stream, chronicle.Exact(cur.Version), events)
		if guessed && errors.Is(err, chronicle.ErrWrongVersion) {
			// The kept state was stale, or the aggregate exists already:
			// not a race lost, so not a conflict either.
			r.cache.drop(stream)
			guessed = false
			continue
		}
		if errors.Is(err, chronicle.ErrWrongVersion) {
			r.stats.conflicts.Add(1)
			if cfg.expected < 0 && attempt < r.maxAttempts {
				attempt++
				if err := r.backoff(ctx, attempt); err != nil {
					return Result[S]{}, fmt.Errorf("aggregate: handle %s: %w", stream, err)
				}
				continue
			}
		}
		if err != nil {
			return Result[S]{}, fmt.Errorf("aggregate: handle %s: %w", stream, err)
		}
		r.stats.commands.Add(1)
		if recorded == nil {
			// Read back what landed: the store sets the recorded times the
			// state carries, and an idempotent append returns an earlier result.
			if recorded, err = r.read(ctx, stream, chronicle.ReadStreamOptions{From: res.FirstVersion, To: res.LastVersion}); err != nil {
				return Result[S]{}, err
			}
		}
		after, err := r.fold(cur, recorded)
		if err != nil {
			return Result[S]{}, err
		}
		last := r.maybeSnapshot(ctx, stream, after, lastSnapshot)
		if r.cache != nil {
			r.cache.put(stream, cachedState[S]{l: after, lastSnapshot: last})
		}
		return Result[S]{Loaded: after, Events: recorded, Attempts: attempt}, nil
	}
}

// append appends events and returns them as stored, upcast, when the store
// can tell (see AppendRecorder); nil events otherwise.
func (r *Repository[S, C, E]) append(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, []chronicle.RecordedEvent, error) {
	ar, ok := r.events.(AppendRecorder)
	if !ok {
		res, err := r.events.Append(ctx, stream, expected, events)
		return res, nil, err
	}
	res, recorded, err := ar.AppendRecorded(ctx, stream, expected, events)
	if err != nil || recorded == nil {
		return res, nil, err
	}
	if recorded, err = r.reg.UpcastAll(recorded); err != nil {
		return res, nil, fmt.Errorf("aggregate: upcast %s: %w", stream, err)
	}
	return res, recorded, nil
}

// replayed recognises a command whose first event id is already stored in
// stream: it returns the state right after the events of that first run.
func (r *Repository[S, C, E]) replayed(ctx context.Context, stream, firstID string, ids func(int) []string) (Result[S], bool, error) {
	first, err := r.events.EventByID(ctx, firstID)
	if errors.Is(err, chronicle.ErrNotFound) {
		return Result[S]{}, false, nil
	}
	if err != nil {
		return Result[S]{}, false, fmt.Errorf("aggregate: handle %s: %w", stream, err)
	}
	if first.StreamID != stream {
		return Result[S]{}, false, nil // the append will report the duplicate id
	}
	after, err := r.read(ctx, stream, chronicle.ReadStreamOptions{From: first.Version})
	if err != nil {
		return Result[S]{}, false, err
	}
	// The command's events are those from the first on that carry its ids;
	// later commands' events follow them.
	want := ids(len(after))
	n := 0
	for n < len(after) && n < len(want) && after[n].ID == want[n] {
		n++
	}
	l, err := r.loadVersion(ctx, stream, first.Version+int64(n)-1)
	if err != nil {
		return Result[S]{}, false, err
	}
	r.stats.idempotent.Add(1)
	return Result[S]{Loaded: l, Events: after[:n], Replayed: true, Attempts: 0}, true, nil
}

func (r *Repository[S, C, E]) encode(decided []E, ids []string, meta json.RawMessage) ([]chronicle.Event, error) {
	out := make([]chronicle.Event, len(decided))
	for i, e := range decided {
		typ := e.EventType()
		v, ok := r.reg.Current(typ)
		if !ok {
			return nil, fmt.Errorf("aggregate: event type %q is not declared in the upcast registry", typ)
		}
		data, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("aggregate: encode %s: %w", typ, err)
		}
		out[i] = chronicle.Event{Type: typ, SchemaVersion: v, Data: data, Metadata: meta}
		if i < len(ids) {
			out[i].ID = ids[i]
		}
	}
	return out, nil
}

func encodeMetadata(m map[string]string) (json.RawMessage, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("aggregate: metadata: %w", err)
	}
	return b, nil
}
