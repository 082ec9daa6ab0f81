package feed_test

import (
	"context"
	"log"

	"github.com/chronicle-es/chronicle/feed"
)

func ExampleSubscribe() {
	ctx := context.Background()
	from := "" // or the checkpoint stored with your last effects
	err := feed.Subscribe(ctx, "http://127.0.0.1:8080", from, func(ctx context.Context, e feed.Event) error {
		log.Printf("%s %s v%d", e.Type, e.StreamID, e.Version)
		return nil // store e.Checkpoint with the effects to resume there
	}, feed.Options{Types: []string{"OrderShipped"}})
	log.Fatal(err)
}
