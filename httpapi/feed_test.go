package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/feed"
)

// appendMixed appends n events over a few streams of two stream types and
// three event types, directly to the store.
func appendMixed(t *testing.T, s chronicle.Store, n int) {
	t.Helper()
	ctx := context.Background()
	types := []string{"Alpha", "Beta", "Gamma"}
	for i := range n {
		stream := fmt.Sprintf("order-f%d", i%7)
		if i%3 == 0 {
			stream = fmt.Sprintf("invoice-f%d", i%5)
		}
		ev := chronicle.Event{Type: types[i%len(types)], Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
		if _, err := s.Append(ctx, stream, chronicle.Any, []chronicle.Event{ev}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// readAllFrom returns every event ReadAll gives after cp with opts, paging.
func readAllFrom(t *testing.T, s chronicle.Store, cp chronicle.Checkpoint, opts chronicle.ReadAllOptions) []chronicle.RecordedEvent {
	t.Helper()
	var out []chronicle.RecordedEvent
	for page, err := range chronicle.ReadAhead(context.Background(), s, cp, opts) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
	}
	return out
}

// waitLog returns the whole log once ReadAll shows n events: on
// PostgreSQL a committed event stays invisible while an older transaction
// (a projection's, say) is open.
func waitLog(t *testing.T, s chronicle.Store, n int) []chronicle.RecordedEvent {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		all := readAllFrom(t, s, chronicle.Checkpoint{}, chronicle.ReadAllOptions{})
		if len(all) == n {
			return all
		}
		if len(all) > n || time.Now().After(deadline) {
			t.Fatalf("the log shows %d events, want %d", len(all), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// feedAll pages through GET /events with query q (limit included) from
// after, and returns every event and the last next.
func feedAll(t *testing.T, e *env, q, after string) ([]feed.Event, string) {
	t.Helper()
	var all []feed.Event
	for {
		path := "/events?" + q
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		var p feedPage
		if err := json.Unmarshal(e.mustDo(req{method: "GET", path: path}, 200).body, &p); err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Events...)
		if p.Next == "" {
			t.Fatal("empty next")
		}
		if len(p.Events) == 0 {
			if after != "" && p.Next != after {
				t.Fatalf("empty page: next %q, want after %q", p.Next, after)
			}
			return all, p.Next
		}
		after = p.Next
	}
}

// sameEvents fails unless got lists exactly the events of want, in order.
func sameEvents(t *testing.T, got []feed.Event, want []chronicle.RecordedEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.EventID != w.ID || g.Checkpoint != feed.EncodeCheckpoint(w.Checkpoint()) || g.Position != w.Position ||
			g.StreamID != w.StreamID || g.Version != w.Version || g.Type != w.Type {
			t.Fatalf("event %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestFeedPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		// An empty log: an empty page whose next starts the log.
		got, next := feedAll(t, e, "limit=10", "")
		if len(got) != 0 || next != feed.EncodeCheckpoint(chronicle.Checkpoint{}) {
			t.Fatalf("empty log: %d events, next %q", len(got), next)
		}
		appendMixed(t, e.store, 300)
		e.create("o-feed") // an order event, upcast and with metadata
		all := waitLog(t, e.store, 301)

		got, next = feedAll(t, e, "limit=37", "")
		sameEvents(t, got, all)
		if want := got[len(got)-1].Checkpoint; next != want {
			t.Errorf("last next %q, want the last event's %q", next, want)
		}
		last := got[len(got)-1]
		if last.Type != "OrderCreated" || last.SchemaVersion < 1 || last.RecordedAt.IsZero() ||
			!strings.Contains(string(last.Metadata), `"actor":"anonymous"`) || !strings.Contains(string(last.Data), `"customer_id":"cust_1"`) {
			t.Errorf("order event: %+v", last)
		}

		// The default page is 100 events.
		var p feedPage
		if err := json.Unmarshal(e.mustDo(req{method: "GET", path: "/events"}, 200).body, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Events) != DefaultFeedLimit {
			t.Errorf("default page: %d events, want %d", len(p.Events), DefaultFeedLimit)
		}

		// Resuming in the middle gives the rest.
		mid := got[150].Checkpoint
		rest, _ := feedAll(t, e, "limit=1000", mid)
		sameEvents(t, rest, all[151:])

		// Filters, alone and together.
		for _, tc := range []struct {
			q    string
			opts chronicle.ReadAllOptions
		}{
			{"types=Alpha,Gamma", chronicle.ReadAllOptions{EventTypes: []string{"Alpha", "Gamma"}}},
			{"stream_types=invoice", chronicle.ReadAllOptions{StreamTypes: []string{"invoice"}}},
			{"stream_types=order&types=Beta", chronicle.ReadAllOptions{StreamTypes: []string{"order"}, EventTypes: []string{"Beta"}}},
			{"types=Nothing", chronicle.ReadAllOptions{EventTypes: []string{"Nothing"}}},
		} {
			t.Run(tc.q, func(t *testing.T) {
				want := readAllFrom(t, e.store, chronicle.Checkpoint{}, tc.opts)
				if len(want) == 0 && tc.q != "types=Nothing" {
					t.Fatal("the filter selects nothing: a useless case")
				}
				got, _ := feedAll(t, e, tc.q+"&limit=13", "")
				sameEvents(t, got, want)
			})
		}
	})
}

func TestFeedBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("o-1")
		e.waitVersion("o-1", 1) // readers see it
		good := feed.EncodeCheckpoint(chronicle.Checkpoint{TxID: 1, Position: 1})
		all, err := e.store.ReadAll(context.Background(), chronicle.Checkpoint{}, chronicle.ReadAllOptions{})
		if err != nil || len(all) == 0 {
			t.Fatalf("ReadAll: %d events, %v", len(all), err)
		}
		last := all[len(all)-1].Checkpoint()
		// Well-formed, but no stored event's: a consumer holding one would
		// read empty pages, then skip what came before it.
		beyond := feed.EncodeCheckpoint(chronicle.Checkpoint{TxID: last.TxID + 100, Position: last.Position + 100})
		noEvent := feed.EncodeCheckpoint(chronicle.Checkpoint{TxID: last.TxID + 1, Position: last.Position})
		stream := map[string]string{"Accept": "text/event-stream"}
		for _, tc := range []struct {
			name   string
			path   string
			header map[string]string
		}{
			{"garbage after", "/events?after=nonsense", nil},
			{"after too long", "/events?after=" + good + "A", nil},
			{"after not canonical", "/events?after=" + good[:21] + "B", nil},
			{"after negative position", "/events?after=" + feed.EncodeCheckpoint(chronicle.Checkpoint{TxID: 1, Position: -1}), nil},
			{"after position without txid", "/events?after=" + feed.EncodeCheckpoint(chronicle.Checkpoint{Position: 5}), nil},
			{"after twice", "/events?after=" + good + "&after=" + good, nil},
			{"empty after", "/events?after=", nil},
			{"limit zero", "/events?limit=0", nil},
			{"limit above max", "/events?limit=1001", nil},
			{"limit not a number", "/events?limit=ten", nil},
			{"unknown parameter", "/events?from=0", nil},
			{"empty types", "/events?types=", nil},
			{"empty type in list", "/events?types=A,,B", nil},
			{"control character in type", "/events?types=A%01", nil},
			{"stream type with dash", "/events?stream_types=order-1", nil},
			{"too many types", "/events?types=" + strings.Repeat("A,", 100) + "A", nil},
			{"bad Last-Event-ID", "/events", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "zzz"}},
			{"bad after on a stream", "/events?after=zzz", map[string]string{"Accept": "text/event-stream"}},
			{"after beyond the head", "/events?after=" + beyond, nil},
			{"after of no event", "/events?after=" + noEvent, nil},
			{"after beyond the head on a stream", "/events?after=" + beyond, stream},
			{"Last-Event-ID beyond the head", "/events", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": beyond}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				isProblem(t, e.do(req{method: "GET", path: tc.path, header: tc.header}), 400)
			})
		}
	})
}

