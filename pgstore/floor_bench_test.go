package pgstore

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// BenchmarkBatchFloor bounds W1 at 8 clients when one batch commits at a
// time, as it does below 16 appends in flight. One goroutine commits
// 1,500 batches of 8 new streams back to back, durably, each append
// prepared (validated, digested) before the clock starts: nothing is timed
// but the statement, its flush and the hash chain, with no gathering and
// no client to wake. Each round then runs the plain table's W1 at 8
// clients for as long, and the medians of both rates and of their ratio
// are reported. The ratio is the most that one batch at a time can reach
// against the plain table on this machine; W1's target at 8 clients is
// 1.5x.
//
//	go test -run '^$' -bench BatchFloor -benchtime 1x ./pgstore
func BenchmarkBatchFloor(b *testing.B) {
	const (
		size    = 8
		batches = 1500 // about 1.5 s a round here
		rounds  = 3
	)
	ctx := context.Background()
	s := openTest(b, Options{Committers: 1})
	pool := plainPool(b, size)
	e := benchEvent("OrderCreated")
	prepare := func(n int) [][]*appendReq {
		out := make([][]*appendReq, n)
		for i := range out {
			out[i] = make([]*appendReq, size)
			for j := range out[i] {
				stream := "order-" + chronicle.NewEventID()
				evs, digests, err := audit.PrepareAppend(stream, chronicle.NoStream, []chronicle.Event{e}, s.opts.Limits)
				if err != nil {
					b.Fatal(err)
				}
				out[i][j] = &appendReq{ctx: ctx, stream: stream, expected: chronicle.NoStream, events: evs, digests: digests, done: make(chan appendOutcome, 1)}
			}
		}
		return out
	}
	// floor commits the prepared batches; appends/s and the time taken.
	floor := func(batches [][]*appendReq) (float64, time.Duration) {
		start := time.Now()
		for _, batch := range batches {
			outs, err := s.runBatch(ctx, s.wpool, batch, false)
			if err != nil {
				b.Fatal(err)
			}
			for _, o := range outs {
				if o.out.err != nil || o.retry {
					b.Fatalf("outcome %+v", o)
				}
			}
		}
		d := time.Since(start)
		return float64(len(batches)*size) / d.Seconds(), d
	}
	// plain runs W1's plain INSERT from 8 clients for d; inserts/s.
	plain := func(d time.Duration) float64 {
		var n atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range size {
			wg.Go(func() {
				for time.Since(start) < d {
					_, err := pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
VALUES ($1, $2, 'OrderCreated', 1, $3, $4)`, chronicle.NewEventID(), "order-"+chronicle.NewEventID(), benchPayload, benchMetadata)
					if err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return float64(n.Load()) / time.Since(start).Seconds()
	}
	checkpoint(b, s.pool)
	_, d := floor(prepare(100)) // warm: plans cached, pages touched
	plain(d)
	var floors, plains, ratios []float64
	for range rounds {
		f, d := floor(prepare(batches))
		p := plain(d)
		floors, plains, ratios = append(floors, f), append(plains, p), append(ratios, f/p)
	}
	median := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(median(floors), "floor-appends/s")
	b.ReportMetric(median(plains), "plain-appends/s")
	b.ReportMetric(median(ratios), "floor/plain")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkBatchLive runs, in turn, the batches of BenchmarkBatchFloor
// (8 new streams, prepared before the clock starts, back to back); the
// same prepared appends handed to group commit by 8 goroutines that do
// nothing else ("handoff": the clients' turn with none of Append's own
// work); W1 at 8 clients through Store.Append; and the plain table's W1 at
// 8 clients. The store has one committer, so that one backend does all the
// work. For each it reports appends/s, appends per batch, and the CPU time
// per append of the committing backend and of this process, and for each
// the median of its ratios to the plain table of the same round. Floor to
// handoff is what waking the clients between batches costs; handoff to
// live, what Append's work in the clients' turn costs.
//
//	go test -run '^$' -bench BatchLive -benchtime 1x ./pgstore
func BenchmarkBatchLive(b *testing.B) {
	const (
		size    = 8
		batches = 1500
		rounds  = 3
	)
	ctx := context.Background()
	s := openTest(b, Options{Committers: 1})
	var pid int
	if err := s.wpool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	backend := procCPU(pid)
	if _, err := backend(); err != nil {
		b.Skipf("cannot read the backend's CPU time (is PostgreSQL on another machine?): %v", err)
	}
	e := benchEvent("OrderCreated")
	type result struct{ rate, perBatch, backend, self float64 }
	// measure runs n appends' worth of work and reads the clocks around it.
	measure := func(n int, run func()) result {
		b0, _ := backend()
		s0 := selfCPU()
		batches0, batched0 := s.batches.Load(), s.batched.Load()
		start := time.Now()
		run()
		d := time.Since(start)
		b1, _ := backend()
		r := result{rate: float64(n) / d.Seconds(), perBatch: size, backend: (b1 - b0) / float64(n), self: (selfCPU() - s0) / float64(n)}
		if nb := s.batches.Load() - batches0; nb > 0 {
			r.perBatch = float64(s.batched.Load()-batched0) / float64(nb)
		}
		return r
	}
	floor := func(n int) result {
		prepared := make([][]*appendReq, n)
		for i := range prepared {
			for range size {
				stream := "order-" + chronicle.NewEventID()
				evs, digests, err := audit.PrepareAppend(stream, chronicle.NoStream, []chronicle.Event{e}, s.opts.Limits)
				if err != nil {
					b.Fatal(err)
				}
				prepared[i] = append(prepared[i], &appendReq{ctx: ctx, stream: stream, expected: chronicle.NoStream, events: evs, digests: digests, done: make(chan appendOutcome, 1)})
			}
		}
		return measure(n*size, func() {
			for _, batch := range prepared {
				if _, err := s.runBatch(ctx, s.wpool, batch, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// clients returns a run of op n*size times in all from size goroutines,
	// each taking the next i.
	clients := func(n int, op func(i int) error) func() {
		return func() {
			var next atomic.Int64
			var wg sync.WaitGroup
			for range size {
				wg.Go(func() {
					for i := int(next.Add(1) - 1); i < n*size; i = int(next.Add(1) - 1) {
						if err := op(i); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		}
	}
	handoff := func(n int) result {
		prepared := make([]*appendReq, 0, n*size)
		for range n * size {
			stream := "order-" + chronicle.NewEventID()
			evs, digests, err := audit.PrepareAppend(stream, chronicle.NoStream, []chronicle.Event{e}, s.opts.Limits)
			if err != nil {
				b.Fatal(err)
			}
			prepared = append(prepared, &appendReq{ctx: ctx, stream: stream, expected: chronicle.NoStream, events: evs, digests: digests, done: make(chan appendOutcome, 1)})
		}
		return measure(n*size, clients(n, func(i int) error {
			out, err := s.submit(ctx, prepared[i])
			if err == nil {
				err = out.err
			}
			return err
		}))
	}
	pool := plainPool(b, size)
	plain := func(n int) result {
		return measure(n*size, clients(n, func(int) error {
			_, err := pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
VALUES ($1, $2, 'OrderCreated', 1, $3, $4)`, chronicle.NewEventID(), "order-"+chronicle.NewEventID(), benchPayload, benchMetadata)
			return err
		}))
	}
	live := func(n int) result {
		return measure(n*size, clients(n, func(int) error {
			_, err := s.Append(ctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, []chronicle.Event{e})
			return err
		}))
	}
	checkpoint(b, s.pool)
	floor(100) // warm: plans cached, pages touched
	handoff(100)
	live(100)
	plain(100)
	var fl, ho, lv, pl []result
	for range rounds {
		fl, ho = append(fl, floor(batches)), append(ho, handoff(batches))
		lv, pl = append(lv, live(batches)), append(pl, plain(batches))
	}
	median := func(rs []result, f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	for _, m := range []struct {
		name string
		rs   []result
	}{{"floor", fl}, {"handoff", ho}, {"live", lv}} {
		ratios := make([]result, len(m.rs))
		for i, r := range m.rs {
			ratios[i].rate = r.rate / pl[i].rate
		}
		b.ReportMetric(median(m.rs, func(r result) float64 { return r.rate }), m.name+"-appends/s")
		b.ReportMetric(median(ratios, func(r result) float64 { return r.rate }), m.name+"/plain")
		b.ReportMetric(median(m.rs, func(r result) float64 { return r.perBatch }), m.name+"-appends/batch")
		b.ReportMetric(median(m.rs, func(r result) float64 { return r.backend }), m.name+"-backend-µs/append")
		b.ReportMetric(median(m.rs, func(r result) float64 { return r.self }), m.name+"-client-µs/append")
	}
	b.ReportMetric(median(pl, func(r result) float64 { return r.rate }), "plain-appends/s")
	b.ReportMetric(0, "ns/op")
}
