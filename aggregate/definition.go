package aggregate

import (
	"github.com/chronicle-es/chronicle"
)

// Event is a domain event: a value that encodes to JSON and names its type.
type Event interface {
	EventType() string
}

// Definition is the pure part of an aggregate type: state S, commands C and
// events E. Decide and Evolve must not do I/O: the repository may call them
// again on retries.
type Definition[S, C any, E Event] struct {
	// StreamID returns the stream of the aggregate with this id, or an
	// error (returned as is) when the id is invalid.
	StreamID func(id string) (string, error)
	// Decide returns the events cmd causes in state, or why it is refused.
	// The error is returned to the caller as is. It must not modify state.
	Decide func(state S, cmd C) ([]E, error)
	// Evolve returns the state after the stored event e, which is the
	// stream's next event, already upcast. The zero S is the state before
	// the first event. It must not modify state.
	Evolve func(state S, e chronicle.RecordedEvent) (S, error)
	// SnapshotSchema is the version of S's JSON encoding in snapshots.
	// Bump it when S changes shape: older snapshots are then ignored.
	// 0 means 1.
	SnapshotSchema int
	// Size approximates the bytes a state holds in memory, for the state
	// cache's byte budget (WithStateCacheBytes). nil: the length of the
	// state's JSON encoding, which costs an encoding per command.
	Size func(state S) int
}

func (d Definition[S, C, E]) snapshotSchema() int {
	if d.SnapshotSchema <= 0 {
		return 1
	}
	return d.SnapshotSchema
}
