package pgstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/internal/inturn"
)

// BenchmarkLoneFloor splits one client's append (W1 at 1 client, W3) into
// what the store's statements cost and what its client code adds, beside
// the plain table. Each iteration runs, durably and in turn (the order
// rotating), the same append three ways on a new stream:
//
//   - append: Store.Append on a context that can be cancelled, as bench
//     and every HTTP request call it;
//   - floor: the statement Append would run (runBatch of one request),
//     the events validated and digested before the clock starts: what is
//     timed is the hash chain, the statement and its commit;
//   - plain: the plain table's statement for the same events (W1: one
//     INSERT; W3: one INSERT ... unnest of 100 rows, every payload sent).
//
// It reports each one's mean wall time and this process's CPU time per
// operation, and the rate ratios to the plain table. plain-µs/floor-µs is
// the most any client code could reach with these statements on this
// machine: W1's target at 1 client is 1.0x, W3's 50,000 events/s.
//
//	go test -run '^$' -bench LoneFloor -benchtime 1000x ./pgstore
func BenchmarkLoneFloor(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) { loneFloor(b, n) })
	}
}

func loneFloor(b *testing.B, n int) {
	bg := context.Background()
	s := openTest(b, Options{})
	pool := plainPool(b, 2)
	events := make([]chronicle.Event, n)
	for i := range events {
		events[i] = benchEvent("OrderCreated")
	}
	payloads, metas, versions := make([]string, n), make([]string, n), make([]int32, n)
	for i := range n {
		payloads[i], metas[i], versions[i] = benchPayload, benchMetadata, int32(i+1)
	}
	forms := []inturn.Form{
		{Name: "append", Prepare: func() func() error {
			return func() error {
				ctx, cancel := context.WithCancel(bg)
				defer cancel()
				_, err := s.Append(ctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, events)
				return err
			}
		}},
		{Name: "floor", Prepare: func() func() error {
			stream := "order-" + chronicle.NewEventID()
			evs, digests, err := audit.PrepareAppend(stream, chronicle.NoStream, events, s.opts.Limits)
			if err != nil {
				return func() error { return err }
			}
			r := &appendReq{ctx: bg, stream: stream, expected: chronicle.NoStream, events: evs, digests: digests, done: make(chan appendOutcome, 1)}
			return func() error {
				outs, err := s.runBatch(bg, s.wq, []*appendReq{r}, false)
				if err == nil && (len(outs) != 1 || outs[0].out.err != nil || outs[0].retry || outs[0].out.res.LastVersion != int64(n)) {
					err = fmt.Errorf("outcome %+v", outs)
				}
				return err
			}
		}},
		{Name: "plain", Prepare: func() func() error {
			stream := "order-" + chronicle.NewEventID()
			if n == 1 {
				return func() error {
					_, err := pool.Exec(bg, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
VALUES ($1, $2, 'OrderCreated', 1, $3, $4)`, chronicle.NewEventID(), stream, benchPayload, benchMetadata)
					return err
				}
			}
			return func() error {
				_, err := pool.Exec(bg, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
SELECT id, $2, 'OrderCreated', v, d, m FROM unnest($1::uuid[], $3::int4[], $4::jsonb[], $5::jsonb[]) AS u(id, v, d, m)`,
					plainIDs(n), stream, versions, payloads, metas)
				return err
			}
		}},
	}
	const warm = 100 // plans cached, pages touched
	checkpoint(b, s.pool)
	b.ResetTimer()
	totals, err := inturn.Run(warm, b.N, forms)
	if err != nil {
		b.Fatal(err)
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N) }
	for k, f := range forms {
		b.ReportMetric(per(totals[k].Wall), f.Name+"-µs")
		b.ReportMetric(per(totals[k].CPU), f.Name+"-cpu-µs")
	}
	b.ReportMetric(per(totals[2].Wall)/per(totals[0].Wall), "append/plain")
	b.ReportMetric(per(totals[2].Wall)/per(totals[1].Wall), "floor/plain")
	b.ReportMetric(0, "ns/op")
}