// sseStream is an open event stream; lines has its lines.
type sseStream struct {
	res   *http.Response
	lines chan string
}

// openStream opens GET path as an event stream and fails unless it is one.
func openStream(t *testing.T, base, path string, header map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hr, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	hr.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("status %d, Content-Type %q: %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	s := &sseStream{res: res, lines: make(chan string, 1000)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	return s
}

// waitLine returns the first line for which ok holds, and fails if the
// stream ends first or nothing comes within the deadline.
func (s *sseStream) waitLine(t *testing.T, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, open := <-s.lines:
			if !open {
				t.Fatal("the stream ended")
			}
			if ok(l) {
				return l
			}
		case <-deadline:
			t.Fatal("no such line within 20 s")
		}
	}
}

// waitEnd fails unless the stream ends within the deadline.
func (s *sseStream) waitEnd(t *testing.T) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case _, open := <-s.lines:
			if !open {
				return
			}
		case <-deadline:
			t.Fatal("the stream did not end within 20 s")
		}
	}
}

func TestFeedStreamFormat(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open(), func(o *Options) { o.FeedHeartbeat = 50 * time.Millisecond })
		e.create("o-1")
		all := waitLog(t, e.store, 1)
		s := openStream(t, e.ts.URL, "/events", nil)
		id := s.waitLine(t, func(l string) bool { return strings.HasPrefix(l, "id: ") })
		if want := "id: " + feed.EncodeCheckpoint(all[0].Checkpoint()); id != want {
			t.Errorf("%q, want %q", id, want)
		}
		if l := s.waitLine(t, func(string) bool { return true }); l != "event: OrderCreated" {
			t.Errorf("%q, want event: OrderCreated", l)
		}
		data := s.waitLine(t, func(string) bool { return true })
		var ev feed.Event
		if err := json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &ev); err != nil || ev.EventID != all[0].ID {
			t.Errorf("data %q: %v", data, err)
		}
		// Idle: heartbeats, then a new event as soon as it commits.
		s.waitLine(t, func(l string) bool { return strings.HasPrefix(l, ":") })
		e.mustDo(req{method: "POST", path: "/orders/o-1/items", body: `{"sku":"B","quantity":1,"unit_price":5}`}, 200)
		s.waitLine(t, func(l string) bool { return l == "event: ItemAdded" })

		// Last-Event-ID resumes after that event; it beats after=.
		s2 := openStream(t, e.ts.URL, "/events?after="+url.QueryEscape(feed.EncodeCheckpoint(chronicle.Checkpoint{})),
			map[string]string{"Last-Event-ID": feed.EncodeCheckpoint(all[0].Checkpoint())})
		if l := s2.waitLine(t, func(l string) bool { return strings.HasPrefix(l, "event: ") }); l != "event: ItemAdded" {
			t.Errorf("resumed stream starts with %q, want event: ItemAdded", l)
		}
	})
}

