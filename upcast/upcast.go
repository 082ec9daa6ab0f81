package upcast

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/chronicle-es/chronicle"
)

// Func turns the data of one schema version into the data of the next.
// It must not panic on any JSON input: return an error instead.
type Func func(data json.RawMessage) (json.RawMessage, error)

// Sentinel errors, matched by *Error with errors.Is.
var (
	// ErrUnknown: the event's type is not declared, its schema version is
	// newer than the current one, or no upcaster leads from it to current.
	ErrUnknown = errors.New("upcast: unknown event type or schema version")
	// ErrFailed: an upcaster returned an error or produced invalid JSON.
	ErrFailed = errors.New("upcast: upcaster failed")
)

// Error says which stored event could not be brought to its current shape.
// It matches ErrUnknown or ErrFailed.
type Error struct {
	Stream        string
	Version       int64 // the event's version in its stream
	Type          string
	SchemaVersion int // the schema version that could not be upcast
	Current       int // the type's current schema version; 0 when undeclared
	Reason        string
	Err           error // the upcaster's error, when it failed
	failed        bool
}

func (e *Error) Error() string {
	s := fmt.Sprintf("upcast: stream %q version %d: event %s schema v%d: %s", e.Stream, e.Version, e.Type, e.SchemaVersion, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrUnknown) or errors.Is(err, ErrFailed) true.
func (e *Error) Is(target error) bool {
	if e.failed {
		return target == ErrFailed
	}
	return target == ErrUnknown
}

// Unwrap returns the upcaster's error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Registry knows each event type's current schema version and the upcasters
// from older versions. Build it completely before use; after that it is
// only read, so concurrent Upcast calls are safe.
type Registry struct {
	types map[string]*chain
}

type chain struct {
	current int
	steps   map[int]Func // steps[k] turns version k into k+1
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{types: make(map[string]*chain)}
}

// Declare sets eventType's current schema version. Events of a declared type
// at the current version pass through Upcast unchanged.
//
// It panics when current < 1 or when the type is already declared with
// another version: both are wiring mistakes that must not reach a store.
func (r *Registry) Declare(eventType string, current int) {
	if current < 1 {
		panic(fmt.Sprintf("upcast: Declare(%q, %d): version must be >= 1", eventType, current))
	}
	if c, ok := r.types[eventType]; ok {
		if c.current != current {
			panic(fmt.Sprintf("upcast: Declare(%q, %d): already declared at v%d", eventType, current, c.current))
		}
		return
	}
	r.types[eventType] = &chain{current: current, steps: make(map[int]Func)}
}

// Register adds the upcaster turning eventType's version from into from+1.
//
// It panics when the type is not declared, when from is not in
// [1, current), when f is nil, or when that step is already registered.
func (r *Registry) Register(eventType string, from int, f Func) {
	c, ok := r.types[eventType]
	switch {
	case !ok:
		panic(fmt.Sprintf("upcast: Register(%q, %d): type not declared", eventType, from))
	case from < 1 || from >= c.current:
		panic(fmt.Sprintf("upcast: Register(%q, %d): version must be in [1, %d)", eventType, from, c.current))
	case f == nil:
		panic(fmt.Sprintf("upcast: Register(%q, %d): nil upcaster", eventType, from))
	}
	if _, dup := c.steps[from]; dup {
		panic(fmt.Sprintf("upcast: Register(%q, %d): already registered", eventType, from))
	}
	c.steps[from] = f
}

// Current returns eventType's current schema version, and false when the
// type is not declared.
func (r *Registry) Current(eventType string) (int, bool) {
	c, ok := r.types[eventType]
	if !ok {
		return 0, false
	}
	return c.current, true
}

// Types returns the declared event types, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.types))
	for t := range r.types {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Upcast returns e in the current shape of its type, with SchemaVersion set
// to the current version. A schema version of 0 means 1. Events already
// current are returned as they are.
//
// Errors: *Error matching ErrUnknown when the type is not declared, the
// version is newer than current, or a step of the chain is missing;
// *Error matching ErrFailed when an upcaster fails or returns invalid JSON.
func (r *Registry) Upcast(e chronicle.RecordedEvent) (chronicle.RecordedEvent, error) {
	v := e.SchemaVersion
	if v == 0 {
		v = 1
	}
	fail := func(v, current int, reason string, err error, failed bool) (chronicle.RecordedEvent, error) {
		return e, &Error{Stream: e.StreamID, Version: e.Version, Type: e.Type, SchemaVersion: v, Current: current, Reason: reason, Err: err, failed: failed}
	}
	c, ok := r.types[e.Type]
	if !ok {
		return fail(v, 0, "event type not declared", nil, false)
	}
	if v < 1 || v > c.current {
		return fail(v, c.current, fmt.Sprintf("schema version not in [1, %d]", c.current), nil, false)
	}
	data := e.Data
	for ; v < c.current; v++ {
		step, ok := c.steps[v]
		if !ok {
			return fail(v, c.current, fmt.Sprintf("no upcaster from v%d to v%d", v, v+1), nil, false)
		}
		out, err := step(data)
		if err != nil {
			return fail(v, c.current, fmt.Sprintf("upcasting v%d to v%d", v, v+1), err, true)
		}
		if err := chronicle.ValidateJSON(out); err != nil {
			return fail(v, c.current, fmt.Sprintf("upcaster v%d to v%d returned bad data", v, v+1), err, true)
		}
		data = out
	}
	e.Data = data
	e.SchemaVersion = c.current
	return e, nil
}

// UpcastAll upcasts events in place and returns them; on error the slice
// is partly upcast and must be dropped.
// Errors: as Upcast, for the first event that fails.
func (r *Registry) UpcastAll(events []chronicle.RecordedEvent) ([]chronicle.RecordedEvent, error) {
	for i, e := range events {
		u, err := r.Upcast(e)
		if err != nil {
			return nil, err
		}
		events[i] = u
	}
	return events, nil
}

// AddField returns an upcaster that adds field with value to a JSON object
// that lacks it: the usual step when a new version adds a field with a
// default. Data that is not a JSON object is an error.
func AddField(field string, value any) Func {
	enc, err := json.Marshal(value)
	if err != nil {
		panic(fmt.Sprintf("upcast: AddField(%q): %v", field, err))
	}
	return func(data json.RawMessage) (json.RawMessage, error) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("add field %q: data is not a JSON object", field)
		}
		if _, ok := obj[field]; ok {
			return data, nil
		}
		obj[field] = enc
		return json.Marshal(obj)
	}
}
