package relay_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/relay"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// ExampleNew publishes a store's log to JetStream, as `chronicle relay`
// does: the relay is a sink of a projection runner, which gives it a
// checkpoint that moves only after JetStream acknowledged, and (on
// PostgreSQL) a lease, so one relay publishes per store.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	store, err := sqlitestore.Open(ctx, "chronicle-data/chronicle.db", sqlitestore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	reg := order.NewRegistry()
	r, err := relay.New(relay.Options{URL: "nats://127.0.0.1:4222", Upcaster: reg})
	if err != nil {
		log.Fatal(err) // relay.ErrBadURL, relay.ErrBadPrefix
	}
	defer r.Close()
	runner, err := projection.New(store, projection.Options{Upcaster: reg, Sinks: []projection.Sink{r}})
	if err != nil {
		log.Fatal(err)
	}
	// Run returns when ctx ends; the checkpoint is where the next run resumes.
	if err := runner.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
