package bench

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronicle-es/chronicle"
)

func (r *runner) maxClients(def ...int) int {
	return slices.Max(r.clients(def...))
}

// plainConns is the plain pool's size for n clients, 0 without baseline.
func (r *runner) plainConns(n int) int {
	if !r.opts.Baseline {
		return 0
	}
	return n + 2
}

// pair queues chronicle's row and, with the baseline, the plain table's,
// each measured after a checkpoint: in every round the two run one right
// after the other.
func (r *runner) pair(p *place, clients int, base Result, c, plain op, conflict, plainConflict func(error) bool) {
	r.measured(p, clients, base, c, conflict)
	if plain != nil && p.plainConns > 0 {
		base.System = "plain"
		r.measured(p, clients, base, plain, plainConflict)
	}
}

// measured queues a row measured by measure.
func (r *runner) measured(p *place, clients int, base Result, f op, conflict func(error) bool) {
	r.jobs = append(r.jobs, job{workload: base.Workload, place: p, run: func(ctx context.Context, _ int) (Result, error) {
		r.checkpoint(ctx, p)
		res := measure(ctx, clients, r.opts.Warmup, r.opts.Duration, f, conflict)
		res.Workload, res.Case, res.System = base.Workload, base.Case, base.System
		return res, nil
	}})
}

// W1: one OrderCreated to a new stream, expected version "no stream".
func (r *runner) w1(ctx context.Context) error {
	p, err := r.newPlace(ctx, "w1", false, r.plainConns(r.maxClients(1, 8, 32)))
	if err != nil {
		return err
	}
	e := benchEvent("OrderCreated")
	for _, n := range r.clients(1, 8, 32) {
		r.pair(p, n, Result{Workload: "W1"},
			func(ctx context.Context, w *worker) (int, error) {
				_, err := p.store.Append(ctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, []chronicle.Event{e})
				return 1, err
			},
			func(ctx context.Context, w *worker) (int, error) {
				return 1, p.plain.create(ctx, "order-"+chronicle.NewEventID())
			}, isConflict, nil)
	}
	return nil
}

// W2: read a random stream's version, append one ItemAdded expecting it.
func (r *runner) w2(ctx context.Context) error {
	p, err := r.newPlace(ctx, "w2", false, r.plainConns(r.maxClients(8, 32)))
	if err != nil {
		return err
	}
	n := r.opts.Streams
	stream := func(i int) string { return "order-cmd" + strconv.Itoa(i) }
	r.prog.line("W2 set-up: %d streams of 1 event", n)
	if err := parallelDo(ctx, 32, n, func(ctx context.Context, i int) error {
		_, err := p.store.Append(ctx, stream(i), chronicle.NoStream, []chronicle.Event{benchEvent("OrderCreated")})
		return err
	}); err != nil {
		return err
	}
	if p.plain != nil {
		streams := make([]string, n)
		for i := range n {
			streams[i] = stream(i)
		}
		if err := p.plain.createEach(ctx, streams); err != nil {
			return fmt.Errorf("plain set-up: %w", err)
		}
	}
	e := benchEvent("ItemAdded")
	for _, c := range r.clients(8, 32) {
		r.pair(p, c, Result{Workload: "W2"},
			func(ctx context.Context, w *worker) (int, error) {
				s := stream(w.rng.IntN(n))
				v, err := p.store.StreamVersion(ctx, s)
				if err != nil {
					return 0, err
				}
				_, err = p.store.Append(ctx, s, chronicle.Exact(v), []chronicle.Event{e})
				return 1, err
			},
			func(ctx context.Context, w *worker) (int, error) {
				return 1, p.plain.command(ctx, stream(w.rng.IntN(n)))
			}, isConflict, plainConflict)
	}
	return nil
}

// W3: 100 events to a new stream in one append.
func (r *runner) w3(ctx context.Context) error {
	p, err := r.newPlace(ctx, "w3", false, r.plainConns(1))
	if err != nil {
		return err
	}
	evs := make([]chronicle.Event, plainBatch)
	for i := range evs {
		evs[i] = benchEvent("ItemAdded")
	}
	r.pair(p, 1, Result{Workload: "W3"},
		func(ctx context.Context, w *worker) (int, error) {
			_, err := p.store.Append(ctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, evs)
			return len(evs), err
		},
		func(ctx context.Context, w *worker) (int, error) {
			return plainBatch, p.plain.batch(ctx, "order-"+chronicle.NewEventID())
		}, isConflict, nil)
	return nil
}

