package order

import "github.com/chronicle-es/chronicle/aggregate"

// Definition is the order aggregate: this package's pure decider and fold,
// plugged into the generic repository of package aggregate.
func Definition() aggregate.Definition[State, Command, Event] {
	return aggregate.Definition[State, Command, Event]{
		StreamID:       StreamID,
		Decide:         Decide,
		Evolve:         Evolve,
		SnapshotSchema: SnapshotSchema,
		Size:           State.Size,
	}
}
