package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/internal/proccpu"
)

// The workloads of BENCHMARKS.md, as Go benchmarks. Each append
// benchmark has a "plain" twin: the seed's naive table written one INSERT at
// a time, measured in the same run so that ratios can be compared.

const (
	benchPayload  = `{"customer_id":"cust_456","total":9999,"currency":"USD","items":[{"sku":"SKU-1001","name":"Widget","qty":2,"price":2500},{"sku":"SKU-2002","name":"Gadget","qty":1,"price":4999}],"shipping":"standard"}`
	benchMetadata = `{"correlation_id":"corr-00000000","source":"bench"}`
)

// benchCommitters is Options.Committers in the benchmarks (0: the default).
var benchCommitters, _ = strconv.Atoi(os.Getenv("CHRONICLE_BENCH_COMMITTERS"))

func benchEvent(typ string) chronicle.Event {
	return chronicle.Event{Type: typ, Data: json.RawMessage(benchPayload), Metadata: json.RawMessage(benchMetadata)}
}

// checkpoint flushes dirty pages before a measured run, as BENCHMARKS.md asks
// (needs a superuser; skipped silently otherwise).
func checkpoint(b *testing.B, pool *pgxpool.Pool) {
	pool.Exec(context.Background(), "CHECKPOINT")
}

