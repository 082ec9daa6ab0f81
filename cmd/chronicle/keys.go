package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/httpapi"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/personal"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/projection"
)

// envMasterKey names the master key file when --master-key does not.
const envMasterKey = "CHRONICLE_MASTER_KEY_FILE"

// masterKey returns the master key for the store at loc: --master-key,
// else $CHRONICLE_MASTER_KEY_FILE, else (SQLite) master.key beside the
// database file, created on first use (s, the store once open, must hold
// no data keys yet: refused otherwise); an in-memory store gets a key of
// its own, gone with it. PostgreSQL needs one given: every process sharing
// the store must use the same.
func (m *Main) masterKey(c *cobra.Command, loc storeurl.Location, s storeurl.Store, log *slog.Logger) ([]byte, error) {
	path, _ := c.Flags().GetString("master-key")
	if path == "" {
		path = m.Getenv(envMasterKey)
	}
	if path != "" {
		return personal.ReadMasterKey(path)
	}
	if loc.Kind != storeurl.SQLite {
		return nil, &usageError{errors.New("no master key: a PostgreSQL store needs the one its data keys were made with, " +
			"the same for every process: make one with 'chronicle keygen > master.key' and pass --master-key master.key " +
			"(or set " + envMasterKey + ")")}
	}
	if loc.Path == ":memory:" {
		return personal.ParseMasterKey(personal.NewMasterKey())
	}
	path = filepath.Join(filepath.Dir(loc.Path), "master.key")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && s != nil {
		// A new key cannot unwrap the data keys there are: refuse rather
		// than leave a useless key file beside them.
		keys, err := s.ListDataKeys(c.Context(), "", 1)
		if err != nil {
			return nil, err
		}
		if len(keys) > 0 {
			return nil, fmt.Errorf("no master key: %s is missing beside %s, which holds data keys: "+
				"give the key they were made with (--master-key FILE or %s)", path, loc.Path, envMasterKey)
		}
	}
	key, created, err := personal.CreateMasterKey(path)
	if created {
		log.Info("created a master key for the store's personal data: keep it, and back it up apart from the store", "path", path)
	}
	return key, err
}

// openStore opens the store the command line names, with the keyring of its
// personal data. A URL that cannot be parsed is a usage error; a master key
// that does not match the store's is refused here, before anything runs.
func (m *Main) openStore(c *cobra.Command, log *slog.Logger) (storeurl.Store, storeurl.Location, *personal.Keyring, error) {
	loc, err := storeurl.Parse(m.storeURL(c))
	if err != nil {
		return nil, loc, nil, &usageError{err}
	}
	if loc.Kind != storeurl.SQLite {
		// Refuse before connecting: the missing key is the message to see.
		if _, err := m.masterKey(c, loc, nil, log); err != nil {
			return nil, loc, nil, err
		}
	}
	bar := newProgress(m.Stderr, m.isTerminal(m.Stderr))
	bar.verb = "migrate"
	start := time.Now()
	s, err := storeurl.Open(c.Context(), loc, storeurl.Options{Logger: log, MigrateProgress: func(done, total int64) {
		el := time.Since(start)
		pr := projection.Progress{Projection: "hashing stored events", EventsDone: done, Position: done,
			HeadPosition: total, Elapsed: el, EventsPerSec: float64(done) / el.Seconds()}
		if pr.EventsPerSec > 0 {
			pr.ETA = time.Duration(float64(total-done) / pr.EventsPerSec * float64(time.Second))
		}
		bar.report(pr)
	}})
	bar.done()
	if err != nil {
		return nil, loc, nil, err
	}
	master, err := m.masterKey(c, loc, s, log)
	var keys *personal.Keyring
	if err == nil {
		keys, err = personal.NewKeyring(c.Context(), s, master)
	}
	clear(master)
	if err != nil {
		s.Close()
		return nil, loc, nil, err
	}
	return s, loc, keys, nil
}

