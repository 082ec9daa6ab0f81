package pgstore_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/pgstore"
)

// A Replica reads from a streaming-replication standby of the store's
// database while it is usable; otherwise the primary serves.
func ExampleOpenReplica() {
	ctx := context.Background()
	primary, err := pgstore.Open(ctx, "postgres://app@primary/db", pgstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer primary.Close()
	replica, err := pgstore.OpenReplica(ctx, "postgres://app@standby/db", primary, pgstore.ReplicaOptions{MaxLag: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer replica.Close()

	var from chronicle.Store = primary
	if replica.Usable() {
		from = replica
	}
	events, err := from.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 100})
	if err != nil {
		replica.Failed() // and read from the primary
		log.Fatal(err)
	}
	fmt.Println(len(events))
}
