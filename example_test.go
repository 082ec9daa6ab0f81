package chronicle_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// Example appends to a stream with optimistic concurrency, retries an
// append safely, and reads the stream and the global log back. Every
// backend (sqlitestore, pgstore) behaves the same way.
func Example() {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, ":memory:", sqlitestore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// Event ids make a retried append idempotent; the caller chooses them
	// (or leaves them empty for the store to assign).
	created := chronicle.Event{
		ID:   "0193a4b2-7c00-7000-8000-000000000001",
		Type: "OrderCreated",
		Data: json.RawMessage(`{"customer_id":"cust_1","total":5000}`),
	}
	res, err := store.Append(ctx, "order-ord_1", chronicle.NoStream, []chronicle.Event{created})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created at version", res.LastVersion)

	// The same append again (a client retrying after a timeout) writes
	// nothing and answers as the first time.
	again, err := store.Append(ctx, "order-ord_1", chronicle.NoStream, []chronicle.Event{created})
	fmt.Println("retry:", again.LastVersion, err)

	// Another writer that also expected no stream loses: a typed conflict
	// with both versions, never a silent success.
	_, err = store.Append(ctx, "order-ord_1", chronicle.NoStream, []chronicle.Event{{
		Type: "OrderCreated",
		Data: json.RawMessage(`{"customer_id":"cust_2","total":100}`),
	}})
	var conflict *chronicle.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println("conflict: expected", conflict.Expected, "actual", conflict.Actual, errors.Is(err, chronicle.ErrWrongVersion))
	}

	// Append with the version read: the optimistic-concurrency check.
	_, err = store.Append(ctx, "order-ord_1", chronicle.Exact(1), []chronicle.Event{{
		Type: "PaymentReceived",
		Data: json.RawMessage(`{"method":"card","amount":5000}`),
	}})
	if err != nil {
		log.Fatal(err)
	}

	events, err := store.ReadStream(ctx, "order-ord_1", chronicle.ReadStreamOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range events {
		fmt.Printf("v%d %s %s\n", e.Version, e.Type, e.Data)
	}

	// Subscribers read the global log after their checkpoint, in commit order.
	all, err := store.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{})
	if err != nil {
		log.Fatal(err)
	}
	last := all[len(all)-1]
	fmt.Println("log:", len(all), "events; last", last.StreamID, last.Version)
	// Output:
	// created at version 1
	// retry: 1 <nil>
	// conflict: expected no stream actual 1 true
	// v1 OrderCreated {"customer_id":"cust_1","total":5000}
	// v2 PaymentReceived {"method":"card","amount":5000}
	// log: 2 events; last order-ord_1 2
}
