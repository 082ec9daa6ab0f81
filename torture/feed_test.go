package torture

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/feed"
	"github.com/chronicle-es/chronicle/pgstore"
)

// sseSubscriber reads GET /events as Server-Sent Events, drops its
// connection at random moments and resumes with Last-Event-ID after the
// last event it got, as any client of the feed does.
type sseSubscriber struct {
	rnd   *rand.Rand
	got   []feed.Event
	conns int
	// violations: within one connection, an event not after the previous.
	violations []string
}

// connect reads one connection until ctx ends, the stream ends or the
// random cut; it reports whether the server answered.
func (s *sseSubscriber) connect(ctx context.Context, base string) error {
	cctx, cancel := context.WithTimeout(ctx, time.Duration(20+s.rnd.IntN(400))*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, base+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if n := len(s.got); n > 0 {
		req.Header.Set("Last-Event-ID", s.got[n-1].Checkpoint)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	s.conns++
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /events: %s", res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id string
	var prev chronicle.Checkpoint
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "id: "):
			id = l[4:]
		case strings.HasPrefix(l, "data: "):
			var e feed.Event
			if err := json.Unmarshal([]byte(l[6:]), &e); err != nil {
				return fmt.Errorf("event data %q: %w", l, err)
			}
			cp, err := feed.ParseCheckpoint(e.Checkpoint)
			if err != nil || e.Checkpoint != id {
				return fmt.Errorf("event %s: checkpoint %q, id %q", e.EventID, e.Checkpoint, id)
			}
			if !prev.Before(cp) && !prev.IsZero() {
				s.violations = append(s.violations, fmt.Sprintf("connection %d: %+v after %+v", s.conns, cp, prev))
			}
			prev = cp
			s.got = append(s.got, e)
		}
	}
	return nil // cut, or the stream ended: resume
}

// TestFeedSubscribersReconnect: 8 clients append through HTTP while 4
// subscribers read the feed as Server-Sent Events, dropping their
// connections every few hundred milliseconds and resuming with
// Last-Event-ID. Each must have seen every event of the log exactly once,
// in the log's read order, as the store reads it at the end. On PostgreSQL
// appends held open before their commit (a slow append) make commit order
// differ from position order: a reader that kept "the last position seen"
// would skip the held events; the feed must not.
func TestFeedSubscribersReconnect(t *testing.T) {
	load := 3 * time.Second
	if testing.Short() {
		load = 1500 * time.Millisecond
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		srv := startServer(t, b.url)
		store := openStore(t, b.url)
		ctx := context.Background()
		lctx, stopLoad := context.WithTimeout(ctx, load)
		defer stopLoad()

		var wg sync.WaitGroup
		var held, reordered atomic.Int64
		if b.name == "postgres" {
			// Slow appends, from a store in this process on the same
			// schema: each holds its transaction open after its insert
			// until an event with a higher position has committed (seen
			// as Head's Committed beyond what readers see), or 500 ms.
			schema := b.url[strings.LastIndex(b.url, "schema=")+len("schema="):]
			slow, err := pgstore.Open(ctx, strings.TrimSuffix(b.url, "&schema="+schema), pgstore.Options{Schema: schema,
				BeforeCommit: func(stream string, _ []chronicle.Event) error {
					if !strings.HasPrefix(stream, "order-slow") {
						return nil
					}
					held.Add(1)
					for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
						if h, err := store.Head(ctx); err == nil && h.Committed > h.Position {
							reordered.Add(1)
							time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
							break
						}
					}
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { slow.Close() })
			wg.Go(func() {
				for i := 0; lctx.Err() == nil; i++ {
					ev := chronicle.Event{Type: "OrderCreated", SchemaVersion: 1,
						Data: json.RawMessage(fmt.Sprintf(`{"customer_id":"cust_slow","total":%d}`, i))}
					if _, err := slow.Append(ctx, fmt.Sprintf("order-slow%d", i), chronicle.NoStream, []chronicle.Event{ev}); err != nil {
						t.Errorf("slow append %d: %v", i, err)
						return
					}
				}
			})
		}

		led := newLedger()
		wg.Go(func() { runClients(lctx, newClients(8, "feed", led, uint64(time.Now().UnixNano()), false), srv.base) })

		// The subscribers run until the load is over and each has reached
		// the end of the log.
		subs := make([]*sseSubscriber, 4)
		var swg sync.WaitGroup
		sctx, stopSubs := context.WithTimeout(ctx, boundedWait)
		defer stopSubs()
		var caughtUp atomic.Pointer[string] // the last checkpoint of the log once the load is over
		for i := range subs {
			s := &sseSubscriber{rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))}
			subs[i] = s
			swg.Go(func() {
				for sctx.Err() == nil {
					if end := caughtUp.Load(); end != nil && len(s.got) > 0 && !checkpointBefore(s.got[len(s.got)-1].Checkpoint, *end) {
						return
					}
					if err := s.connect(sctx, srv.base); err != nil && sctx.Err() == nil {
						time.Sleep(20 * time.Millisecond) // refused or failed: retry, as a client would
					}
				}
			})
		}
		wg.Wait()
		stopLoad()
		waitReadable(t, ctx, store)
		log := readLog(t, ctx, store)
		if len(log) == 0 {
			t.Fatal("nothing was appended")
		}
		end := feed.EncodeCheckpoint(log[len(log)-1].Checkpoint())
		caughtUp.Store(&end)
		swg.Wait()

		// A command cut by the end of the load may still commit after the
		// log was read (the server finishes what it started): such events
		// come after end in read order, so each subscriber must have seen
		// exactly a prefix of the final log reaching at least end.
		waitReadable(t, ctx, store)
		final := readLog(t, ctx, store)
		for i, s := range subs {
			for _, v := range s.violations {
				t.Errorf("subscriber %d: out of order within a connection: %s", i, v)
			}
			switch {
			case len(s.got) < len(log):
				t.Errorf("subscriber %d: %d events seen, did not reach the end of the load's %d", i, len(s.got), len(log))
			case len(s.got) > len(final):
				t.Errorf("subscriber %d: %d events seen, the log has %d", i, len(s.got), len(final))
			default:
				checkFeedSeen(t, i, s.got, final[:len(s.got)])
			}
		}
		log = final
		if b.name == "postgres" && (held.Load() == 0 || reordered.Load() == 0) {
			t.Errorf("slow appends: %d held, %d with a later position committed first; want some of each", held.Load(), reordered.Load())
		}
		events := checkLedger(t, ctx, store, led)
		srv.stop()
		conns := 0
		for _, s := range subs {
			conns += s.conns
		}
		t.Logf("RESULT feed %s: events=%d order_events=%d subscribers=4 connections=%d slow_appends=%d reordered_commits=%d skipped=0 repeated=0",
			b.name, len(log), events, conns, held.Load(), reordered.Load())
	})
}

