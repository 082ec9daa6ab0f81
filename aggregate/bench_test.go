package aggregate_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/order"
)

// BenchmarkLoad1000 is BENCHMARKS.md W6 (and W4 through the repository): an
// order with 1,000 events (OrderCreated + 999 ItemAdded over 10 SKUs)
// loaded to its current state, with a snapshot every 50 events and with
// snapshots off. With snapshots the stream is 25 events past its last
// snapshot, the average in steady state. Reports p50 and p99 per load.
func BenchmarkLoad1000(b *testing.B) {
	testbackends.ForEachB(b, func(b *testing.B, s testbackends.Backend) {
		ctx := context.Background()
		events := []order.Event{order.OrderCreated{CustomerID: "cust_456", Currency: "USD", Items: []order.Item{}}}
		for i := range 999 {
			events = append(events, order.ItemAdded{SKU: fmt.Sprintf("SKU-%d", i%10), Quantity: 1, UnitPrice: 100 + int64(i%10)})
		}
		appendAll := func(stream string, evs []order.Event) {
			for batch := range slices.Chunk(evs, 100) {
				if _, err := s.Append(ctx, stream, chronicle.Any, encode(b, batch...)); err != nil {
					b.Fatal(err)
				}
			}
		}
		appendAll("order-off", events)
		appendAll("order-snap", events[:975])
		snap := newOrderRepo(s, aggregate.WithSnapshotEvery(50))
		if _, err := snap.Load(ctx, "snap"); err != nil { // snapshot at 975
			b.Fatal(err)
		}
		appendAll("order-snap", events[975:])
		for _, bc := range []struct {
			name string
			id   string
			repo *orderRepo
		}{
			{"snapshots-50", "snap", snap},
			{"snapshots-off", "off", newOrderRepo(s, aggregate.WithSnapshotEvery(0))},
		} {
			b.Run(bc.name, func(b *testing.B) {
				var times []time.Duration
				for b.Loop() {
					start := time.Now()
					l, err := bc.repo.Load(ctx, bc.id)
					times = append(times, time.Since(start))
					if err != nil || l.Version != 1000 {
						b.Fatalf("v%d, %v", l.Version, err)
					}
				}
				slices.Sort(times)
				b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	})
}
