package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/internal/natstest"
)

// BenchmarkW10 runs W10 against a NATS server with JetStream started in
// the test process (file storage in a temp dir), on SQLite and, with
// CHRONICLE_TEST_POSTGRES, on PostgreSQL: the figure BENCHMARKS.md
// records. W10_EVENTS overrides the data set size.
func BenchmarkW10(b *testing.B) {
	stores := map[string]string{"sqlite": "sqlite://" + filepath.Join(b.TempDir(), "w10.db")}
	if pg := os.Getenv("CHRONICLE_TEST_POSTGRES"); pg != "" {
		stores["postgres"] = pg
	}
	for _, name := range []string{"sqlite", "postgres"} {
		store, ok := stores[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			srv := natstest.Start(b)
			opts := Options{Store: store, Workloads: []string{"W10"}, NATS: srv.URL(), Duration: time.Second, Rounds: 1}
			if n, err := parseCount(os.Getenv("W10_EVENTS")); err == nil {
				opts.W10Events = n
			}
			for b.Loop() {
				rep, err := Run(context.Background(), opts)
				if err != nil || len(rep.Rows) != 1 || rep.Rows[0].Errors > 0 {
					b.Fatalf("W10: %+v, %v", rep, err)
				}
				b.ReportMetric(rep.Rows[0].EventsPerSec, "events/s")
				b.Log(rep.Rows[0].Note)
			}
		})
	}
}

func parseCount(s string) (int, error) {
	var n int
	_, err := fmt.Sscan(s, &n)
	return n, err
}