// openExistingStore is openStore for the commands that only read a store:
// a SQLite file that does not exist is refused, not made (with a master
// key) at a mistyped path for the command to report on an empty store.
func (m *Main) openExistingStore(c *cobra.Command, log *slog.Logger) (storeurl.Store, storeurl.Location, *personal.Keyring, error) {
	if loc, err := storeurl.Parse(m.storeURL(c)); err == nil {
		if err := storeMissing(c.Context(), loc); err != nil {
			return nil, loc, nil, err
		}
	}
	return m.openStore(c, log)
}

// storeMissing says so when loc is a SQLite file that does not exist, or a
// PostgreSQL schema that holds no store.
func storeMissing(ctx context.Context, loc storeurl.Location) error {
	if loc.Kind == storeurl.Postgres {
		ok, err := pgstore.Exists(ctx, loc.URL, loc.Schema)
		if err == nil && !ok {
			return fmt.Errorf("no store in schema %s of that database", cmp.Or(loc.Schema, pgstore.DefaultSchema))
		}
		return nil // any other trouble: opening it says what
	}
	if loc.Path == ":memory:" {
		return nil
	}
	if _, err := os.Stat(loc.Path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no store at %s", loc.Path)
	}
	return nil // any other trouble: opening it says what
}

func (m *Main) keygenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new master key (32 random bytes, base64)",
		Long: `Print a new master key for the data keys of personal data. Keep it apart from
the store: whoever has both can read the personal data not erased yet, and
without it nobody can. Every process sharing a store needs the same key.`,
		Example: `  chronicle keygen > master.key && chmod 600 master.key
  chronicle serve --store postgres://... --master-key master.key`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			_, err := m.Stdout.Write(personal.NewMasterKey())
			return err
		},
	}
}

func (m *Main) eraseCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "erase CUSTOMER_ID",
		Short: "Erase a customer's personal data (destroy its data key)",
		Long: `Erase a customer's personal data: its data key is destroyed, so every
personal field of its orders (shipping name, line1, city, postal code, who
signed for the delivery) reads as "[erased]" from now on, everywhere. Nothing
else changes: statuses, totals, versions, hashes. Prints the same JSON as
DELETE /customers/{customer_id}/personal-data; erasing again prints the same.
Exit 1 for a customer with no personal data stored.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			customer := args[0]
			if err := order.ValidID("customer_id", customer); err != nil {
				return usagef("erase: %v", err)
			}
			store, _, keys, err := m.openStore(c, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			defer store.Close()
			// The orders come from the read model, which must first catch up
			// with the log: a serve running on this store does that (on
			// PostgreSQL it holds the lease); else this runner does.
			runner, err := projection.New(store, projection.Options{Upcaster: order.NewRegistry()}, orderview.Projections()...)
			if err == nil {
				err = runner.Setup(c.Context())
			}
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(c.Context())
			var wg sync.WaitGroup
			wg.Go(func() { _ = runner.Run(ctx) })
			defer wg.Wait()
			defer cancel()
			caughtUp := func(ctx context.Context) error {
				return summariesCaughtUp(ctx, store, runner)
			}
			e, err := httpapi.Erase(ctx, keys, orderview.NewReader(store), caughtUp, customer)
			if errors.Is(err, chronicle.ErrNotFound) {
				return fmt.Errorf("customer %s has no personal data in this store", customer)
			}
			if err != nil {
				return err
			}
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(m.Stdout, "%s\n", b)
			return err
		},
	}
}

// summariesCaughtUp returns once the order_summaries read model reflects
// every event committed when it was called, or with an error when that
// model is stopped at an event it cannot apply (it would never catch up).
func summariesCaughtUp(ctx context.Context, store chronicle.Store, runner *projection.Runner) error {
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := runner.WaitFor(wctx, orderview.SummariesName, head.Last)
		cancel()
		if err == nil || ctx.Err() != nil || wctx.Err() == nil {
			return err
		}
		st, err := runner.Status(ctx)
		if err != nil {
			return err
		}
		for _, p := range st {
			if p.Name == orderview.SummariesName && p.Status == "failed" {
				return fmt.Errorf("the order read model %s is stopped at a failing event (see chronicle projections list); nothing was erased", p.Name)
			}
		}
	}
}
