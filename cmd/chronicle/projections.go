package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/relay"
	"github.com/chronicle-es/chronicle/seal"
)

// openRunner opens the store and a projection runner over the order read
// models, with their tables set up. The caller closes the store.
func (m *Main) openRunner(c *cobra.Command) (storeurl.Store, *projection.Runner, error) {
	store, _, _, err := m.openExistingStore(c, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, err
	}
	runner, err := projection.New(store, projection.Options{Upcaster: order.NewRegistry(), Watch: []string{relay.Name}}, orderview.Projections()...)
	if err == nil {
		err = runner.Setup(c.Context())
	}
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return store, runner, nil
}

func (m *Main) projectionsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "projections",
		Short: "List the read models' projections, or rebuild one",
		Long: `The read models (order_summaries, order_status_history) are projections of
the global log. 'list' shows where each stands; 'rebuild NAME' builds one again
from the start of the log while the current one keeps serving.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	c.AddCommand(m.projectionsListCommand(), m.projectionsRebuildCommand())
	return c
}

func (m *Main) projectionsListCommand() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "Show each projection's position, lag and status",
		Long: `Show each projection: its checkpoint position, the head of the log, the lag
in events and seconds, and its status (running, retrying or failed). It reads
the checkpoints from the store, so it shows the projections of a running
'chronicle serve' too.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			store, runner, err := m.openRunner(c)
			if err != nil {
				return err
			}
			defer store.Close()
			sts, err := runner.Status(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(m.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"projections": sts})
			}
			tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATUS\tPOSITION\tHEAD\tLAG_EVENTS\tLAG_SECONDS")
			for _, s := range sts {
				status := s.Status
				if f := s.Failure; f != nil {
					status += fmt.Sprintf(" at %s v%d (%s, %d attempts): %s", f.StreamID, f.Version, f.EventType, f.Attempts, oneLine(f.Error))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.1f\n", s.Name, status, s.Position, s.HeadPosition, s.LagEvents, s.LagSeconds)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (the body of GET /projections)")
	return c
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (m *Main) projectionsRebuildCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rebuild NAME",
		Short: "Rebuild a read model from the start of the log",
		Long: `Rebuild the read model NAME from the start of the log into new tables while
the current one keeps serving, then swap them in atomically. A running
'chronicle serve' on the same store keeps answering throughout and follows on
from the new tables.

On a terminal a progress bar shows events done, events/s and the time left;
otherwise a progress line is printed about once a second.`,
		Example: `  chronicle projections rebuild order_summaries`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			// Known before the store is opened: a usage error first.
			var known []string
			for _, p := range orderview.Projections() {
				known = append(known, p.Name())
			}
			if !contains(known, name) {
				return usagef("projections rebuild: unknown projection %q (known: %s)", name, strings.Join(known, ", "))
			}
			store, runner, err := m.openRunner(c)
			if err != nil {
				return err
			}
			defer store.Close()
			bar := newProgress(m.Stderr, m.isTerminal(m.Stderr))
			start := time.Now()
			err = runner.Rebuild(c.Context(), name, bar.report)
			bar.done()
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return fmt.Errorf("rebuild of %s interrupted; the old read model is still in place", name)
				}
				return err
			}
			fmt.Fprintf(m.Stdout, "rebuilt %s: %d events in %s\n", name, bar.last.EventsDone, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// progress draws a rebuild's progress: a bar redrawn in place on a
// terminal, plain lines at most about once a second otherwise (logs).
type progress struct {
	verb    string // the operation, on plain lines
	w       io.Writer
	tty     bool
	last    projection.Progress
	printed time.Time
	drawn   bool
}

func newProgress(w io.Writer, tty bool) *progress {
	return &progress{verb: "rebuild", w: w, tty: tty}
}

func (p *progress) report(pr projection.Progress) {
	p.last = pr
	if !p.tty && !pr.Swapped && time.Since(p.printed) < time.Second {
		return
	}
	p.printed = time.Now()
	frac := 1.0
	if pr.HeadPosition > 0 && !pr.Swapped {
		frac = min(float64(pr.Position)/float64(pr.HeadPosition), 1)
	}
	stats := fmt.Sprintf("%3.0f%% %d events  %.0f events/s  ETA %s", frac*100, pr.EventsDone, pr.EventsPerSec, pr.ETA.Round(time.Second))
	if pr.Swapped {
		stats = fmt.Sprintf("100%% %d events  %.0f events/s  done in %s, swapped in", pr.EventsDone, pr.EventsPerSec, pr.Elapsed.Round(time.Millisecond))
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s %s: %s\n", p.verb, pr.Projection, stats)
		return
	}
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r\033[K%s [%s%s] %s", pr.Projection, strings.Repeat("#", n), strings.Repeat(".", width-n), stats)
	p.drawn = true
}

func (p *progress) done() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}

func (m *Main) verifyCommand() *cobra.Command {
	var (
		integrity bool
		anchor    string
		publicKey string
	)
	c := &cobra.Command{
		Use:   "verify",
		Short: "Check the read models against a replay of the log, or (--integrity) the log's hashes and seals",
		Long: `Replay the log in memory through every projection, up to the checkpoint each
has committed, and compare the result with the stored read model.

Exit status 0 when every read model matches; 1 with the differences listed
(table, row, column, stored and replayed values) when one does not.

With --integrity, check the log itself instead: recompute every event's hash
from its stored form, every stream's chain of prev_hash links, and every
seal's seq, link to the previous seal, seal_hash, signature (against the
store's listed keys), and that its count events, in read order, end at its
last_checkpoint with its Merkle root; and that every row of the events table
is one it checked, or one appended since (a row that stream reads return but
the log never does is named). With --anchor SEAL_HASH (a seal_hash
copied earlier from GET /audit/seals/latest), also that the chain still holds
that seal: without it, the last seals removed together with their events
cannot be seen, nor events after the last seal removed from the end. Once a
key signed a seal, every later seal must be signed, and every key the store
lists must sign a seal. With --public-key KEY (the sealing key, obtained from
GET /audit/public-keys or its owner through another channel) every seal must
be signed by that key and the store's listed keys are not trusted: whoever
can rewrite the seals can list a key of their own. KEY is the base64 of the
raw 32-byte Ed25519 public key, or the path of a PEM file holding it.
Exit status 0 when everything holds; 1 naming the first event (position,
stream, version) or seal (seq) that does not, and what broke.

Both are safe to run against the store of a running 'chronicle serve'.`,
		Example: `  chronicle verify
  chronicle verify --integrity
  chronicle verify --integrity --anchor 6c858061aa8d3529e6d75ef05a305fdd8334967b0e3c28d9bdece8afe2c74e66
  chronicle verify --integrity --public-key seal.pub`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if anchor != "" && !integrity {
				return usagef("verify: --anchor goes with --integrity")
			}
			if anchor != "" {
				if _, err := audit.ParseHash(anchor); err != nil {
					return usagef("verify: --anchor: %v", err)
				}
			}
			if publicKey != "" && !integrity {
				return usagef("verify: --public-key goes with --integrity")
			}
			var opts seal.VerifyOptions
			opts.Anchor = anchor
			if publicKey != "" {
				key, err := readPublicKey(publicKey)
				if err != nil {
					return usagef("verify: --public-key: %v", err)
				}
				opts.PublicKey = key
			}
			if integrity {
				return m.verifyIntegrity(c, opts)
			}
			store, runner, err := m.openRunner(c)
			if err != nil {
				return err
			}
			defer store.Close()
			diffs, err := runner.Verify(c.Context())
			if err != nil {
				return err
			}
			if len(diffs) == 0 {
				fmt.Fprintf(m.Stdout, "ok: %s match a replay of the log\n", strings.Join(runner.Names(), ", "))
				return nil
			}
			for _, d := range diffs {
				fmt.Fprintln(m.Stdout, d.String())
			}
			return fmt.Errorf("verify: %d difference(s) between the stored read models and a replay of the log", len(diffs))
		},
	}
	c.Flags().BoolVar(&integrity, "integrity", false, "check the log's hashes, stream chains and seals instead of the read models")
	c.Flags().StringVar(&anchor, "anchor", "", "with --integrity: a seal_hash kept elsewhere that the seal chain must still hold")
	c.Flags().StringVar(&publicKey, "public-key", "", "with --integrity: the key every seal must be signed with: base64 of the raw 32-byte Ed25519 public key, or a PEM file path")
	return c
}

func (m *Main) verifyIntegrity(c *cobra.Command, opts seal.VerifyOptions) error {
	store, _, _, err := m.openExistingStore(c, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer store.Close()
	rep, err := seal.Verify(c.Context(), store, opts)
	if err != nil {
		return fmt.Errorf("verify --integrity: %w", err)
	}
	fmt.Fprintf(m.Stdout, "ok: %d events in %d streams hashed and chained; %d seals hold", rep.Events, rep.Streams, rep.Seals)
	if opts.Anchor != "" {
		fmt.Fprintf(m.Stdout, ", the anchor among them")
	}
	if opts.PublicKey != nil {
		fmt.Fprintf(m.Stdout, ", all signed by key %s", audit.KeyID(opts.PublicKey))
	}
	fmt.Fprintf(m.Stdout, "; %d events after the last seal\n", rep.Unsealed)
	return nil
}
