package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os/user"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/personal"
)

func (m *Main) demoCommand() *cobra.Command {
	var (
		orders  int
		workers int
		seed    uint64
	)
	c := &cobra.Command{
		Use:   "demo",
		Short: "Fill a store with a realistic order history",
		Long: `Fill the store with a realistic history of orders, so that a new user sees a
living console: orders created with a few items, items added and removed,
addresses changed, most paid, shipped and delivered, some cancelled, some
still open. Every event goes through the order domain's rules, one append
per command with its expected version, exactly as the service writes them.

The store records the time of each event as it is appended, so the whole
history is recorded now; the read models are built by 'chronicle serve' (or
'chronicle projections rebuild').`,
		Example: `  chronicle demo
  chronicle demo --orders 5000 --store sqlite:///tmp/demo.db`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if orders < 1 || workers < 1 {
				return usagef("demo: --orders and --workers must be at least 1")
			}
			store, loc, keys, err := m.openStore(c, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			defer store.Close()
			if seed == 0 {
				seed = uint64(time.Now().UnixNano())
			}
			start := time.Now()
			who := chronicle.Metadata{Actor: m.cliActor(), RequestID: chronicle.NewEventID()}
			events, err := runDemo(c.Context(), personal.NewStore(store, keys, order.PersonalData()), orders, workers, seed, who)
			if err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "demo: %d orders, %d events appended to %s in %s\n",
				orders, events, loc, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&orders, "orders", 3000, "number of orders")
	f.IntVar(&workers, "workers", 8, "concurrent writers")
	f.Uint64Var(&seed, "seed", 0, "random seed (0: from the clock); order ids stay unique either way")
	return c
}

// runDemo appends the history of n orders with w concurrent writers and
// returns the number of events appended. Their metadata records who: its
// actor and request id, and a correlation id per order.
func runDemo(ctx context.Context, store chronicle.Store, n, w int, seed uint64, who chronicle.Metadata) (int64, error) {
	// Ids unique per run, so demo can run again on the same store.
	prefix := "ord_" + strconv.FormatUint(uint64(time.Now().UnixMilli())%(36*36*36*36*36*36), 36) + "_"
	var appended atomic.Int64
	next := make(chan int)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for k := range w {
		rng := rand.New(rand.NewPCG(seed, uint64(k)))
		g.Go(func() error {
			for i := range next {
				id := fmt.Sprintf("%s%05d", prefix, i)
				cnt, err := demoOrder(ctx, store, rng, id, who)
				appended.Add(cnt)
				if err != nil {
					return fmt.Errorf("demo order %s: %w", id, err)
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return appended.Load(), err
}

// demoOrder runs one order's life: create, maybe edit, then pay, ship and
// deliver or cancel, stopping early at random, as real orders do.
func demoOrder(ctx context.Context, store chronicle.Store, rng *rand.Rand, id string, who chronicle.Metadata) (int64, error) {
	stream, err := order.StreamID(id)
	if err != nil {
		return 0, err
	}
	who.CorrelationID = "demo-" + id
	corr := who.JSON()
	var (
		s     order.State
		count int64
	)
	do := func(cmd order.Command) error {
		evs, err := order.Decide(s, cmd)
		if err != nil {
			return err
		}
		out := make([]chronicle.Event, len(evs))
		for i, ev := range evs {
			data, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			sv, _ := order.SchemaVersion(ev.EventType())
			out[i] = chronicle.Event{Type: ev.EventType(), SchemaVersion: sv, Data: data, Metadata: corr}
		}
		res, err := store.Append(ctx, stream, chronicle.Exact(s.Version), out)
		if err != nil {
			return err
		}
		count += int64(len(out))
		for i, e := range out {
			s, err = order.Evolve(s, chronicle.RecordedEvent{
				StreamID: stream, Version: res.FirstVersion + int64(i), Type: e.Type,
				SchemaVersion: e.SchemaVersion, Data: e.Data, RecordedAt: time.Now(),
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	catalog := [...]struct {
		sku   string
		price int64
	}{
		{"SKU-1001", 2500}, {"SKU-1002", 999}, {"SKU-2002", 4999}, {"SKU-3003", 1299},
		{"SKU-4004", 15900}, {"SKU-5005", 350}, {"SKU-6006", 7450}, {"SKU-7007", 18999},
	}
	cities := [...][3]string{
		{"Lyon", "69002", "FR"}, {"Berlin", "10115", "DE"}, {"Austin", "73301", "US"},
		{"Leeds", "LS1 4AP", "GB"}, {"Porto", "4000-322", "PT"}, {"Osaka", "530-0001", "JP"},
	}
	names := [...]string{"Ada Byron", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson", "Frances Allen", "Donald Knuth"}
	pick := func() (string, int64) {
		p := catalog[rng.IntN(len(catalog))]
		return p.sku, p.price
	}

	var items []order.Item
	for range 1 + rng.IntN(3) {
		sku, price := pick()
		if !hasSKU(items, sku) {
			items = append(items, order.Item{SKU: sku, Quantity: 1 + rng.Int64N(3), UnitPrice: price})
		}
	}
	if err := do(order.Create{CustomerID: fmt.Sprintf("cust_%03d", rng.IntN(400)), Items: items}); err != nil {
		return count, err
	}
	if rng.IntN(3) == 0 {
		if sku, price := pick(); !hasSKU(s.Items, sku) {
			if err := do(order.AddItem{SKU: sku, Quantity: 1, UnitPrice: price}); err != nil {
				return count, err
			}
		}
	}
	if rng.IntN(8) == 0 && len(s.Items) > 1 {
		if err := do(order.RemoveItem{SKU: s.Items[0].SKU}); err != nil {
			return count, err
		}
	}
	city := cities[rng.IntN(len(cities))]
	addr := order.Address{Name: names[rng.IntN(len(names))], Line1: strconv.Itoa(1+rng.IntN(200)) + " Main Street", City: city[0], PostalCode: city[1], Country: city[2]}
	if err := do(order.ChangeShippingAddress{Address: addr}); err != nil {
		return count, err
	}
	switch r := rng.IntN(100); {
	case r < 8: // abandoned: stays created
		return count, nil
	case r < 16:
		return count, do(order.Cancel{Reason: [...]string{"customer request", "payment declined", "out of stock"}[rng.IntN(3)]})
	}
	if err := do(order.Pay{Method: [...]string{"card", "card", "paypal", "bank_transfer"}[rng.IntN(4)], Amount: s.Total}); err != nil {
		return count, err
	}
	if rng.IntN(10) < 2 {
		return count, nil // paid, waiting for the warehouse
	}
	carrier := [...]string{"fedex", "ups", "dhl"}[rng.IntN(3)]
	if err := do(order.Ship{Carrier: carrier, Tracking: fmt.Sprintf("%s%09d", strings.ToUpper(carrier[:2]), rng.IntN(1e9))}); err != nil {
		return count, err
	}
	if rng.IntN(10) < 3 {
		return count, nil // in transit
	}
	return count, do(order.Deliver{SignedBy: addr.Name})
}

func hasSKU(items []order.Item, sku string) bool {
	for _, it := range items {
		if it.SKU == sku {
			return true
		}
	}
	return false
}

// cliActor names whoever runs a CLI command that appends events: "cli:"
// and the OS user name ($USER when the user database has no entry), so
// that the audit trail tells them from API clients.
func (m *Main) cliActor() string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if name == "" {
		name = m.Getenv("USER")
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}
