package seal_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/seal"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// BenchmarkSealOnce: one signed seal of 10,000 events (reading them
// included), per op; the ns/event figure is what sealing adds per event.
func BenchmarkSealOnce(b *testing.B) {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlitestore.Options{Synchronous: "OFF"})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	sl := seal.New(store, seal.Options{Key: key})
	evs := make([]chronicle.Event, 100)
	for b.Loop() {
		b.StopTimer()
		for i := range 100 {
			for j := range evs {
				evs[j] = chronicle.Event{Type: "OrderCreated", Data: json.RawMessage(`{"customer_id":"c1","items":[{"sku":"A","quantity":1,"unit_price":100}],"total":100}`)}
			}
			if _, err := store.Append(ctx, fmt.Sprintf("order-%d", i), chronicle.Any, evs); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		s, ok, err := sl.SealOnce(ctx)
		if err != nil || !ok || s.Count != 10_000 {
			b.Fatalf("seal of %d events, %v, %v", s.Count, ok, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10_000, "ns/event")
}
