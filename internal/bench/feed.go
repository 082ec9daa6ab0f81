package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// W9Subscribers is the number of event-stream subscribers of W9.
const W9Subscribers = 50

// w9Sub is one subscriber of W9: when it read each order's OrderCreated.
type w9Sub struct {
	got map[string]time.Time // order id -> when its event was read
	// sinceRecorded: for each event recorded after from, from its
	// recorded_at (taken inside the append, before the commit) to now.
	from          time.Time
	sinceRecorded []time.Duration
	last          string // checkpoint of the last event read
	n             int    // events read
	repeated      int
	err           error
}

// read follows GET /events as Server-Sent Events from after until ctx ends.
func (s *w9Sub) read(ctx context.Context, client *http.Client, base, after string, ready chan<- struct{}) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?after="+after, nil)
	if err != nil {
		s.err = err
		close(ready)
		return
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := client.Do(req)
	close(ready)
	if err != nil {
		s.err = err
		return
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		s.err = fmt.Errorf("GET /events: %d: %s", res.StatusCode, bytes.TrimSpace(b))
		return
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := []byte(`"stream_id":"order-`)
	for sc.Scan() {
		l := sc.Bytes()
		switch {
		case bytes.HasPrefix(l, []byte("id: ")):
			s.last = string(l[4:])
		case bytes.HasPrefix(l, []byte("data: ")):
			now := time.Now()
			// The order id, without decoding the whole event: 50 readers
			// decoding every event would load the machine they measure.
			i := bytes.Index(l, prefix)
			if i < 0 {
				s.err = fmt.Errorf("event without an order stream: %.80s", l)
				return
			}
			rest := l[i+len(prefix):]
			id := string(rest[:bytes.IndexByte(rest, '"')])
			if _, dup := s.got[id]; dup {
				s.repeated++
			}
			s.got[id] = now
			s.n++
			if j := bytes.Index(l, []byte(`"recorded_at":"`)); j >= 0 {
				rest := l[j+len(`"recorded_at":"`):]
				if at, err := time.Parse(time.RFC3339Nano, string(rest[:max(bytes.IndexByte(rest, '"'), 0)])); err == nil && at.After(s.from) {
					s.sinceRecorded = append(s.sinceRecorded, now.Sub(at))
				}
			}
		}
	}
	if ctx.Err() == nil {
		s.err = fmt.Errorf("the stream ended: %v", sc.Err())
	}
}

// W9: 50 subscribers follow the feed as Server-Sent Events while clients
// create orders over HTTP (one OrderCreated to a new stream each, as in
// W1). Every subscriber must get every event once; the latency is from the
// moment the POST's response was read (the append is committed then) to
// the moment a subscriber read the event, over every subscriber.
func (r *runner) w9() {
	if r.opts.Serve == nil {
		r.prog.line("W9 skipped: no way to start the server")
		return
	}
	for _, n := range r.clients(8) {
		// A fresh store and server each round: the peak RSS is the round's.
		r.jobs = append(r.jobs, job{workload: "W9", run: func(ctx context.Context, round int) (Result, error) {
			return r.w9Run(ctx, n, round)
		}})
	}
}

func (r *runner) w9Run(ctx context.Context, n, round int) (Result, error) {
	p, err := r.t.newPlace(ctx, fmt.Sprintf("w9_%d_r%d", n, round), true, 0)
	if err != nil {
		return Result{}, err
	}
	defer p.close()
	srv, err := r.opts.Serve(ctx, p.url)
	if err != nil {
		return Result{}, fmt.Errorf("start the server: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.Stop()
		}
	}()
	tr := &http.Transport{MaxIdleConns: 2 * n, MaxIdleConnsPerHost: 2 * n, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	// Streams have no end: their own transport, no client timeout.
	str := &http.Transport{MaxIdleConnsPerHost: W9Subscribers}
	defer str.CloseIdleConnections()
	streams := &http.Client{Transport: str}

	// Every subscriber starts at the head of the log, before the load.
	var start struct {
		Next string `json:"next"`
	}
	res, err := client.Get(srv.Base + "/events?after=now&limit=1")
	if err != nil {
		return Result{}, err
	}
	err = json.NewDecoder(res.Body).Decode(&start)
	res.Body.Close()
	if err != nil {
		return Result{}, fmt.Errorf("GET /events?after=now: %w", err)
	}
	sctx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	subs := make([]*w9Sub, W9Subscribers)
	var wg sync.WaitGroup
	for i := range subs {
		s := &w9Sub{got: map[string]time.Time{}, from: time.Now().Add(r.opts.Warmup)}
		subs[i] = s
		ready := make(chan struct{})
		wg.Go(func() { s.read(sctx, streams, srv.Base, start.Next, ready) })
		<-ready
	}

	var mu sync.Mutex
	acked := map[string]time.Time{} // order id -> when its POST answered
	window := time.Now().Add(r.opts.Warmup)
	row := measure(ctx, n, r.opts.Warmup, r.opts.Duration, func(ctx context.Context, w *worker) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.Base+"/orders", strings.NewReader(createBody))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		t := time.Now()
		if err != nil {
			return 0, err
		}
		if res.StatusCode != http.StatusCreated {
			return 0, fmt.Errorf("POST /orders: %d: %s", res.StatusCode, bytes.TrimSpace(b))
		}
		var created struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(b, &created); err != nil || created.OrderID == "" {
			return 0, fmt.Errorf("POST /orders: no order_id in %s", b)
		}
		mu.Lock()
		acked[created.OrderID] = t
		mu.Unlock()
		return 1, nil
	}, nil)
	row.Workload, row.Case = "W9", strconv.Itoa(W9Subscribers)+" subscribers"

	// Wait (bounded) until every subscriber has every acknowledged event.
	complete := func() bool {
		for _, s := range subs {
			if s.err != nil {
				continue
			}
			for id := range acked {
				if _, ok := s.got[id]; !ok {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The subscribers write their maps: look only once they stopped.
		stopped := false
		if time.Now().After(deadline) {
			stopped = true
		} else {
			time.Sleep(200 * time.Millisecond)
		}
		stopSubs()
		wg.Wait()
		if stopped || complete() {
			break
		}
		// Not yet: resume each where it was.
		sctx, stopSubs = context.WithCancel(ctx)
		defer stopSubs()
		for _, s := range subs {
			if s.err != nil {
				continue
			}
			ready := make(chan struct{})
			from := cmp.Or(s.last, start.Next)
			wg.Go(func() { s.read(sctx, streams, srv.Base, from, ready) })
			<-ready
		}
	}

	var lat, recorded []time.Duration
	full, missing, extra, repeated := 0, 0, 0, 0
	for _, s := range subs {
		if s.err != nil && row.FirstError == "" {
			row.FirstError = "subscriber: " + s.err.Error()
		}
		miss := 0
		for id, t := range acked {
			d, ok := s.got[id]
			if !ok {
				miss++
				continue
			}
			if t.After(window) {
				lat = append(lat, max(d.Sub(t), 0))
			}
		}
		missing += miss
		recorded = append(recorded, s.sinceRecorded...)
		extra += len(s.got) - (len(acked) - miss) // events of POSTs that failed or were cut
		repeated += s.repeated
		if miss == 0 && s.repeated == 0 && s.err == nil {
			full++
		}
	}
	row.P50, row.P99 = percentiles(lat)
	r50, r99 := percentiles(recorded)
	row.Note = fmt.Sprintf("%d/%d subscribers got all %d events (%d missing, %d repeated, %d of unanswered POSTs); p50/p99 from the POST's answer to a subscriber reading the event; from recorded_at (before the commit): p50 %.2f ms, p99 %.2f ms",
		full, W9Subscribers, len(acked), missing, repeated, extra, float64(r50)/1e6, float64(r99)/1e6)
	if full < W9Subscribers {
		row.Errors += int64(W9Subscribers - full)
		if row.FirstError == "" {
			row.FirstError = fmt.Sprintf("%d subscribers missed or repeated events", W9Subscribers-full)
		}
	}
	stopped = true
	if err := srv.Stop(); err != nil && row.FirstError == "" {
		row.Errors++
		row.FirstError = "server stop: " + err.Error()
	}
	return row, nil
}
