package httpapi

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/chronicle-es/chronicle"
)

// feedTailEvents is how many of the newest events the feed's tail keeps:
// a stream further behind reads the store itself until it catches up.
const feedTailEvents = 4096

// feedTail is the newest part of the global log, read from the store and
// encoded once for every event stream of a server. Without it each stream
// reads, upcasts and encodes every new event itself: 50 streams cost 50
// reads a commit, and the appends slow down under them. It reads only
// while a stream is open.
type feedTail struct {
	s *Server

	mu   sync.Mutex
	refs int
	gen  int // of the reader; a stopped reader's late results are dropped
	stop context.CancelFunc
	// ready: base is set. events follow base in the log's read order,
	// without a gap; older ones are dropped beyond feedTailEvents.
	ready  bool
	base   chronicle.Checkpoint
	events []tailEvent
	err    error         // the store error that stopped the reader
	change chan struct{} // closed at every change of the above
}

// tailEvent is an event of the tail as a stream needs it.
type tailEvent struct {
	cp         chronicle.Checkpoint
	typ        string
	streamType string
	sse        []byte // as writeSSE writes it
}

func newFeedTail(s *Server) *feedTail {
	return &feedTail{s: s, change: make(chan struct{})}
}

// acquire registers a stream, starting the reader for the first.
func (t *feedTail) acquire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refs++
	if t.refs > 1 && t.err == nil {
		return
	}
	if t.stop != nil {
		t.stop() // a reader stopped by a store error: start another
	}
	ctx, cancel := context.WithCancel(t.s.streams)
	t.gen++
	t.stop = cancel
	t.ready, t.base, t.events, t.err = false, chronicle.Checkpoint{}, nil, nil
	go t.run(ctx, t.gen)
}

// release unregisters a stream, stopping the reader after the last.
func (t *feedTail) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refs--; t.refs == 0 {
		t.stop()
	}
}

// update applies f unless the reader of gen was stopped, and wakes the
// streams.
func (t *feedTail) update(gen int, f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen != t.gen {
		return false
	}
	f()
	close(t.change)
	t.change = make(chan struct{})
	return true
}

// run reads the log from its head as it was at the start, and follows it
// as projection runners do: store notifications wake it, re-reads after
// one catch what was still held back by an older transaction (on
// PostgreSQL no second notification comes when it becomes visible), and a
// poll every FeedPollInterval catches what notifications cannot report
// (appends by another process on SQLite).
func (t *feedTail) run(ctx context.Context, gen int) {
	store := t.s.opts.Store
	notify := store.Notify(ctx) // before the first read: a commit in between wakes us
	head, err := store.Head(ctx)
	if err != nil {
		t.fail(ctx, gen, err)
		return
	}
	if !t.update(gen, func() { t.ready, t.base = true, head.Checkpoint }) {
		return
	}
	cp := head.Checkpoint
	poll := time.NewTicker(t.s.opts.FeedPollInterval)
	defer poll.Stop()
	var chase time.Duration
	for {
		page, err := store.ReadAll(ctx, cp, chronicle.ReadAllOptions{Limit: MaxFeedLimit})
		if err != nil {
			t.fail(ctx, gen, err)
			return
		}
		if len(page) > 0 {
			evs := make([]tailEvent, len(page))
			for i, e := range t.s.feedEvents(page) {
				var buf bytes.Buffer
				writeSSE(&buf, e)
				evs[i] = tailEvent{cp: page[i].Checkpoint(), typ: e.Type, streamType: chronicle.StreamType(e.StreamID), sse: buf.Bytes()}
			}
			if !t.update(gen, func() { t.add(evs) }) {
				return
			}
			cp = page[len(page)-1].Checkpoint()
			if len(page) == MaxFeedLimit {
				continue
			}
		}
		var chaseT *time.Timer
		var chaseC <-chan time.Time
		if chase > 0 {
			chaseT = time.NewTimer(chase)
			chaseC = chaseT.C
		}
		select {
		case <-notify:
			chase = feedChaseFirst
		case <-chaseC:
			if chase *= 2; chase > feedChaseMax {
				chase = 0
			}
		case <-poll.C:
		case <-ctx.Done():
			return
		}
		if chaseT != nil {
			chaseT.Stop()
		}
	}
}

// add appends evs, dropping the oldest beyond feedTailEvents. Streams keep
// slices of events outside the lock: an element once written never
// changes, and dropping copies into a new array.
func (t *feedTail) add(evs []tailEvent) {
	t.events = append(t.events, evs...)
	if n := len(t.events); n > 2*feedTailEvents {
		drop := n - feedTailEvents
		t.base = t.events[drop-1].cp
		t.events = slices.Clone(t.events[drop:])
	}
}

// fail stops the reader on a store error: the streams end, and their
// clients resume with Last-Event-ID once the store is back.
func (t *feedTail) fail(ctx context.Context, gen int, err error) {
	if ctx.Err() != nil {
		return // stopped: the error is the stop
	}
	t.update(gen, func() { t.err = err })
}

// next returns the tail's events after cp (at most max), with the
// checkpoint of the last one, wanted or not; behind when cp is before the
// tail (read the store instead); and a channel closed at the next change,
// to wait on when there is nothing.
func (t *feedTail) next(cp chronicle.Checkpoint, max int) (evs []tailEvent, behind bool, change <-chan struct{}, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return nil, false, nil, t.err
	}
	if !t.ready {
		return nil, false, t.change, nil
	}
	if cp.Before(t.base) {
		return nil, true, nil, nil
	}
	i := sort.Search(len(t.events), func(i int) bool { return cp.Before(t.events[i].cp) })
	j := min(len(t.events), i+max)
	return t.events[i:j:j], false, t.change, nil
}