// TestFeedStreamOutlivesWriteTimeout: a stream lasts longer than the write
// timeout, which applies to each write instead.
func TestFeedStreamOutlivesWriteTimeout(t *testing.T) {
	open := reopeners()[0].open(t)
	const wt = 100 * time.Millisecond
	e := newEnv(t, open(), func(o *Options) { o.WriteTimeout, o.FeedHeartbeat = wt, 20*time.Millisecond })
	start := time.Now()
	s := openStream(t, e.ts.URL, "/events", nil)
	s.waitLine(t, func(string) bool { return time.Since(start) > 5*wt })
	e.create("o-late")
	s.waitLine(t, func(l string) bool { return l == "event: OrderCreated" })
}

func TestFeedSubscriberCap(t *testing.T) {
	open := reopeners()[0].open(t)
	e := newEnv(t, open(), func(o *Options) { o.MaxFeedSubscribers = 2 })
	gauge := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			body := string(e.mustDo(req{method: "GET", path: "/metrics"}, 200).body)
			if strings.Contains(body, "\nchronicle_feed_subscribers "+want+"\n") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("chronicle_feed_subscribers never %s:\n%s", want, body)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	openStream(t, e.ts.URL, "/events", nil)
	s2 := openStream(t, e.ts.URL, "/events", nil)
	gauge("2")
	got := e.do(req{method: "GET", path: "/events", header: map[string]string{"Accept": "text/event-stream"}})
	isProblem(t, got, 503)
	if got.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	// Pages are not streams: they are not capped.
	e.mustDo(req{method: "GET", path: "/events"}, 200)
	s2.res.Body.Close()
	gauge("1")
	openStream(t, e.ts.URL, "/events", nil)
}

func TestFeedEndStreams(t *testing.T) {
	open := reopeners()[0].open(t)
	e := newEnv(t, open())
	s := openStream(t, e.ts.URL, "/events", nil)
	e.server.EndStreams()
	s.waitEnd(t)
}

