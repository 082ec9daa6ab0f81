package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/internal/inturn"
)

// BenchmarkAppendFloor splits one client's append (W3: 100 events to a new
// stream) into what the store's statements cost and what its client code
// adds, beside the plain table, as pgstore's BenchmarkLoneFloor does. Each
// iteration runs, in turn (the order rotating), the same append three ways:
//
//   - append: Store.Append;
//   - floor: the write Append hands to the write loop (appendTx: the hash
//     chain, the version read, the inserts into the events table with its
//     indexes and triggers, the stream's row), with the events validated
//     and digested before the clock starts, then the commit;
//   - plain: the seed's table (three indexes), one 100-row INSERT, then
//     the commit, in its own file beside the store's.
//
// It reports each one's mean wall time and this process's CPU time per
// event (the store's background checkpointer included: it is part of the
// cost of writing), events/s, and the rate ratios to the plain table.
// floor events/s is the most any client code could reach with these rows,
// indexes and triggers on this driver and disk.
//
//	go test -run '^$' -bench AppendFloor -benchtime 1000x ./sqlitestore
func BenchmarkAppendFloor(b *testing.B) {
	for _, sync := range []string{"FULL", "OFF"} {
		b.Run("sync="+sync, func(b *testing.B) { appendFloor(b, sync, 100) })
	}
}

func appendFloor(b *testing.B, sync string, n int) {
	ctx := context.Background()
	dir := b.TempDir()
	s, err := Open(ctx, filepath.Join(dir, "chronicle.db"), Options{Synchronous: sync})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	plain, ins := OpenPlainTable(b, filepath.Join(dir, "plain.db"), sync, n)

	data := json.RawMessage(`{"customer_id":"cust_456","total":9999,"currency":"USD","items":[{"sku":"SKU-1001","name":"Widget","qty":2,"price":2500},{"sku":"SKU-2002","name":"Gadget","qty":1,"price":4999}],"shipping":"standard"}`)
	meta := json.RawMessage(`{"correlation_id":"corr-00000000","source":"bench"}`)
	events := func() []chronicle.Event {
		evs := make([]chronicle.Event, n)
		for i := range evs {
			evs[i] = chronicle.Event{Type: "ItemAdded", Data: data, Metadata: meta}
		}
		return evs
	}
	forms := []inturn.Form{
		{Name: "append", Prepare: func() func() error {
			evs := events()
			return func() error {
				_, err := s.Append(ctx, "order-"+chronicle.NewEventID(), chronicle.NoStream, evs)
				return err
			}
		}},
		{Name: "floor", Prepare: func() func() error {
			stream := "order-" + chronicle.NewEventID()
			evs, digests, err := audit.PrepareAppend(stream, chronicle.NoStream, events(), s.opts.Limits)
			if err != nil {
				return func() error { return err }
			}
			hashes := make([]audit.Hash, n+1)
			return func() error {
				var res chronicle.AppendResult
				err := s.submit(ctx, func(w *wtx) (bool, error) {
					var wrote bool
					var err error
					res, wrote, err = s.appendTx(w, stream, chronicle.NoStream, evs, digests, hashes)
					return wrote, err
				})
				if err == nil && res.LastVersion != int64(n) {
					err = fmt.Errorf("result %+v", res)
				}
				return err
			}
		}},
		{Name: "plain", Prepare: func() func() error {
			order, now := "order-"+chronicle.NewEventID(), time.Now().UnixMicro()
			args := make([]any, 0, 7*n)
			for v := 1; v <= n; v++ {
				args = append(args, chronicle.NewEventID(), order, "ItemAdded", v, string(data), string(meta), now)
			}
			return func() error {
				tx, err := plain.Begin()
				if err != nil {
					return err
				}
				if _, err := tx.Stmt(ins).Exec(args...); err != nil {
					_ = tx.Rollback()
					return err
				}
				return tx.Commit()
			}
		}},
	}
	const warm = 50 // statements prepared, pages touched
	b.ResetTimer()
	totals, err := inturn.Run(warm, b.N, forms)
	if err != nil {
		b.Fatal(err)
	}
	perEvent := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N*n) }
	for k, f := range forms {
		b.ReportMetric(1e6/perEvent(totals[k].Wall), f.Name+"-events/s")
		b.ReportMetric(perEvent(totals[k].CPU), f.Name+"-cpu-µs/event")
	}
	b.ReportMetric(perEvent(totals[2].Wall)/perEvent(totals[0].Wall), "append/plain")
	b.ReportMetric(perEvent(totals[2].Wall)/perEvent(totals[1].Wall), "floor/plain")
	b.ReportMetric(0, "ns/op")
}

// OpenPlainTable opens the seed's plain table (BENCHMARKS.md) in a new
// SQLite file at path, in WAL mode at the given synchronous level, on one
// connection, and prepares its INSERT of rows rows. Both are closed when tb
// ends.
func OpenPlainTable(tb testing.TB, path, sync string, rows int) (*sql.DB, *sql.Stmt) {
	db, err := sql.Open(driverName, "file:"+path+"?"+dsnParams(connParams{busyTimeoutMS: 5000, synchronous: sync}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1) // one connection: the PRAGMAs stay set
	if _, err := db.Exec(`PRAGMA journal_mode = WAL;
CREATE TABLE order_events (id TEXT PRIMARY KEY, order_id TEXT NOT NULL,
	event_type TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL, metadata TEXT,
	created_at INTEGER, UNIQUE (order_id, version));
CREATE INDEX order_events_order_id ON order_events (order_id)`); err != nil {
		tb.Fatal(err)
	}
	ins, err := db.Prepare("INSERT INTO order_events (id, order_id, event_type, version, data, metadata, created_at) VALUES (?,?,?,?,?,?,?)" +
		strings.Repeat(",(?,?,?,?,?,?,?)", rows-1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ins.Close() })
	return db, ins
}
