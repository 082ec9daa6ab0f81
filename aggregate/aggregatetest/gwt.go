package aggregatetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/upcast"
	"github.com/google/go-cmp/cmp"
)

// Case is one given/when/then test.
type Case[C any, E aggregate.Event] struct {
	Name  string
	Given []E // the stream's events so far, oldest first
	When  C
	Then  []E // the events When must cause (none when Err is set)
	// Err, when set, is the error When must fail with (errors.Is). A typed
	// target lets a domain match details, e.g. &order.RuleError{Status: ...}.
	Err error
}

// Tester runs cases against a definition.
type Tester[S, C any, E aggregate.Event] struct {
	def    aggregate.Definition[S, C, E]
	reg    *upcast.Registry
	stream string
	start  time.Time
}

// New returns a tester for def. The given events of each case are recorded
// in stream at the schema versions reg declares, one second apart from
// 2026-01-01T00:00:00Z, and upcast through reg.
func New[S, C any, E aggregate.Event](def aggregate.Definition[S, C, E], reg *upcast.Registry, stream string) *Tester[S, C, E] {
	return &Tester[S, C, E]{def: def, reg: reg, stream: stream, start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// Run runs each case as a subtest named after it.
func (tr *Tester[S, C, E]) Run(t *testing.T, cases ...Case[C, E]) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) { tr.Check(t, c) })
	}
}

// Check runs one case: it folds Given, decides When, and compares the result
// with Then or Err. It also checks that Decide left the state untouched and
// that the new events fold without error.
func (tr *Tester[S, C, E]) Check(t testing.TB, c Case[C, E]) {
	t.Helper()
	state := tr.State(t, c.Given...)
	pristine := tr.State(t, c.Given...)
	got, err := tr.def.Decide(state, c.When)
	if diff := cmp.Diff(pristine, state); diff != "" {
		t.Errorf("Decide modified its state (-before +after):\n%s", diff)
	}
	if c.Err != nil {
		if !errors.Is(err, c.Err) {
			t.Fatalf("given %s\nwhen %#v\ngot error %v, events %s\nwant error %v", describe(c.Given), c.When, err, describe(got), c.Err)
		}
		if len(got) != 0 {
			t.Errorf("refused command also returned events %s", describe(got))
		}
		return
	}
	if err != nil {
		t.Fatalf("given %s\nwhen %#v\ngot error %v, want events %s", describe(c.Given), c.When, err, describe(c.Then))
	}
	if diff := cmp.Diff(c.Then, got); diff != "" {
		t.Fatalf("given %s\nwhen %#v\nevents differ (-want +got):\n%s", describe(c.Given), c.When, diff)
	}
	if _, err := tr.fold(state, len(c.Given), got); err != nil {
		t.Errorf("the decided events do not fold: %v", err)
	}
}

// State returns the state after the given events.
func (tr *Tester[S, C, E]) State(t testing.TB, given ...E) S {
	t.Helper()
	var zero S
	s, err := tr.fold(zero, 0, given)
	if err != nil {
		t.Fatalf("given events do not fold: %v", err)
	}
	return s
}

// Record returns events as a store would return them: encoded at their
// current schema versions, with versions after+1... and recording times.
func (tr *Tester[S, C, E]) Record(after int, events ...E) ([]chronicle.RecordedEvent, error) {
	out := make([]chronicle.RecordedEvent, len(events))
	for i, e := range events {
		v, ok := tr.reg.Current(e.EventType())
		if !ok {
			return nil, fmt.Errorf("event type %q not declared in the upcast registry", e.EventType())
		}
		data, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e.EventType(), err)
		}
		version := int64(after + i + 1)
		out[i] = chronicle.RecordedEvent{
			StreamID: tr.stream, StreamType: chronicle.StreamType(tr.stream),
			Version: version, Position: version, TxID: uint64(version),
			RecordedAt: tr.start.Add(time.Duration(version) * time.Second),
			ID:         chronicle.NewEventID(), Type: e.EventType(), SchemaVersion: v, Data: data,
		}
	}
	return out, nil
}

func (tr *Tester[S, C, E]) fold(s S, after int, events []E) (S, error) {
	recs, err := tr.Record(after, events...)
	if err != nil {
		return s, err
	}
	for _, r := range recs {
		if r, err = tr.reg.Upcast(r); err != nil {
			return s, err
		}
		if s, err = tr.def.Evolve(s, r); err != nil {
			return s, err
		}
	}
	return s, nil
}

func describe[E aggregate.Event](events []E) string {
	if len(events) == 0 {
		return "[]"
	}
	s := "["
	for i, e := range events {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s%+v", e.EventType(), e)
	}
	return s + "]"
}
