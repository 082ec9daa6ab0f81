package aggregate_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// Example shows what an HTTP handler does with a repository: run commands
// (with retry, or conditional on If-Match), answer with the new state and
// version, and travel in time.
func Example() {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, ":memory:", sqlitestore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// Wired once at start-up: one registry for every read path.
	reg := order.NewRegistry()
	orders := aggregate.New(store, store, reg, aggregate.Definition[order.State, order.Command, order.Event]{
		StreamID:       order.StreamID,
		Decide:         order.Decide,
		Evolve:         order.Evolve,
		SnapshotSchema: order.SnapshotSchema,
	}, aggregate.WithSnapshotEvery(50), aggregate.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))

	// POST /orders: retried on concurrent writes; the body is res.State.
	res, err := orders.Handle(ctx, "ord_1", order.Create{CustomerID: "cust_1", Items: []order.Item{{SKU: "SKU-1", Quantity: 2, UnitPrice: 2500}}},
		aggregate.Correlation("req-1", ""), aggregate.IdempotencyKey("key-1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.State.Status, res.State.Total, res.State.Currency, "version", res.Version)

	// POST /orders/ord_1/payments with If-Match: "1".
	res, err = orders.Handle(ctx, "ord_1", order.Pay{Method: "card", Amount: 5000}, aggregate.ExpectVersion(1))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.State.Status, "version", res.Version)

	// A stale If-Match is 412; a rule violation is 409 with the status.
	_, err = orders.Handle(ctx, "ord_1", order.Cancel{}, aggregate.ExpectVersion(1))
	fmt.Println("stale If-Match:", errors.Is(err, chronicle.ErrWrongVersion))
	_, err = orders.Handle(ctx, "ord_1", order.Deliver{})
	var rule *order.RuleError
	if errors.As(err, &rule) {
		fmt.Println("409, current_status:", rule.Status)
	}

	// GET /orders/ord_1?version=1, and a missing order.
	old, err := orders.LoadVersion(ctx, "ord_1", 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("at version 1:", old.State.Status)
	_, err = orders.Load(ctx, "ord_2")
	fmt.Println("404:", errors.Is(err, aggregate.ErrNotFound))
	// Output:
	// created 5000 USD version 1
	// paid version 2
	// stale If-Match: true
	// 409, current_status: paid
	// at version 1: created
	// 404: true
}
