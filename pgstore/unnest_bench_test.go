package pgstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
)

// createSQLFromUnnest is createSQL as it was, with the event arrays
// unnested in FROM (ROWS FROM ... WITH ORDINALITY), for
// BenchmarkUnnestForms to compare. It fails b, rather than panicking at
// package init, if createSQL no longer has the shape it rewrites.
func createSQLFromUnnest(b *testing.B) string {
	i := strings.Index(createSQL, "FROM (SELECT generate_series")
	j := strings.Index(createSQL, "ORDER BY ev.k")
	if i < 0 || j < i {
		b.Fatal("createSQL has changed shape: update createSQLFromUnnest")
	}
	return createSQL[:i] + `FROM ins, unnest($4::uuid[], $5::text[], $6::int4[], $7::text[], $8::text[], $11::bytea[], $12::bytea[])
		WITH ORDINALITY AS ev(event_id, event_type, schema_version, data, metadata, hash, prev_hash, k)
	` + createSQL[j:]
}

// BenchmarkUnnestForms runs W3's statement (a new stream of 100 events)
// with its arrays unnested in the select list, as shipped, and in FROM, in
// turn on one connection with commits not waiting for the disk, and reports
// the mean time of each form. Running them in turn, one each per
// iteration, lets a machine whose speed drifts slow both alike.
func BenchmarkUnnestForms(b *testing.B) {
	ctx := context.Background()
	s := openTest(b, Options{Committers: 1})
	if _, err := s.wpool.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		b.Fatal(err)
	}
	const n = 100
	types, schema, data, meta := make([]string, n), make([]int32, n), make([]string, n), make([]*string, n)
	hashes, prevs := make([][]byte, n), make([][]byte, n)
	m := benchMetadata
	for i := range n {
		types[i], schema[i], data[i], meta[i] = "ItemAdded", 1, benchPayload, &m
		hashes[i], prevs[i] = make([]byte, 32), make([]byte, 32)
	}
	run := func(sql string) (time.Duration, error) {
		start := time.Now()
		var first, last int64
		err := s.wpool.QueryRow(ctx, sql, "order-"+chronicle.NewEventID(), "order", int64(n), plainIDs(n), types, schema, data, meta,
			hashes[0], time.Now(), hashes, prevs).Scan(nil, nil, nil, &first, &last, nil, nil)
		if err == nil && last-first != n-1 {
			err = fmt.Errorf("positions %d..%d for %d events", first, last, n)
		}
		return time.Since(start), err
	}
	forms := []string{createSQL, createSQLFromUnnest(b)}
	var total [2]time.Duration
	for i := range 100 + b.N {
		for j := range forms {
			k := (i + j) % 2 // alternate which form goes first
			d, err := run(forms[k])
			if err != nil {
				b.Fatal(err)
			}
			if i >= 100 { // the first 100: plans cached, pages touched
				total[k] += d
			}
		}
	}
	b.ReportMetric(float64(total[0].Microseconds())/float64(b.N), "select-list-µs/append")
	b.ReportMetric(float64(total[1].Microseconds())/float64(b.N), "from-µs/append")
	b.ReportMetric(0, "ns/op")
}