// parallel runs op from n concurrent goroutines for b.N operations in all.
func parallel(b *testing.B, clients int, op func(ctx context.Context) error) {
	ctx := context.Background()
	if clients == 1 {
		for b.Loop() {
			if err := op(ctx); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// plainPool opens a pool on a fresh schema holding the seed's table.
func plainPool(b testing.TB, conns int32) *pgxpool.Pool {
	url := testURL(b)
	schema := newSchema(b)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = conns
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	_, err = pool.Exec(context.Background(), `
CREATE SCHEMA `+schema+`;
CREATE TABLE order_events (
	id UUID PRIMARY KEY,
	order_id VARCHAR(50) NOT NULL,
	event_type VARCHAR(50) NOT NULL,
	version INTEGER NOT NULL,
	data JSONB NOT NULL,
	metadata JSONB,
	created_at TIMESTAMP DEFAULT NOW(),
	UNIQUE(order_id, version)
);
CREATE INDEX order_events_order_id ON order_events (order_id);`)
	if err != nil {
		b.Fatal(err)
	}
	return pool
}

// W1: one event to a new stream, expected version "no stream".
func BenchmarkAppendNewStream(b *testing.B) {
	for _, clients := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("chronicle/clients=%d", clients), func(b *testing.B) {
			s := openTest(b, Options{Committers: benchCommitters})
			defer func() {
				b.ReportMetric(float64(s.batched.Load())/float64(max(s.batches.Load(), 1)), "appends/batch")
			}()
			checkpoint(b, s.pool)
			e := benchEvent("OrderCreated")
			b.ResetTimer()
			parallel(b, clients, func(ctx context.Context) error {
				_, err := s.Append(ctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, []chronicle.Event{e})
				return err
			})
		})
		b.Run(fmt.Sprintf("plain/clients=%d", clients), func(b *testing.B) {
			pool := plainPool(b, int32(clients)+2)
			checkpoint(b, pool)
			b.ResetTimer()
			parallel(b, clients, func(ctx context.Context) error {
				_, err := pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
VALUES ($1, $2, $3, 1, $4, $5)`, chronicle.NewEventID(), "order-"+chronicle.NewEventID(), "OrderCreated", benchPayload, benchMetadata)
				return err
			})
		})
	}
}

// W3: 100 events to a new stream in one append.
func BenchmarkAppend100(b *testing.B) {
	b.Run("chronicle", func(b *testing.B) {
		s := openTest(b, Options{})
		checkpoint(b, s.pool)
		evs := make([]chronicle.Event, 100)
		for i := range evs {
			evs[i] = benchEvent("ItemAdded")
		}
		b.ResetTimer()
		for b.Loop() {
			if _, err := s.Append(context.Background(), "order-"+chronicle.NewEventID(), chronicle.NoStream, evs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(100*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("plain", func(b *testing.B) {
		pool := plainPool(b, 2)
		checkpoint(b, pool)
		versions := make([]int32, 100)
		for i := range versions {
			versions[i] = int32(i + 1)
		}
		b.ResetTimer()
		for b.Loop() {
			ids := plainIDs(100)
			_, err := pool.Exec(context.Background(), `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
SELECT id, $2, 'ItemAdded', v, $4::jsonb, $5::jsonb FROM unnest($1::uuid[], $3::int4[]) AS u(id, v)`,
				ids, "order-"+chronicle.NewEventID(), versions, benchPayload, benchMetadata)
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(100*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// W4 (small): read all 1,000 events of a stream, decoding the JSON.
func BenchmarkReadStream1000(b *testing.B) {
	s := openTest(b, Options{})
	ctx := context.Background()
	evs := make([]chronicle.Event, 1000)
	for i := range evs {
		evs[i] = benchEvent("ItemAdded")
	}
	if _, err := s.Append(ctx, "load-1", chronicle.NoStream, evs); err != nil {
		b.Fatal(err)
	}
	s.pool.Exec(ctx, "VACUUM ANALYZE events")
	b.ResetTimer()
	for b.Loop() {
		got, err := s.ReadStream(ctx, "load-1", chronicle.ReadStreamOptions{})
		if err != nil || len(got) != 1000 {
			b.Fatal(len(got), err)
		}
		for _, e := range got {
			var v map[string]any
			if err := json.Unmarshal(e.Data, &v); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// W5 (small): page the global log 1,000 events at a time, decoding each.
func BenchmarkReadAllPages(b *testing.B) {
	s := openTest(b, Options{})
	ctx := context.Background()
	// 20,000 events in 20 streams, interleaved in 20 appends of 1,000 each.
	for i := range 20 {
		evs := make([]chronicle.Event, 1000)
		for j := range evs {
			evs[j] = benchEvent("ItemAdded")
		}
		if _, err := s.Append(ctx, fmt.Sprintf("load-%d", i), chronicle.NoStream, evs); err != nil {
			b.Fatal(err)
		}
	}
	s.pool.Exec(ctx, "VACUUM ANALYZE events")
	var from chronicle.Checkpoint
	b.ResetTimer()
	for b.Loop() {
		page, err := s.ReadAll(ctx, from, chronicle.ReadAllOptions{Limit: 1000})
		if err != nil {
			b.Fatal(err)
		}
		if len(page) == 0 { // wrap around
			from = chronicle.Checkpoint{}
			continue
		}
		for _, e := range page {
			var v map[string]any
			if err := json.Unmarshal(e.Data, &v); err != nil {
				b.Fatal(err)
			}
		}
		from = page[len(page)-1].Checkpoint()
	}
	b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBackendCPU reports the PostgreSQL backend's CPU time per event
// (user + system, from /proc: the server must run on this machine) for W1,
// W2's append and W3, chronicle's append beside the plain INSERT. Unlike throughput,
// CPU time hardly moves with the load of a shared machine. The backend runs
// with synchronous_commit off so that the WAL flush, whose kernel time
// depends on the disk and on everyone else using it, stays out: this is
// the cost of the statements. Skipped when the backend's /proc entry
// cannot be read.
func BenchmarkBackendCPU(b *testing.B) {
	ctx := context.Background()
	e := benchEvent("OrderCreated")
	hundred := make([]chronicle.Event, 100)
	for i := range hundred {
		hundred[i] = benchEvent("ItemAdded")
	}
	versions := make([]int32, 100)
	for i := range versions {
		versions[i] = int32(i + 1)
	}
	for _, w := range []struct {
		name   string
		events int
	}{{"W1", 1}, {"W3", 100}} {
		b.Run("chronicle/"+w.name, func(b *testing.B) {
			s := openTest(b, Options{Committers: 1}) // one connection: one backend to watch
			evs := []chronicle.Event{e}
			if w.events == 100 {
				evs = hundred
			}
			cpu := backendCPU(b, s.wpool)
			measureCPU(b, cpu, w.events, func() error {
				_, err := s.Append(ctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, evs)
				return err
			})
		})
		b.Run("plain/"+w.name, func(b *testing.B) {
			pool := plainPool(b, 1)
			cpu := backendCPU(b, pool)
			measureCPU(b, cpu, w.events, func() error {
				if w.events == 1 {
					_, err := pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
VALUES ($1, $2, $3, 1, $4, $5)`, chronicle.NewEventID(), "order-"+chronicle.NewEventID(), "OrderCreated", benchPayload, benchMetadata)
					return err
				}
				ids := plainIDs(100)
				_, err := pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
SELECT id, $2, 'ItemAdded', v, $4::jsonb, $5::jsonb FROM unnest($1::uuid[], $3::int4[]) AS u(id, v)`,
					ids, "order-"+chronicle.NewEventID(), versions, benchPayload, benchMetadata)
				return err
			})
		})
	}
	// W2's append: one event to a stream that exists, expecting its version
	// (known here, as W2's client reads it first; the read is not measured).
	const w2Streams = 1000
	for _, oneSQLOnly := range []bool{false, true} {
		name := "chronicle/W2"
		if oneSQLOnly {
			name = "chronicle-oneSQL/W2" // the statement before appendOneSQL
		}
		b.Run(name, func(b *testing.B) {
			s := openTest(b, Options{Committers: 1})
			s.oneSQLOnly = oneSQLOnly
			versions := make([]int64, w2Streams)
			for i := range versions {
				if _, err := s.Append(ctx, "order-cmd"+strconv.Itoa(i), chronicle.NoStream, []chronicle.Event{e}); err != nil {
					b.Fatal(err)
				}
				versions[i] = 1
			}
			cpu := backendCPU(b, s.wpool)
			i := 0
			add := benchEvent("ItemAdded")
			measureCPU(b, cpu, 1, func() error {
				k := i % w2Streams
				i++
				_, err := s.Append(ctx, "order-cmd"+strconv.Itoa(k), chronicle.Exact(versions[k]), []chronicle.Event{add})
				versions[k]++
				return err
			})
		})
	}
	b.Run("plain/W2", func(b *testing.B) {
		pool := plainPool(b, 1)
		for i := range w2Streams {
			if _, err := pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
VALUES ($1, $2, 'OrderCreated', 1, $3, $4)`, chronicle.NewEventID(), "order-cmd"+strconv.Itoa(i), benchPayload, benchMetadata); err != nil {
				b.Fatal(err)
			}
		}
		versions := make([]int32, w2Streams)
		for i := range versions {
			versions[i] = 1
		}
		cpu := backendCPU(b, pool)
		i := 0
		measureCPU(b, cpu, 1, func() error {
			k := i % w2Streams
			i++
			versions[k]++
			_, err := pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
VALUES ($1, $2, 'ItemAdded', $3, $4, $5)`, chronicle.NewEventID(), "order-cmd"+strconv.Itoa(k), versions[k], benchPayload, benchMetadata)
			return err
		})
	})
}

// plainIDs returns n new event ids as 16 bytes each: pgx has no binary
// plan for []string into uuid[], and would format an error on every call
// before falling back to text.
func plainIDs(n int) [][16]byte {
	ids := make([][16]byte, n)
	for i := range ids {
		ids[i] = uuidBytes(chronicle.NewEventID())
	}
	return ids
}

// backendCPU returns a clock of the CPU time (µs) used by the backend
// behind pool, which must hold one connection.
func backendCPU(b *testing.B, pool *pgxpool.Pool) func() float64 {
	var pid int
	if _, err := pool.Exec(context.Background(), "SET synchronous_commit = off"); err != nil {
		b.Fatal(err)
	}
	if err := pool.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	file := fmt.Sprintf("/proc/%d/stat", pid)
	ticks := func() (float64, error) {
		raw, err := os.ReadFile(file)
		if err != nil {
			return 0, err
		}
		// Fields after the command name in parentheses: utime and stime
		// are the 12th and 13th, in clock ticks (100 a second on Linux).
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return (u + s) * 1e4, nil
	}
	if _, err := ticks(); err != nil {
		b.Skipf("cannot read the backend's CPU time (is PostgreSQL on another machine?): %v", err)
	}
	return func() float64 {
		t, err := ticks()
		if err != nil {
			b.Fatal(err)
		}
		return t
	}
}

// measureCPU runs op b.N times (at least 2,000, so that the 10 ms clock
// ticks add up) and reports the backend's CPU µs per event.
func measureCPU(b *testing.B, cpu func() float64, events int, op func() error) {
	n := max(b.N, 2000)
	for range 100 { // warm: plans cached, pages touched
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := cpu()
	for range n {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpu()-start)/float64(n*events), "backend-µs/event")
}

// BenchmarkBackendCPUClients is W1 at 1, 8 and 32 clients with durable
// commits, as the workload runs: the CPU time of every backend that commits
// (user + system, from /proc) per append, beside throughput and, for
// chronicle, the appends per batch that group commit reached.
func BenchmarkBackendCPUClients(b *testing.B) {
	e := benchEvent("OrderCreated")
	for _, clients := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("chronicle/clients=%d", clients), func(b *testing.B) {
			s := openTest(b, Options{Committers: benchCommitters})
			checkpoint(b, s.pool)
			cpu := poolCPU(b, s.wpool, s.opts.Committers)
			batches, batched := s.batches.Load(), s.batched.Load()
			measureParallelCPU(b, cpu, clients, func(ctx context.Context) error {
				_, err := s.Append(ctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, []chronicle.Event{e})
				return err
			})
			b.ReportMetric(float64(s.batched.Load()-batched)/float64(max(s.batches.Load()-batches, 1)), "appends/batch")
		})
		b.Run(fmt.Sprintf("plain/clients=%d", clients), func(b *testing.B) {
			pool := plainPool(b, int32(clients))
			checkpoint(b, pool)
			cpu := poolCPU(b, pool, clients)
			measureParallelCPU(b, cpu, clients, func(ctx context.Context) error {
				_, err := pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
VALUES ($1, $2, $3, 1, $4, $5)`, chronicle.NewEventID(), "order-"+chronicle.NewEventID(), "OrderCreated", benchPayload, benchMetadata)
				return err
			})
		})
	}
}

