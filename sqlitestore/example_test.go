package sqlitestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// ExampleOpen keeps a log in a file: an append acknowledged is on disk
// (synchronous FULL by default), and opening the file again finds it.
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "chronicle-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "chronicle.db")

	store, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	_, err = store.Append(ctx, "order-ord_1", chronicle.NoStream, []chronicle.Event{
		{Type: "OrderCreated", Data: json.RawMessage(`{"customer_id":"cust_1"}`)},
		{Type: "PaymentReceived", Data: json.RawMessage(`{"amount":999}`)},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Close(); err != nil {
		log.Fatal(err)
	}

	store, err = sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	version, err := store.StreamVersion(ctx, "order-ord_1")
	if err != nil {
		log.Fatal(err)
	}
	head, err := store.Head(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version", version, "last position", head.Position)
	// Output:
	// version 2 last position 2
}
