package torture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
)

// requestTimeout bounds every request of the load: a server that hangs
// instead of answering shows up as a timeout, which the scenarios count.
const requestTimeout = 15 * time.Second

// command is one HTTP command of an order's plan.
type command struct {
	method, path, body string
	event              string // the event type it appends
}

// plan is the commands a client sends for one order, in order.
type plan struct {
	order string
	cmds  []command
	next  int
	total int64
}

// ack is an acknowledged command: the server answered 2xx with the order's
// new version.
type ack struct {
	order   string
	version int64
	event   string
}

// ledger records what the server acknowledged and how it answered.
type ledger struct {
	mu         sync.Mutex
	acks       []ack
	byOrder    map[string][]ack
	codes      map[int]int // non-2xx answers by status
	transport  int         // requests without an answer (connection refused, reset...)
	timeouts   int         // requests that hit requestTimeout
	violations []string    // answers that must never happen (4xx on a valid command)
	pending    map[string]bool
}

func newLedger() *ledger {
	return &ledger{byOrder: map[string][]ack{}, codes: map[int]int{}, pending: map[string]bool{}}
}

func (l *ledger) record(a ack) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks = append(l.acks, a)
	l.byOrder[a.order] = append(l.byOrder[a.order], a)
}

func (l *ledger) count(f func(l *ledger)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

func (l *ledger) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

// client sends the commands of its plans, one at a time, and retries a
// command whose outcome it does not know (no answer, 5xx) with the same
// Idempotency-Key until it gets an answer: so every command is applied
// exactly once however often the server dies meanwhile.
type client struct {
	name  string
	led   *ledger
	rnd   *rand.Rand
	http  *http.Client
	mixed bool // the soak's mixed commands, or create + pay (+ ship)
	seq   int
	cur   *plan
}

func newClient(name string, led *ledger, seed uint64, mixed bool) *client {
	return &client{
		name: name, led: led, mixed: mixed,
		rnd:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		http: &http.Client{Timeout: requestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 2}},
	}
}

func item(sku string, qty int, price int64) string {
	return fmt.Sprintf(`{"sku":%q,"quantity":%d,"unit_price":%d}`, sku, qty, price)
}

// newPlan draws the commands of the client's next order.
func (c *client) newPlan() *plan {
	c.seq++
	id := fmt.Sprintf("%s_%d", c.name, c.seq)
	p := &plan{order: id}
	price := int64(100 + c.rnd.IntN(10000))
	p.total = 2 * price
	add := func(method, path, body, event string) {
		p.cmds = append(p.cmds, command{method, path, body, event})
	}
	add("POST", "/orders", fmt.Sprintf(`{"order_id":%q,"customer_id":"cust_%d","items":[%s]}`, id, c.rnd.IntN(50), item("SKU-A", 2, price)), "OrderCreated")
	o := "/orders/" + id
	if c.mixed {
		// Distinct SKUs: the same SKU again at another price is a rule
		// violation (409), which this load must never provoke.
		for i := range c.rnd.IntN(3) {
			extra := int64(50 + c.rnd.IntN(500))
			p.total += extra
			add("POST", o+"/items", item(fmt.Sprintf("SKU-%d-%d", i, c.rnd.IntN(1000)), 1, extra), "ItemAdded")
		}
		if c.rnd.IntN(3) == 0 {
			add("PUT", o+"/shipping-address", `{"name":"J. Smith","line1":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"}`, "ShippingAddressChanged")
		}
		if c.rnd.IntN(6) == 0 {
			add("POST", o+"/cancellation", `{"reason":"changed mind"}`, "OrderCancelled")
			return p
		}
	}
	add("POST", o+"/payments", fmt.Sprintf(`{"method":"card","amount":%d}`, p.total), "PaymentReceived")
	if !c.mixed && c.rnd.IntN(2) == 0 {
		return p
	}
	add("POST", o+"/shipments", `{"carrier":"fedex","tracking":"FX1"}`, "OrderShipped")
	if c.mixed && c.rnd.IntN(2) == 0 {
		add("POST", o+"/delivery", `{"signed_by":"J. Smith"}`, "OrderDelivered")
	}
	return p
}

// run sends commands to base until ctx ends. A command in flight when ctx
// ends stays the client's next command: the next run retries it, with the
// same Idempotency-Key.
func (c *client) run(ctx context.Context, base string) {
	c.runVia(ctx, func() string { return base })
}