// poolCPU opens all n connections of pool and returns a clock of the CPU
// time (µs) their backends used in all.
func poolCPU(b *testing.B, pool *pgxpool.Pool, n int) func() float64 {
	ctx := context.Background()
	var clocks []func() (float64, error)
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Release()
		var pid int
		if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			b.Fatal(err)
		}
		clocks = append(clocks, procCPU(pid))
	}
	for _, c := range clocks {
		if _, err := c(); err != nil {
			b.Skipf("cannot read a backend's CPU time (is PostgreSQL on another machine?): %v", err)
		}
	}
	return func() float64 {
		var sum float64
		for _, c := range clocks {
			t, err := c()
			if err != nil {
				b.Fatal(err)
			}
			sum += t
		}
		return sum
	}
}

// procCPU returns a clock of process pid's user + system time in µs.
func procCPU(pid int) func() (float64, error) {
	file := fmt.Sprintf("/proc/%d/stat", pid)
	return func() (float64, error) {
		raw, err := os.ReadFile(file)
		if err != nil {
			return 0, err
		}
		// Fields after the command name in parentheses: utime and stime
		// are the 12th and 13th, in clock ticks (100 a second on Linux).
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return (u + s) * 1e4, nil
	}
}

// measureParallelCPU runs op from clients goroutines, max(b.N, 3000) times
// in all after a warm-up, and reports the backends' CPU µs per op and ops/s.
func measureParallelCPU(b *testing.B, cpu func() float64, clients int, op func(ctx context.Context) error) {
	ctx := context.Background()
	run := func(n int) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if err := op(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	run(200) // warm: plans cached, pages touched
	n := max(b.N, 3000)
	b.ResetTimer()
	start, self := cpu(), selfCPU()
	run(n)
	b.ReportMetric((cpu()-start)/float64(n), "backend-µs/op")
	b.ReportMetric((selfCPU()-self)/float64(n), "client-µs/op")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "ops/s")
}