// TestFeedOtherProcess: on SQLite, events appended by another process (a
// second store handle: its notifications do not cross) reach a stream
// through the poll.
func TestFeedOtherProcess(t *testing.T) {
	open := reopeners()[0].open(t)
	e := newEnv(t, open(), func(o *Options) { o.FeedPollInterval = 50 * time.Millisecond })
	other := open()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan feed.Event, 10)
	go func() {
		_ = feed.Subscribe(ctx, e.ts.URL, "", func(_ context.Context, ev feed.Event) error {
			got <- ev
			return nil
		}, feed.Options{})
	}()
	if _, err := other.Append(ctx, "thing-1", chronicle.Any, []chronicle.Event{{Type: "Made", Data: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.StreamID != "thing-1" || ev.Type != "Made" {
			t.Errorf("got %+v", ev)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream never saw the other handle's event")
	}
}

// cutTransport cuts each response body after a random number of bytes,
// as a flaky network would: the subscriber must reconnect and resume.
type cutTransport struct {
	mu      sync.Mutex
	rnd     *rand.Rand
	resumes atomic.Int64 // requests that carried Last-Event-ID
}

func (c *cutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Last-Event-ID") != "" {
		c.resumes.Add(1)
	}
	res, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	n := 200 + c.rnd.Int64N(6000)
	c.mu.Unlock()
	res.Body = &cutBody{ReadCloser: res.Body, left: n}
	return res, nil
}

type cutBody struct {
	io.ReadCloser
	left int64
}

var errCut = errors.New("cut by the test")

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errCut
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// TestFeedSubscribers: 8 writers append through the API while 4
// subscribers (the feed package) are cut off at random and resume with
// Last-Event-ID: each sees every event exactly once, in the log's order.
func TestFeedSubscribers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		const writers, perWriter, subscribers = 8, 12, 4
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()

		type seen struct {
			mu     sync.Mutex
			events []feed.Event
			ids    map[string]bool
			dup    string
		}
		subs := make([]*seen, subscribers)
		transports := make([]*cutTransport, subscribers)
		var wg sync.WaitGroup
		for i := range subs {
			subs[i] = &seen{ids: map[string]bool{}}
			transports[i] = &cutTransport{rnd: rand.New(rand.NewPCG(uint64(i), 1))}
			wg.Go(func() {
				s := subs[i]
				err := feed.Subscribe(ctx, e.ts.URL, "", func(_ context.Context, ev feed.Event) error {
					s.mu.Lock()
					defer s.mu.Unlock()
					if s.ids[ev.EventID] && s.dup == "" {
						s.dup = ev.EventID
					}
					s.ids[ev.EventID] = true
					s.events = append(s.events, ev)
					return nil
				}, feed.Options{Client: &http.Client{Transport: transports[i]}, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
				if !errors.Is(err, context.Canceled) {
					t.Errorf("subscriber %d: %v", i, err)
				}
			})
		}

		var writes sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			writes.Go(func() {
				id := fmt.Sprintf("o-w%d", w)
				body := `{"order_id":"` + id + `","customer_id":"cust_1"}`
				if r, err := tryHTTP(e.ts.URL, req{method: "POST", path: "/orders", body: body}); err != nil || r.status != 201 {
					errs <- fmt.Errorf("create %s: %v %d %s", id, err, r.status, r.body)
					return
				}
				for i := range perWriter - 1 {
					body := fmt.Sprintf(`{"sku":"S%d","quantity":1,"unit_price":100}`, i)
					if r, err := tryHTTP(e.ts.URL, req{method: "POST", path: "/orders/" + id + "/items", body: body}); err != nil || r.status != 200 {
						errs <- fmt.Errorf("add to %s: %v %d %s", id, err, r.status, r.body)
						return
					}
				}
			})
		}
		writes.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		all := waitLog(t, e.store, writers*perWriter)
		deadline := time.Now().Add(60 * time.Second)
		for i, s := range subs {
			for {
				s.mu.Lock()
				n := len(s.events)
				s.mu.Unlock()
				if n >= len(all) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("subscriber %d saw %d of %d events within 60 s", i, n, len(all))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		cancel()
		wg.Wait()
		for i, s := range subs {
			if s.dup != "" {
				t.Errorf("subscriber %d saw event %s twice", i, s.dup)
			}
			sameEvents(t, s.events, all)
			if n := transports[i].resumes.Load(); n < 2 {
				t.Errorf("subscriber %d resumed %d times: the test cut too little", i, n)
			}
		}
		if !slices.IsSortedFunc(all, func(a, b chronicle.RecordedEvent) int {
			if a.Checkpoint().Before(b.Checkpoint()) {
				return -1
			}
			return 1
		}) {
			t.Error("ReadAll is not in checkpoint order")
		}
	})
}

// TestFeedStreamFiltered: a filtered stream sends only the events asked
// for, each once and in order, while other events keep committing (its
// reads skip ahead past them to the head).
func TestFeedStreamFiltered(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open(), func(o *Options) { o.FeedPollInterval = 20 * time.Millisecond })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var mu sync.Mutex
		var got []feed.Event
		done := make(chan error, 1)
		go func() {
			done <- feed.Subscribe(ctx, e.ts.URL, "", func(_ context.Context, ev feed.Event) error {
				mu.Lock()
				got = append(got, ev)
				mu.Unlock()
				return nil
			}, feed.Options{Types: []string{"Beta"}, StreamTypes: []string{"order"}, MinBackoff: time.Millisecond})
		}()
		for range 5 {
			appendMixed(t, e.store, 30)
		}
		waitLog(t, e.store, 150)
		want := readAllFrom(t, e.store, chronicle.Checkpoint{}, chronicle.ReadAllOptions{EventTypes: []string{"Beta"}, StreamTypes: []string{"order"}})
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n >= len(want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		sameEvents(t, got, want)
	})
}

