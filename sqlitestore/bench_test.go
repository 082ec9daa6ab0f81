package sqlitestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/proccpu"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// The payload and metadata of the workloads (BENCHMARKS.md).
var (
	benchData = json.RawMessage(`{"customer_id":"cust_456","total":9999,"currency":"USD","items":[{"sku":"SKU-1001","name":"Widget","qty":2,"price":2500},{"sku":"SKU-2002","name":"Gadget","qty":1,"price":4999}],"shipping":"standard"}`)
	benchMeta = json.RawMessage(`{"correlation_id":"corr-00000000","source":"bench"}`)
)

func benchEvents(n int) []chronicle.Event {
	evs := make([]chronicle.Event, n)
	for i := range evs {
		evs[i] = chronicle.Event{Type: "OrderCreated", Data: benchData, Metadata: benchMeta}
	}
	return evs
}

func benchSync(b *testing.B) []string {
	return []string{"FULL", "NORMAL"}
}

// W1: one event to a new stream, with 1 and 32 appenders in flight.
func BenchmarkAppendNewStream(b *testing.B) {
	for _, sync := range benchSync(b) {
		for _, clients := range []int{1, 32} {
			b.Run(fmt.Sprintf("sync=%s/clients=%d", sync, clients), func(b *testing.B) {
				s := openTemp(b, sqlitestore.Options{Synchronous: sync})
				ctx := context.Background()
				var n atomic.Int64
				b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						stream := "order-" + strconv.FormatInt(n.Add(1), 10)
						if _, err := s.Append(ctx, stream, chronicle.NoStream, benchEvents(1)); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			})
		}
	}
}

// W3: one append of 100 events to a new stream. sync=OFF leaves the disk
// out: what is left is the CPU of an append (cpu-µs/event, the whole
// process's, caller and writer).
func BenchmarkAppend100(b *testing.B) {
	for _, sync := range append(benchSync(b), "OFF") {
		b.Run("sync="+sync, func(b *testing.B) {
			s := openTemp(b, sqlitestore.Options{Synchronous: sync})
			ctx := context.Background()
			b.ResetTimer()
			cpu0 := proccpu.Used()
			for i := range b.N {
				if _, err := s.Append(ctx, "order-"+strconv.Itoa(i), chronicle.NoStream, benchEvents(100)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((proccpu.Used()-cpu0).Microseconds())/float64(b.N*100), "cpu-µs/event")
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// W3's floor on this driver and disk: the seed's plain table (BENCHMARKS.md),
// one 100-row INSERT per transaction, WAL, nothing else: no hashes, no
// global order, no stream row, no triggers, two indexes.
func BenchmarkPlainInsert100(b *testing.B) {
	for _, sync := range []string{"FULL", "OFF"} {
		b.Run("sync="+sync, func(b *testing.B) {
			db, ins := sqlitestore.OpenPlainTable(b, filepath.Join(b.TempDir(), "plain.db"), sync, 100)
			b.ResetTimer()
			cpu0 := proccpu.Used()
			for range b.N {
				order, now := "order-"+chronicle.NewEventID(), time.Now().UnixMicro()
				args := make([]any, 0, 700)
				for v := 1; v <= 100; v++ {
					args = append(args, chronicle.NewEventID(), order, "ItemAdded", v, string(benchData), string(benchMeta), now)
				}
				tx, err := db.Begin()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.Stmt(ins).Exec(args...); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((proccpu.Used()-cpu0).Microseconds())/float64(b.N*100), "cpu-µs/event")
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// W4: read all 1,000 events of one stream.
func BenchmarkReadStream1000(b *testing.B) {
	s := openTemp(b, sqlitestore.Options{})
	ctx := context.Background()
	for range 10 {
		if _, err := s.Append(ctx, "order-big", chronicle.Any, benchEvents(100)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		evs, err := s.ReadStream(ctx, "order-big", chronicle.ReadStreamOptions{})
		if err != nil || len(evs) != 1000 {
			b.Fatalf("read %d events: %v", len(evs), err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// Paging the global log in pages of 1,000 from checkpoints.
func BenchmarkReadAllPage1000(b *testing.B) {
	s := openTemp(b, sqlitestore.Options{})
	ctx := context.Background()
	for i := range 100 {
		if _, err := s.Append(ctx, "order-"+strconv.Itoa(i), chronicle.NoStream, benchEvents(100)); err != nil {
			b.Fatal(err)
		}
	}
	var from chronicle.Checkpoint
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := proccpu.Used()
	for range b.N {
		evs, err := s.ReadAll(ctx, from, chronicle.ReadAllOptions{Limit: 1000})
		if err != nil {
			b.Fatal(err)
		}
		if len(evs) < 1000 {
			from = chronicle.Checkpoint{} // wrap around the 10,000-event log
			continue
		}
		from = evs[len(evs)-1].Checkpoint()
	}
	b.ReportMetric(float64((proccpu.Used()-cpu0).Microseconds())/float64(b.N*1000), "cpu-µs/event")
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