// readLog returns the whole global log as the store reads it.
func readLog(t testing.TB, ctx context.Context, store chronicle.Store) []chronicle.RecordedEvent {
	t.Helper()
	var out []chronicle.RecordedEvent
	for page, err := range chronicle.ReadAhead(ctx, store, chronicle.Checkpoint{}, chronicle.ReadAllOptions{}) {
		if err != nil {
			t.Fatalf("read log: %v", err)
		}
		out = append(out, page...)
	}
	return out
}

// checkFeedSeen fails unless got is exactly log, in order: it names the
// first difference, repeats and skips.
func checkFeedSeen(t testing.TB, sub int, got []feed.Event, log []chronicle.RecordedEvent) {
	t.Helper()
	seen := map[string]int{}
	for _, e := range got {
		seen[e.EventID]++
	}
	repeated, skipped := 0, 0
	for id, n := range seen {
		if n > 1 {
			repeated++
			if repeated <= 3 {
				t.Errorf("subscriber %d: event %s seen %d times", sub, id, n)
			}
		}
	}
	for _, e := range log {
		if seen[e.ID] == 0 {
			skipped++
			if skipped <= 3 {
				t.Errorf("subscriber %d: skipped %s v%d at position %d", sub, e.StreamID, e.Version, e.Position)
			}
		}
	}
	if repeated > 0 || skipped > 0 || len(got) != len(log) {
		t.Errorf("subscriber %d: %d events seen, the log has %d: %d repeated, %d skipped", sub, len(got), len(log), repeated, skipped)
		return
	}
	for i, e := range log {
		if got[i].EventID != e.ID || got[i].Checkpoint != feed.EncodeCheckpoint(e.Checkpoint()) {
			t.Errorf("subscriber %d: event %d is %s %s, the log has %s %s there (order differs)",
				sub, i, got[i].StreamID, got[i].Checkpoint, e.StreamID, feed.EncodeCheckpoint(e.Checkpoint()))
			return
		}
	}
}

// checkpointBefore reports whether feed checkpoint a comes before b in read
// order; an unparsable one counts as before (not caught up).
func checkpointBefore(a, b string) bool {
	ca, err := feed.ParseCheckpoint(a)
	if err != nil {
		return true
	}
	cb, err := feed.ParseCheckpoint(b)
	if err != nil {
		return true
	}
	return ca.Before(cb)
}
