package aggregate

import "sync"

// WithStateCache keeps the state of up to n aggregates this repository last
// ran a command on (0, the default, keeps none). A command on one of them
// skips the load: it decides on the kept state and appends expecting its
// version, and a command on an aggregate it does not know decides on the
// empty state (a new aggregate, as a create command expects). The guess
// stands only if the append lands at that version, which proves the state
// was current; otherwise (another process wrote, the aggregate exists
// already, or the command is refused or does nothing on the guessed state)
// the command loads the aggregate and runs again as without a cache. So the
// cache changes no result, only how many reads a command costs: none for a
// create or a command on a recently used aggregate.
//
// States are shared between the cache and the Results handed out: Decide
// and Evolve must not modify a state (as Definition says), nor may callers
// modify a returned state.
func WithStateCache(n int) Option {
	return func(c *config) { c.cacheSize = max(n, 0) }
}

// stateCache maps a stream to its state after the last command this
// process ran on it. When full, adding evicts an arbitrary entry: cheap,
// and good enough for commands that mostly follow their aggregate's
// creation closely.
type stateCache[S any] struct {
	mu   sync.Mutex
	max  int
	byID map[string]cachedState[S]
}

type cachedState[S any] struct {
	l            Loaded[S]
	lastSnapshot int64 // version of the stream's latest snapshot we know of
}

func newStateCache[S any](n int) *stateCache[S] {
	if n <= 0 {
		return nil
	}
	return &stateCache[S]{max: n, byID: make(map[string]cachedState[S])}
}

// get returns the kept state of stream, or the empty state when none is kept.
func (c *stateCache[S]) get(stream string) cachedState[S] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byID[stream]
}

// put keeps cs as stream's state unless a newer one is kept already (two
// commands on one aggregate may finish in either order).
func (c *stateCache[S]) put(stream string, cs cachedState[S]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.byID[stream]
	if ok && old.l.Version >= cs.l.Version {
		return
	}
	if !ok && len(c.byID) >= c.max {
		for k := range c.byID {
			delete(c.byID, k)
			break
		}
	}
	c.byID[stream] = cs
}

// drop forgets stream: its kept state proved stale.
func (c *stateCache[S]) drop(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byID, stream)
}
