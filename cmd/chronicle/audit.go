package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/seal"
)

func (m *Main) auditCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Export an audit bundle of the log, or check one offline",
		Long: `The log is hash-chained and sealed (see the audit package). 'export' writes a
self-contained bundle of some or all orders' events with the seals, Merkle
proofs and public keys; 'check' verifies a bundle offline, with no store:
every event hash, chain link, seal, inclusion proof and signature.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	c.AddCommand(m.auditExportCommand(), m.auditCheckCommand())
	return c
}

func (m *Main) auditCheckCommand() *cobra.Command {
	var publicKey string
	c := &cobra.Command{
		Use:   "check BUNDLE.json",
		Short: "Verify an audit bundle offline: hashes, chains, seals, proofs, signatures",
		Long: `Verify an audit bundle ({"events", "seals", "proofs", "public_keys"}) offline;
no store is opened. It recomputes every event's hash from its stored data and
metadata, checks each stream's chain of prev_hash links, each seal's hash, its
link to the previous seal, its Merkle root (from the bundle's events when it
holds all of them, else through each event's inclusion proof) and signature.

Without --public-key, signatures are checked against the bundle's own
public_keys: that shows the bundle is consistent, not who signed it, since
whoever edits a bundle can re-sign it. With --public-key KEY (the sealing
key, obtained from GET /audit/public-keys or its owner through another
channel) every seal must be signed by that key and the bundle's keys are not
trusted. KEY is the base64 of the raw 32-byte Ed25519 public key, as the API
lists it, or the path of a PEM file holding it ("PUBLIC KEY", as
'openssl pkey -pubout' writes it).

Every event a seal covers (its checkpoint at or before the seal's
last_checkpoint) needs its proof. Events after the last seal (the unsealed
tail) are only hashed and chained, and counted in the output: one removed
from the end of the bundle cannot be seen.

Exit status 0 when everything holds; 1 naming the first failure (the event by
position, stream and version, or the seal by seq, and what broke); 2 on a
usage error.`,
		Example: `  chronicle audit check bundle.json
  chronicle audit check bundle.json --public-key kJp8sM6dlnd+XvrvrYpxxBJ9luhul3jddA3mcfXbjIo=
  chronicle audit check bundle.json --public-key seal.pub`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			var opts audit.Options
			if publicKey != "" {
				key, err := readPublicKey(publicKey)
				if err != nil {
					return usagef("audit check: --public-key: %v", err)
				}
				opts.PublicKey = key
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("audit check: %w", err)
			}
			bundle, err := audit.DecodeBundle(b)
			if err != nil {
				return fmt.Errorf("audit check: %s: %w", args[0], err)
			}
			if err := audit.Check(bundle, opts); err != nil {
				return fmt.Errorf("audit check: %s: %w", args[0], err)
			}
			signedBy := "the bundle's own public keys"
			if opts.PublicKey != nil {
				signedBy = "key " + audit.KeyID(opts.PublicKey)
			}
			fmt.Fprintf(m.Stdout, "ok: %d events (%d unsealed: after the last seal, hashed and chained only), %d seals, %d proofs; signatures checked against %s\n",
				len(bundle.Events), audit.Unsealed(bundle), len(bundle.Seals), len(bundle.Proofs), signedBy)
			return nil
		},
	}
	c.Flags().StringVar(&publicKey, "public-key", "", "the sealing key: base64 of the raw 32-byte Ed25519 public key, or a PEM file path")
	return c
}

func (m *Main) auditExportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "export [ORDER_ID...]",
		Short: "Write an audit bundle of the named orders (all events when none) to stdout",
		Long: `Write a self-contained audit bundle, {"events", "seals", "proofs",
"public_keys"}, to stdout: the stored (not upcasted) events of the named
orders, or every event of the log when none is named, in the log's read
order; every seal; for each sealed event its seal's seq and Merkle audit path;
and every key that signed a seal. 'chronicle audit check' verifies it offline.

Events after the last seal (the unsealed tail, about a second of writes) are
exported too, hashed and chained but without a proof. Safe to run against
the store of a running 'chronicle serve'.`,
		Example: `  chronicle audit export ord_123 ord_456 > bundle.json
  chronicle audit export --store postgres://localhost/chronicle > everything.json`,
		RunE: func(c *cobra.Command, args []string) error {
			streams := make([]string, len(args))
			for i, id := range args {
				s, err := order.StreamID(id)
				if err != nil {
					return usagef("audit export: %v", err)
				}
				streams[i] = s
			}
			store, _, _, err := m.openExistingStore(c, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			defer store.Close()
			// As timeline does: an empty bundle would read as an order
			// with nothing to prove.
			for i, stream := range streams {
				if v, err := store.StreamVersion(c.Context(), stream); err != nil {
					return fmt.Errorf("audit export: %w", err)
				} else if v == 0 {
					return fmt.Errorf("audit export: order %s not found", args[i])
				}
			}
			bundle, err := seal.Export(c.Context(), store, streams)
			if err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
			enc := json.NewEncoder(m.Stdout)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(bundle); err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
			return nil
		},
	}
}

// readPublicKey reads --public-key: base64 of the raw key, else a PEM file.
func readPublicKey(s string) (ed25519.PublicKey, error) {
	if key, err := audit.DecodePublicKey(s); err == nil {
		return key, nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return nil, fmt.Errorf("neither base64 of a 32-byte Ed25519 public key nor a readable PEM file: %w", err)
	}
	return audit.ParsePublicKeyPEM(b)
}
