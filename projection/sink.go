package projection

import (
	"context"
	"errors"
	"slices"

	"github.com/chronicle-es/chronicle"
)

// Sink is a consumer of the log outside the store's database, such as a
// relay to a message broker. The runner follows the log for it as for a
// projection (a checkpoint, a lease, status, lag) but hands it the events
// as stored, outside any transaction, and moves its checkpoint past them
// only once Deliver has returned nil. A crash in between delivers them
// again: the sink's destination must recognize repeats (by event id).
//
// A sink never stops at an event: every error of Deliver is retried, with
// backoff, for as long as it lasts. It has no tables, and no rebuild.
type Sink interface {
	// Name identifies the sink's checkpoint, lease and status, beside the
	// projections' names.
	Name() string
	// Filter narrows what the runner reads (Limit is ignored).
	Filter() chronicle.ReadAllOptions
	// Deliver hands events, in log order, to the outside and returns once
	// they are safely there.
	Deliver(ctx context.Context, events []chronicle.RecordedEvent) error
}

// ErrSink: the operation needs a projection, and the name is a sink's.
var ErrSink = errors.New("projection: a sink has no read model")

// IsSink reports whether name is a sink's, run here (Options.Sinks) or
// watched (Options.Watch), rather than a projection's.
func (r *Runner) IsSink(name string) bool {
	if w, ok := r.byName[name]; ok {
		return w.sink != nil
	}
	return slices.Contains(r.opts.Watch, name)
}