// runVia is run with each request sent to the server route names then: a
// command retried after a failure may go to another server.
func (c *client) runVia(ctx context.Context, route func() string) {
	for ctx.Err() == nil {
		if c.cur == nil {
			c.cur = c.newPlan()
			c.led.mu.Lock()
			c.led.pending[c.cur.order] = true
			c.led.mu.Unlock()
		}
		p := c.cur
		cmd := p.cmds[p.next]
		key := fmt.Sprintf("%s/%d", p.order, p.next)
		status, version, err := c.send(ctx, route(), cmd, key)
		switch {
		case ctx.Err() != nil:
			return
		case status == 0:
			c.led.count(func(l *ledger) {
				if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout") {
					l.timeouts++
				} else {
					l.transport++
				}
			})
		case status/100 == 2:
			c.led.record(ack{order: p.order, version: version, event: cmd.event})
			if p.next++; p.next == len(p.cmds) {
				c.led.mu.Lock()
				delete(c.led.pending, p.order)
				c.led.mu.Unlock()
				c.cur = nil
			}
			continue
		case status >= 500:
			c.led.count(func(l *ledger) { l.codes[status]++ })
		default:
			c.led.count(func(l *ledger) {
				l.codes[status]++
				l.violations = append(l.violations, fmt.Sprintf("%s %s (key %s): %d %s", cmd.method, cmd.path, key, status, err))
			})
			// Not retried: the plan is valid, so a 4xx is a server fault;
			// go on with a new order so the load continues.
			c.led.mu.Lock()
			delete(c.led.pending, p.order)
			c.led.mu.Unlock()
			c.cur = nil
		}
		// The outcome is unknown: retry the same command soon.
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(20+c.rnd.IntN(30)) * time.Millisecond):
		}
	}
}

// send sends one command; it returns the status and X-Event-Version, or an
// error when no answer came. For a 4xx the error holds the body.
func (c *client) send(ctx context.Context, base string, cmd command, key string) (int, int64, error) {
	req, err := http.NewRequestWithContext(ctx, cmd.method, base+cmd.path, strings.NewReader(cmd.body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := c.http.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, 0, err
	}
	if res.StatusCode/100 != 2 {
		return res.StatusCode, 0, errors.New(strings.TrimSpace(string(body)))
	}
	v, err := strconv.ParseInt(res.Header.Get("X-Event-Version"), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%s %s: bad X-Event-Version %q", cmd.method, cmd.path, res.Header.Get("X-Event-Version"))
	}
	return res.StatusCode, v, nil
}

// runClients runs n clients against base until ctx ends.
func runClients(ctx context.Context, clients []*client, base string) {
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(ctx, base) })
	}
	wg.Wait()
}

func newClients(n int, prefix string, led *ledger, seed uint64, mixed bool) []*client {
	out := make([]*client, n)
	for i := range out {
		out[i] = newClient(fmt.Sprintf("%s%d", prefix, i), led, seed+uint64(i), mixed)
	}
	return out
}

// checkLedger checks the store against everything acknowledged: each
// acknowledged command's event is at its version, each order's versions
// are exactly 1..n, no event is there twice, and an order holds no event
// beyond its acknowledged ones but for the one command in flight (pending
// orders). It returns the number of events checked.
func checkLedger(t testing.TB, ctx context.Context, store chronicle.Store, led *ledger) int {
	t.Helper()
	led.mu.Lock()
	defer led.mu.Unlock()
	for _, v := range led.violations {
		t.Errorf("violation: %s", v)
	}
	events := 0
	orders := make([]string, 0, len(led.byOrder))
	for id := range led.byOrder {
		orders = append(orders, id)
	}
	sort.Strings(orders)
	for _, id := range orders {
		acks := led.byOrder[id]
		evs, err := store.ReadStream(ctx, "order-"+id, chronicle.ReadStreamOptions{})
		if err != nil {
			t.Errorf("order %s: %d commands acknowledged, read: %v (LOST)", id, len(acks), err)
			continue
		}
		events += len(evs)
		seen := map[string]bool{}
		for i, e := range evs {
			if e.Version != int64(i+1) {
				t.Errorf("order %s: event %d has version %d (versions not contiguous)", id, i, e.Version)
			}
			if seen[e.ID] {
				t.Errorf("order %s: event id %s twice", id, e.ID)
			}
			seen[e.ID] = true
		}
		for _, a := range acks {
			if a.version < 1 || a.version > int64(len(evs)) {
				t.Errorf("order %s: acknowledged %s at v%d, stream has %d events (LOST)", id, a.event, a.version, len(evs))
				continue
			}
			if got := evs[a.version-1].Type; got != a.event {
				t.Errorf("order %s: acknowledged %s at v%d, the store has %s there", id, a.event, a.version, got)
			}
		}
		extra := len(evs) - len(acks)
		if extra < 0 || extra > 1 || (extra == 1 && !led.pending[id]) {
			t.Errorf("order %s: %d events for %d acknowledged commands (pending=%v): duplicate or phantom append",
				id, len(evs), len(acks), led.pending[id])
		}
	}
	return events
}

