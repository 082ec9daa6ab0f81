package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/httpapi"
	"github.com/chronicle-es/chronicle/internal/freetext"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/timeline"
)

func (m *Main) timelineCommand() *cobra.Command {
	var (
		asJSON  bool
		at      string
		version int64
	)
	c := &cobra.Command{
		Use:   "timeline ORDER_ID",
		Short: "Print an order's events, one a line (its debug timeline)",
		Long: `Print every event of an order, in version order, one a line with a short
summary of its salient fields, each event upcast to the current schema:

  ord_123:
    v1 OrderCreated {customer: cust_456, total: $99.99}
    v2 PaymentReceived {method: card, amount: $99.99}

--json prints the same as GET /orders/{id}/events. --version N or --at T also
print the order's state after event N, or as it was at time T (RFC 3339),
rebuilt from the events (with --json, as a "state" field).

It only reads, so it works on a store that a running 'chronicle serve' has
open, SQLite included: that is how to debug a live system.`,
		Example: `  chronicle timeline ord_123
  chronicle timeline ord_123 --version 2
  chronicle timeline ord_123 --at 2026-11-25T15:00:00Z --json
  chronicle timeline ord_123 --store postgres://localhost/chronicle`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			orderID := args[0]
			stream, err := order.StreamID(orderID)
			if err != nil {
				return usagef("timeline: %v", err)
			}
			var asOf time.Time
			if at != "" {
				if asOf, err = httpapi.ParseTime(at); err != nil {
					return usagef("timeline: --at: %v", err)
				}
			}
			if version < 0 || (version == 0 && c.Flags().Changed("version")) { // versions start at 1
				return usagef("timeline: --version must be >= 1")
			}
			if at != "" && version > 0 {
				return usagef("timeline: give --at or --version, not both")
			}
			store, _, keys, err := m.openExistingStore(c, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			defer store.Close()
			ctx := c.Context()
			up := order.NewRegistry()
			tl, err := timeline.Load(ctx, store, up, orderID, stream, chronicle.ReadStreamOptions{})
			if errors.Is(err, chronicle.ErrStreamNotFound) {
				return fmt.Errorf("order %s not found", orderID)
			}
			if err != nil {
				return err
			}
			var state *order.State
			var label string
			switch {
			case version > 0:
				if version > tl.Version {
					return fmt.Errorf("order %s has %d events: no version %d", orderID, tl.Version, version)
				}
				s, err := stateAt(ctx, store, up, stream, chronicle.ReadStreamOptions{To: version})
				if err != nil {
					return err
				}
				state, label = &s, fmt.Sprintf("state at v%d", version)
			case at != "":
				// The zero time would be no bound to the store, and no event
				// is that old.
				err := chronicle.ErrStreamNotFound
				var s order.State
				if !asOf.IsZero() {
					s, err = stateAt(ctx, store, up, stream, chronicle.ReadStreamOptions{Until: asOf})
				}
				if errors.Is(err, chronicle.ErrStreamNotFound) {
					return fmt.Errorf("order %s did not exist yet at %s", orderID, asOf.UTC().Format(time.RFC3339Nano))
				}
				if err != nil {
					return err
				}
				state, label = &s, fmt.Sprintf("state at %s (v%d)", asOf.UTC().Format(time.RFC3339Nano), s.Version)
			}
			// Personal fields are tokens until the output is revealed.
			out := &bytes.Buffer{}
			if err := func() error {
				if asJSON {
					return writeTimelineJSON(out, tl, state)
				}
				if err := tl.WriteText(out); err != nil {
					return err
				}
				if state != nil {
					b, err := json.MarshalIndent(state, "", "  ")
					if err != nil {
						return err
					}
					// Escaped like the timeline: JSON's escapes leave DEL, C1
					// controls and bidi overrides raw.
					lines := strings.Split(string(b), "\n")
					for i, l := range lines {
						lines[i] = freetext.Escape(l)
					}
					_, err = fmt.Fprintf(out, "\n%s:\n%s\n", label, strings.Join(lines, "\n"))
					return err
				}
				return nil
			}(); err != nil {
				return err
			}
			revealed, err := keys.Reveal(ctx, out.Bytes(), asJSON)
			if err != nil {
				return err
			}
			_, err = m.Stdout.Write(revealed)
			return err
		},
	}
	f := c.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON (the body of GET /orders/{id}/events)")
	f.StringVar(&at, "at", "", "also print the state as it was at this time (RFC 3339)")
	f.Int64Var(&version, "version", 0, "also print the state after this version")
	return c
}

// stateAt folds the order's events that opts selects, upcast, into its state.
// Errors: chronicle.ErrStreamNotFound when opts selects no event.
func stateAt(ctx context.Context, r timeline.Reader, up timeline.Upcaster, stream string, opts chronicle.ReadStreamOptions) (order.State, error) {
	events, err := r.ReadStream(ctx, stream, opts)
	if err != nil {
		return order.State{}, err
	}
	if len(events) == 0 {
		return order.State{}, chronicle.ErrStreamNotFound
	}
	var s order.State
	for _, e := range events {
		if e, err = up.Upcast(e); err != nil {
			return order.State{}, err
		}
		if s, err = order.Evolve(s, e); err != nil {
			return order.State{}, err
		}
	}
	return s, nil
}

func writeTimelineJSON(w io.Writer, tl *timeline.Timeline, state *order.State) error {
	if state == nil {
		return tl.WriteJSON(w)
	}
	// The timeline's fields, plus the state asked for.
	out := struct {
		*timeline.Timeline
		State *order.State `json:"state"`
	}{tl, state}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
