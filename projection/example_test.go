package projection_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// Example runs the order read models beside the write side: a command
// appends, the runner applies the event asynchronously, and a query that
// must reflect that write waits for its version first (read-your-writes
// across the CQRS split). Verify then proves the stored read models equal
// a fresh replay of the log.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	store, err := sqlitestore.Open(ctx, ":memory:", sqlitestore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// The same upcast registry as the write side: every read path sees one
	// shape per event type.
	reg := order.NewRegistry()
	runner, err := projection.New(store, projection.Options{Upcaster: reg}, orderview.Projections()...)
	if err != nil {
		log.Fatal(err)
	}
	// Setup creates the tables; Run would too, but a query may come first.
	if err := runner.Setup(ctx); err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := runner.Run(ctx); err != nil {
			log.Print(err)
		}
	}()
	defer wg.Wait()
	defer cancel()

	orders := aggregate.New(store, store, reg, order.Definition())
	res, err := orders.Handle(ctx, "ord_1", order.Create{CustomerID: "cust_1", Items: []order.Item{{SKU: "SKU-1", Quantity: 1, UnitPrice: 999}}})
	if err != nil {
		log.Fatal(err)
	}
	res, err = orders.Handle(ctx, "ord_1", order.Pay{Method: "card", Amount: 999})
	if err != nil {
		log.Fatal(err)
	}

	// GET /orders/ord_1?min_version=2
	stream, _ := order.StreamID("ord_1")
	if err := runner.WaitForStream(ctx, "order_summaries", stream, res.Version); err != nil {
		log.Fatal(err)
	}
	got, err := orderview.NewReader(store).Get(ctx, "ord_1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.Status, got.PaidAmount, "version", got.Version)

	// chronicle verify
	diffs, err := runner.Verify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("differences:", len(diffs))
	// Output:
	// paid 999 version 2
	// differences: 0
}