// checkLog reads the whole global log and checks it against the streams:
// every event once, in strictly increasing (tx, position) order, and each
// stream's events in the log are exactly its events 1..n (no skip). It
// returns the log's length.
func checkLog(t testing.TB, ctx context.Context, store chronicle.Store) int {
	t.Helper()
	waitReadable(t, ctx, store)
	var from chronicle.Checkpoint
	perStream := map[string]int64{}
	ids := map[string]bool{}
	n := 0
	for {
		evs, err := store.ReadAll(ctx, from, chronicle.ReadAllOptions{Limit: 1000})
		if err != nil {
			t.Fatalf("read log: %v", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			cp := e.Checkpoint()
			if !from.Before(cp) {
				t.Fatalf("log not in increasing order: %+v after %+v", cp, from)
			}
			from = cp
			if ids[e.ID] {
				t.Errorf("event %s twice in the log", e.ID)
			}
			ids[e.ID] = true
			if e.Version != perStream[e.StreamID]+1 {
				// Within a stream, commit order is version order.
				t.Errorf("log: %s v%d after v%d (skip or reorder)", e.StreamID, e.Version, perStream[e.StreamID])
			}
			perStream[e.StreamID] = e.Version
			n++
		}
	}
	for stream, last := range perStream {
		v, err := store.StreamVersion(ctx, stream)
		if err != nil {
			t.Fatalf("stream version %s: %v", stream, err)
		}
		if v != last {
			t.Errorf("stream %s is at v%d but the log holds v1..v%d", stream, v, last)
		}
	}
	return n
}

// waitReadable waits until readers can see every event committed when it
// was called. On PostgreSQL a transaction of another session (another test
// on the same cluster) holds back what readers see (the log's read order
// never skips), so a check that reads the log must first wait it out.
func waitReadable(t testing.TB, ctx context.Context, store chronicle.Store) {
	t.Helper()
	head, err := store.Head(ctx)
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	deadline := time.Now().Add(boundedWait)
	for head.Position < head.Committed {
		if time.Now().After(deadline) {
			t.Fatalf("readers still see position %d of %d committed after %v", head.Position, head.Committed, boundedWait)
		}
		time.Sleep(20 * time.Millisecond)
		now, err := store.Head(ctx)
		if err != nil {
			t.Fatalf("head: %v", err)
		}
		head.Position = now.Position
	}
}

// waitProjections asks the read model for every order acknowledged since
// the from'th acknowledgement at its last acknowledged version (GET
// /orders/{id}?min_version=N), retrying a 504 until a bounded deadline: the
// projections must resume and catch up. It returns the number of
// acknowledgements so far, the next call's from.
func waitProjections(t testing.TB, s *server, led *ledger, from int) int {
	t.Helper()
	led.mu.Lock()
	want := map[string]int64{}
	for _, a := range led.acks[from:] {
		want[a.order] = max(want[a.order], a.version)
	}
	next := len(led.acks)
	led.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), boundedWait)
	defer cancel()
	for id, v := range want {
		for {
			var body struct {
				Version int64 `json:"version"`
			}
			err := s.getJSON(ctx, fmt.Sprintf("/orders/%s?min_version=%d", id, v), &body)
			if err == nil && body.Version >= v {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("read model never reached %s v%d: %v\n%s", id, v, err, s.log())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return next
}

func itoa[T ~int | ~int64](n T) string { return strconv.FormatInt(int64(n), 10) }
