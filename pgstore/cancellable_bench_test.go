package pgstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/chronicle-es/chronicle"
)

// BenchmarkBackendCPUCancellable is BenchmarkBackendCPUClients with a
// context that can end, as HTTP handlers and chronicle bench call Append:
// such a caller never leads batches, and commits its append itself only
// when it is all that is pending (commitAlone). alone/append is the share
// of appends that did.
func BenchmarkBackendCPUCancellable(b *testing.B) {
	e := benchEvent("OrderCreated")
	for _, clients := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			s := openTest(b, Options{Committers: benchCommitters})
			checkpoint(b, s.pool)
			cpu := poolCPU(b, s.wpool, s.opts.Committers)
			cctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			batches, batched, alone := s.batches.Load(), s.batched.Load(), s.alone.Load()
			measureParallelCPU(b, cpu, clients, func(context.Context) error {
				_, err := s.Append(cctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, []chronicle.Event{e})
				return err
			})
			b.ReportMetric(float64(s.batched.Load()-batched)/float64(max(s.batches.Load()-batches, 1)), "appends/batch")
			b.ReportMetric(float64(s.alone.Load()-alone)/float64(max(s.batched.Load()-batched, 1)), "alone/append")
		})
	}
}