// selfCPU returns this process's user + system time in µs (the clients
// and the store's Go side).
func selfCPU() float64 {
	return float64(proccpu.Used().Nanoseconds()) / 1e3
}

// BenchmarkBackendCPUVariants measures, as BenchmarkBackendCPU does, what
// the alternatives to chronicle's append would cost the server: without
// the index of ReadAll's stream-type filter, without both indexes of the
// gap-safe order too (ReadAll would then sort the log), and the event row
// alone, as a store without a streams row would write it for a new stream.
func BenchmarkBackendCPUVariants(b *testing.B) {
	ctx := context.Background()
	hundred := make([]chronicle.Event, 100)
	for i := range hundred {
		hundred[i] = benchEvent("ItemAdded")
	}
	for _, w := range []struct {
		name string
		evs  []chronicle.Event
	}{{"W1", []chronicle.Event{benchEvent("OrderCreated")}}, {"W3", hundred}} {
		for _, v := range []struct{ name, drop string }{
			{"chronicle", ""},
			{"no-type-index", "DROP INDEX events_type_tx_position"},
			{"no-order-indexes", "DROP INDEX events_type_tx_position; DROP INDEX events_tx_position"},
			{"event-row-only", ""},
		} {
			if w.name == "W3" && v.name == "event-row-only" {
				continue
			}
			b.Run(w.name+"/"+v.name, func(b *testing.B) {
				s := openTest(b, Options{Committers: 1})
				if v.drop != "" {
					if _, err := s.pool.Exec(ctx, v.drop); err != nil {
						b.Fatal(err)
					}
				}
				cpu := backendCPU(b, s.wpool)
				zero := make([]byte, 32)
				measureCPU(b, cpu, len(w.evs), func() error {
					if v.name == "event-row-only" {
						_, err := s.wpool.Exec(ctx, `INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata,
	recorded_at, hash, prev_hash)
VALUES ($1, 'order', 1, $2, 'OrderCreated', 1, $3::text::json, $4::text::json, now(), $5, $5)`,
							"order-"+chronicle.NewEventID(), uuidBytes(chronicle.NewEventID()), benchPayload, benchMetadata, zero)
						return err
					}
					_, err := s.Append(ctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, w.evs)
					return err
				})
			})
		}
	}
}

