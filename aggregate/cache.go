package aggregate

import (
	"encoding/json"
	"sync"
)

// DefaultStateCacheBytes bounds the state cache's approximate size unless
// WithStateCacheBytes says otherwise.
const DefaultStateCacheBytes = 64 << 20

// WithStateCache keeps the state of up to n aggregates this repository last
// ran a command on (0, the default, keeps none), within a byte budget
// (WithStateCacheBytes). A command on one of them
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

// WithStateCacheBytes bounds the state cache by the approximate size of the
// states it keeps (Definition.Size), so a few large aggregates cannot fill
// memory the way n small ones never would. A state larger than the whole
// budget is not kept. Default DefaultStateCacheBytes.
func WithStateCacheBytes(n int64) Option {
	return func(c *config) { c.cacheBytes = max(n, 0) }
}

// cacheEntryOverhead approximates what an entry costs beyond its state and
// key: the map slot and the cached struct's other fields.
const cacheEntryOverhead = 96

// stateCache maps a stream to its state after the last command this
// process ran on it. When full (by count or by bytes), adding evicts
// arbitrary entries: cheap, and good enough for commands that mostly follow
// their aggregate's creation closely.
type stateCache[S any] struct {
	mu       sync.Mutex
	max      int
	maxBytes int64
	bytes    int64 // sum of the entries' sizes
	size     func(S) int
	byID     map[string]cachedState[S]
}

type cachedState[S any] struct {
	l            Loaded[S]
	lastSnapshot int64 // version of the stream's latest snapshot we know of
	bytes        int64 // approximate size of the entry; set by put
}

func newStateCache[S any](n int, maxBytes int64, size func(S) int) *stateCache[S] {
	if n <= 0 {
		return nil
	}
	if size == nil {
		size = jsonSize[S]
	}
	return &stateCache[S]{max: n, maxBytes: maxBytes, size: size, byID: make(map[string]cachedState[S])}
}

// jsonSize is the size of a state whose Definition has no Size: the length
// of its JSON encoding, a fair guess at what it holds.
func jsonSize[S any](s S) int {
	b, err := json.Marshal(s)
	if err != nil {
		return 0
	}
	return len(b)
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
	cs.bytes = int64(c.size(cs.l.State) + len(stream) + cacheEntryOverhead)
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.byID[stream]
	if ok && old.l.Version >= cs.l.Version {
		return
	}
	c.remove(stream)
	if cs.bytes > c.maxBytes {
		return
	}
	for k := range c.byID {
		if len(c.byID) < c.max && c.bytes+cs.bytes <= c.maxBytes {
			break
		}
		c.remove(k)
	}
	c.byID[stream] = cs
	c.bytes += cs.bytes
}

// drop forgets stream: its kept state proved stale.
func (c *stateCache[S]) drop(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(stream)
}

func (c *stateCache[S]) remove(stream string) {
	if old, ok := c.byID[stream]; ok {
		c.bytes -= old.bytes
		delete(c.byID, stream)
	}
}

// stats returns how many states the cache keeps and their approximate size.
func (c *stateCache[S]) stats() (int, int64) {
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID), c.bytes
}
