package chronicle

import (
	"errors"
	"fmt"
)

// Sentinel errors. Backends return them, or typed errors that match them with
// errors.Is; raw driver errors never reach callers for these conditions.
var (
	// ErrWrongVersion: the stream's version did not satisfy the expected
	// version. The error is a *ConflictError.
	ErrWrongVersion = errors.New("chronicle: wrong expected version")
	// ErrStreamNotFound: the stream has no events.
	ErrStreamNotFound = errors.New("chronicle: stream not found")
	// ErrNotFound: the thing asked for (snapshot, event, checkpoint) does not exist.
	ErrNotFound = errors.New("chronicle: not found")
	// ErrEventTooLarge: an event's data and metadata exceed the store's limit.
	ErrEventTooLarge = errors.New("chronicle: event too large")
	// ErrInvalid: the input is malformed (bad id, bad JSON, NUL, lone
	// surrogate, ...). The error is an *InvalidError.
	ErrInvalid = errors.New("chronicle: invalid input")
	// ErrDuplicateEvent: an event id is already stored, but not as the same
	// event at the same place, so the append is not a retry.
	ErrDuplicateEvent = errors.New("chronicle: duplicate event id")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("chronicle: store closed")
)

// ConflictError says an append's expected version did not hold.
// It matches ErrWrongVersion.
type ConflictError struct {
	Stream   string
	Expected ExpectedVersion
	Actual   int64 // the stream's version when checked; 0 = no stream
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("chronicle: stream %q: expected %s, actual version %d", e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongVersion) true.
func (e *ConflictError) Is(target error) bool { return target == ErrWrongVersion }

// InvalidError says which part of the input is wrong and why.
// It matches ErrInvalid, or ErrEventTooLarge when the problem is size.
type InvalidError struct {
	Field  string // e.g. "stream_id", "events[2].data"
	Reason string
	tooBig bool
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("chronicle: invalid %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true, and errors.Is(err,
// ErrEventTooLarge) for a size error.
func (e *InvalidError) Is(target error) bool {
	return target == ErrInvalid || (e.tooBig && target == ErrEventTooLarge)
}

// DuplicateEventError names the event id that was reused.
// It matches ErrDuplicateEvent.
type DuplicateEventError struct {
	Stream  string
	EventID string
	Reason  string
}

func (e *DuplicateEventError) Error() string {
	return fmt.Sprintf("chronicle: stream %q: event %s: %s", e.Stream, e.EventID, e.Reason)
}

// Is makes errors.Is(err, ErrDuplicateEvent) true.
func (e *DuplicateEventError) Is(target error) bool { return target == ErrDuplicateEvent }
