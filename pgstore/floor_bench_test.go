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