// BenchmarkBatchCPU reports the backend's CPU per append (as
// BenchmarkBackendCPU) in batches of 4, 8 and 16 new streams of one event,
// run by the general batchSQL, by createBatchSQL and by newStreamsSQL.
func BenchmarkBatchCPU(b *testing.B) {
	ctx := context.Background()
	defer func() { createBatches, newStreams = true, true }()
	for _, size := range []int{4, 8, 16} {
		for _, v := range []struct {
			name          string
			create, fresh bool
		}{{"general", false, false}, {"create", true, false}, {"new", true, true}} {
			b.Run(fmt.Sprintf("size=%d/%s", size, v.name), func(b *testing.B) {
				createBatches, newStreams = v.create, v.fresh
				s := openTest(b, Options{Committers: 1})
				cpu := backendCPU(b, s.wpool)
				e := benchEvent("OrderCreated")
				op := func() error {
					batch := make([]*appendReq, size)
					for i := range batch {
						stream := "order-" + chronicle.NewEventID()
						evs, digests, err := audit.PrepareAppend(stream, chronicle.NoStream, []chronicle.Event{e}, s.opts.Limits)
						if err != nil {
							return err
						}
						batch[i] = &appendReq{ctx: ctx, stream: stream, expected: chronicle.NoStream, events: evs, digests: digests, done: make(chan appendOutcome, 1)}
					}
					outs, err := s.runBatch(ctx, s.wpool, batch, false)
					if err != nil {
						return err
					}
					for _, o := range outs {
						if o.out.err != nil || o.retry {
							return fmt.Errorf("outcome %+v", o)
						}
					}
					return nil
				}
				measureCPU(b, cpu, size, op)
			})
		}
	}
}
