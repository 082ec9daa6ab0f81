package httpapi_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/console"
	"github.com/chronicle-es/chronicle/httpapi"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/sqlitestore"
	"github.com/prometheus/client_golang/prometheus"
)

// Example wires a server the way cmd/chronicle does: a store, the order
// repository (appends measured), the projections and their reader.
func Example() {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, "chronicle.db", sqlitestore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	upcasters := order.NewRegistry()
	metrics := prometheus.NewRegistry()
	appends, err := httpapi.NewAppendMetrics(metrics)
	if err != nil {
		log.Fatal(err)
	}
	orders := aggregate.New(appends.Wrap(store), store, upcasters, aggregate.Definition[order.State, order.Command, order.Event]{
		StreamID: order.StreamID, Decide: order.Decide, Evolve: order.Evolve, SnapshotSchema: order.SnapshotSchema,
	})
	runner, err := projection.New(store, projection.Options{Upcaster: upcasters, Logger: logger}, orderview.Projections()...)
	if err != nil {
		log.Fatal(err)
	}
	if err := runner.Setup(ctx); err != nil {
		log.Fatal(err)
	}
	go runner.Run(ctx)

	tokens, err := httpapi.ParseTokens(os.Getenv("CHRONICLE_TOKENS"))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := httpapi.New(httpapi.Options{
		Store: store, Upcaster: upcasters, Orders: orders, Views: orderview.NewReader(store),
		Projections: runner, Logger: logger, Registry: metrics, Tokens: tokens,
		Console: console.Handler(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	addr := "127.0.0.1:8080"
	if err := httpapi.CheckListenAddr(addr, srv.AuthEnabled()); err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Addr: addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(hs.ListenAndServe())
}