// TestFeedAfterNow: after=now starts at the log's head, so that a reader
// that only wants what is new (the console's tail) need not read the log.
func TestFeedAfterNow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		// On an empty log, now is the start of the log.
		got, next := feedAll(t, e, "limit=10&after=now", "")
		if len(got) != 0 || next != feed.EncodeCheckpoint(chronicle.Checkpoint{}) {
			t.Fatalf("empty log: %d events, next %q", len(got), next)
		}
		appendMixed(t, e.store, 20)
		all := waitLog(t, e.store, 20)
		got, next = feedAll(t, e, "limit=10&after=now", "")
		if want := feed.EncodeCheckpoint(all[19].Checkpoint()); len(got) != 0 || next != want {
			t.Fatalf("%d events, next %q; want none and the head %q", len(got), next, want)
		}
		// A stream from now sends only what commits after it opened; a
		// Last-Event-ID still wins.
		s := openStream(t, e.ts.URL, "/events?after=now", nil)
		s2 := openStream(t, e.ts.URL, "/events?after=now", map[string]string{"Last-Event-ID": feed.EncodeCheckpoint(all[18].Checkpoint())})
		e.create("o-now")
		if l := s.waitLine(t, func(l string) bool { return strings.HasPrefix(l, "event: ") }); l != "event: OrderCreated" {
			t.Errorf("stream from now starts with %q, want event: OrderCreated", l)
		}
		if l := s2.waitLine(t, func(l string) bool { return strings.HasPrefix(l, "id: ") }); l != "id: "+feed.EncodeCheckpoint(all[19].Checkpoint()) {
			t.Errorf("stream with Last-Event-ID starts with %q, want the 20th event", l)
		}
	})
}

// readCounter counts ReadAll calls.
type readCounter struct {
	chronicle.Store
	reads atomic.Int64
}

func (c *readCounter) ReadAll(ctx context.Context, from chronicle.Checkpoint, opts chronicle.ReadAllOptions) ([]chronicle.RecordedEvent, error) {
	c.reads.Add(1)
	return c.Store.ReadAll(ctx, from, opts)
}

// TestFeedStreamsShareReads: streams that are caught up do not each read
// the store for every new event: the server reads it once for all of them
// (with 50 streams, 50 reads a commit slowed the appends down).
func TestFeedStreamsShareReads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		var rc *readCounter
		e := newEnv(t, open(), func(o *Options) { rc = &readCounter{Store: o.Store}; o.Store = rc })
		const streams, events = 30, 5
		ss := make([]*sseStream, streams)
		for i := range ss {
			ss[i] = openStream(t, e.ts.URL, "/events?after=now", nil) // returns with the headers: the stream is open
		}
		before := rc.reads.Load()
		for i := range events {
			e.create(fmt.Sprintf("o-share-%d", i))
		}
		for _, s := range ss {
			for range events {
				s.waitLine(t, func(l string) bool { return l == "event: OrderCreated" })
			}
		}
		if n := rc.reads.Load() - before; n >= streams*events {
			t.Errorf("%d streams got %d events with %d reads of the store, want fewer than one per stream and event", streams, events, n)
		}
	})
}
