package seal_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/seal"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// Seal a store's log, verify it, and export a bundle that audit.Check
// verifies offline. `chronicle serve` runs Sealer.Run instead of SealOnce.
func Example() {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, ":memory:", sqlitestore.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	for _, id := range []string{"order-a", "order-b"} {
		ev := chronicle.Event{Type: "OrderCreated", Data: json.RawMessage(`{"total":100}`)}
		if _, err := store.Append(ctx, id, chronicle.NoStream, []chronicle.Event{ev}); err != nil {
			panic(err)
		}
	}

	s, ok, err := seal.New(store, seal.Options{}).SealOnce(ctx)
	fmt.Println("sealed:", ok, err, "seq", s.Seq, "count", s.Count)

	rep, err := seal.Verify(ctx, store, seal.VerifyOptions{Anchor: audit.Hash(s.SealHash).String()})
	fmt.Println("verified:", rep.Events, "events,", rep.Seals, "seal,", err)

	bundle, err := seal.Export(ctx, store, []string{"order-b"})
	if err != nil {
		panic(err)
	}
	fmt.Println("bundle of order-b:", len(bundle.Events), "event,", len(bundle.Proofs), "proof, check:", audit.Check(bundle, audit.Options{}))
	// Output:
	// sealed: true <nil> seq 1 count 2
	// verified: 2 events, 1 seal, <nil>
	// bundle of order-b: 1 event, 1 proof, check: <nil>
}