// loadStreams writes the W4/W5 data set: streams load-0..n-1 of streamLen
// events, interleaved. An append targets one stream, so "1,000
// transactions of 1,000 events, event i in stream i mod 1,000" becomes one
// writer per stream appending its events one at a time, all writers at
// once: the store's group commit packs the waiting appends (one event of
// each of up to hundreds of streams) into each transaction.
func (r *runner) loadStreams(ctx context.Context, p *place, total int) (streams, perStream int, err error) {
	perStream = min(streamLen, total)
	streams = max(total/perStream, 1)
	start := time.Now()
	var done atomic.Int64
	e := benchEvent("ItemAdded")
	err = parallelDo(ctx, streams, streams, func(ctx context.Context, s int) error {
		name := "load-" + strconv.Itoa(s)
		for v := range perStream {
			if _, err := p.store.Append(ctx, name, chronicle.Exact(int64(v)), []chronicle.Event{e}); err != nil {
				return err
			}
			d := done.Add(1)
			r.prog.update("W4/W5 data set, chronicle: %d/%d events (%.0f/s)", d, streams*perStream, float64(d)/time.Since(start).Seconds())
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	r.prog.line("W4/W5 data set, chronicle: %d events in %d streams, %s (%.0f events/s)", streams*perStream, streams, time.Since(start).Round(time.Millisecond), float64(streams*perStream)/time.Since(start).Seconds())
	if p.plain == nil {
		return streams, perStream, nil
	}
	// The plain table gets the definition exactly: per transaction, one
	// event of every stream.
	start = time.Now()
	names := make([]string, streams)
	for s := range streams {
		names[s] = "load-" + strconv.Itoa(s)
	}
	for v := range perStream {
		if err := p.plain.addEach(ctx, names, v+1); err != nil {
			return 0, 0, fmt.Errorf("plain data set: %w", err)
		}
		r.prog.update("W4/W5 data set, plain: %d/%d events", (v+1)*streams, streams*perStream)
	}
	r.prog.line("W4/W5 data set, plain: %d events, %s", streams*perStream, time.Since(start).Round(time.Millisecond))
	return streams, perStream, nil
}

// W4 (read a random load-* stream whole, decoding) and W5 (page the global
// log from the start) share their data set.
func (r *runner) w4w5(ctx context.Context, w4, w5 bool) error {
	p, err := r.newPlace(ctx, "w4", false, r.plainConns(1))
	if err != nil {
		return err
	}
	streams, perStream, err := r.loadStreams(ctx, p, r.opts.Events)
	if err != nil {
		return err
	}
	r.vacuum(ctx, p)
	if w4 {
		r.pair(p, 1, Result{Workload: "W4"},
			func(ctx context.Context, w *worker) (int, error) {
				s := "load-" + strconv.Itoa(w.rng.IntN(streams))
				evs, err := p.store.ReadStream(ctx, s, chronicle.ReadStreamOptions{})
				if err != nil {
					return 0, err
				}
				for _, e := range evs {
					if err := decode(e.Data); err != nil {
						return 0, err
					}
				}
				if len(evs) != perStream {
					return 0, fmt.Errorf("%s: read %d events, want %d", s, len(evs), perStream)
				}
				return len(evs), nil
			},
			func(ctx context.Context, w *worker) (int, error) {
				s := "load-" + strconv.Itoa(w.rng.IntN(streams))
				n, err := p.plain.readStream(ctx, s)
				if err == nil && n != perStream {
					err = fmt.Errorf("%s: read %d rows, want %d", s, n, perStream)
				}
				return n, err
			}, nil, nil)
	}
	if w5 {
		want := streams * perStream
		r.jobs = append(r.jobs, job{workload: "W5", place: p, run: func(ctx context.Context, _ int) (Result, error) {
			r.checkpoint(ctx, p)
			// A catch-up reader as a subscription runs one: chronicle.ReadAhead
			// reads the next page while this goroutine decodes the current one.
			next, stop := iter.Pull2(chronicle.ReadAhead(ctx, p.store, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 1000}))
			defer stop()
			return r.catchUp(ctx, want, func(ctx context.Context, cursor string) (string, int, error) {
				page, err, ok := next()
				if err != nil || !ok {
					return cursor, 0, err
				}
				for _, e := range page {
					if err := decode(e.Data); err != nil {
						return cursor, 0, err
					}
				}
				return cursor, len(page), nil
			}), nil
		}})
		if p.plainConns > 0 {
			r.jobs = append(r.jobs, job{workload: "W5", place: p, run: func(ctx context.Context, _ int) (Result, error) {
				r.checkpoint(ctx, p)
				res := r.catchUp(ctx, want, func(ctx context.Context, cursor string) (string, int, error) {
					return p.plain.readPage(ctx, cursor)
				})
				res.System = "plain"
				return res, nil
			}})
		}
	}
	return nil
}

// catchUp runs W5: one reader pages from the start until it has read want
// events, the log ends, or the time limit.
func (r *runner) catchUp(ctx context.Context, want int, next func(ctx context.Context, cursor string) (string, int, error)) Result {
	res := Result{Workload: "W5", Clients: 1}
	var lat []time.Duration
	var cursor string
	cpu, start := readCPU(), time.Now()
	limited := false
	for res.Events < int64(want) {
		if time.Since(start) > r.opts.W5Limit {
			limited = true
			break
		}
		t0 := time.Now()
		c, n, err := next(ctx, cursor)
		if err != nil {
			res.Errors++
			res.FirstError = err.Error()
			break
		}
		if n == 0 {
			break
		}
		lat = append(lat, time.Since(t0))
		cursor = c
		res.Ops++
		res.Events += int64(n)
	}
	el := time.Since(start)
	res.Seconds = el.Seconds()
	res.Total = res.Ops
	res.OpsPerSec = float64(res.Ops) / el.Seconds()
	res.EventsPerSec = float64(res.Events) / el.Seconds()
	res.P50, res.P99 = percentiles(lat) // per page
	if w, ok := cpu.until(readCPU()); ok {
		res.setCPU(w)
	}
	switch {
	case limited:
		res.Note = fmt.Sprintf("stopped at the %s limit", r.opts.W5Limit)
	case res.Errors == 0 && res.Events != int64(want):
		res.Errors++
		res.FirstError = fmt.Sprintf("read %d events, the data set has %d", res.Events, want)
	}
	return res
}

// parallelDo runs f(0..n-1) from k goroutines; the first error stops it.
func parallelDo(ctx context.Context, k, n int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(k, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
