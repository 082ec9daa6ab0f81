package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/personal"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/relay"
	"github.com/chronicle-es/chronicle/seal"
)

// errRefused: the target is neither empty nor a partial copy of the source.
var errRefused = errors.New("copy: refused")

func (m *Main) copyCommand() *cobra.Command {
	var from, to string
	var batch int
	c := &cobra.Command{
		Use:   "copy --from URL --to URL",
		Short: "Copy a whole store into another (SQLite to PostgreSQL, and back)",
		Long: `Copy every event of the store at --from into the store at --to, in the
global log's order, exactly as stored: ids, stream ids, versions, types,
schema versions, data and metadata bytes, recorded times, hashes. The data keys of
personal data (wrapped by the source's master key, which the target then
needs too; erased customers stay erased) and the snapshots come along, and
the seals as made (their seal_hash, signatures and anchors still hold) with
the keys that signed them; the target records where each copied seal ends in
its own log, and its sealer goes on after the last one. Read models are not
copied: the target's 'chronicle serve' builds them.

Stop the source's writers first. The target must be empty or a partial copy
of the same source (a copy interrupted, even by kill -9): the copy then goes
on from where it stopped. Any other target is refused, with exit status 1,
before anything is written to it.

It ends by comparing counts and running verify and verify --integrity on the
target (anchored at the source's latest seal), and prints the counts and
events/s. On a terminal a progress bar shows the events copied;
otherwise a progress line is printed about once a second.

--master-key (or $` + envMasterKey + `) names the source's master key; for a
SQLite source, master.key beside its database is the default. A SQLite target
gets a copy of that key file beside its database when it has none.`,
		Example: `  chronicle copy --from sqlite:///var/lib/chronicle/chronicle.db \
    --to 'postgres://chronicle@db:5432/chronicle?sslmode=require' --master-key master.key`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return usagef("copy: both --from and --to are required")
			}
			if batch < 1 {
				return usagef("copy: --batch must be at least 1")
			}
			return m.runCopy(c, from, to, batch)
		},
	}
	c.Flags().StringVar(&from, "from", "", "URL of the store to copy")
	c.Flags().StringVar(&to, "to", "", "URL of the store to copy into: empty, or a partial copy of the source")
	c.Flags().IntVar(&batch, "batch", 10_000, "events per transaction on the target")
	return c
}

func (m *Main) runCopy(c *cobra.Command, fromURL, toURL string, batch int) error {
	ctx := c.Context()
	log := slog.New(slog.DiscardHandler)
	fromLoc, err := storeurl.Parse(fromURL)
	if err != nil {
		return &usageError{fmt.Errorf("copy: --from: %w", err)}
	}
	toLoc, err := storeurl.Parse(toURL)
	if err != nil {
		return &usageError{fmt.Errorf("copy: --to: %w", err)}
	}
	if fromLoc == toLoc || fromLoc.Path == ":memory:" || toLoc.Path == ":memory:" {
		return usagef("copy: --from and --to must name two different stores that outlive the copy")
	}
	if fromLoc.Kind != storeurl.SQLite {
		// Refuse before connecting: the missing key is the message to see.
		if _, err := m.masterKey(c, fromLoc, nil, log); err != nil {
			return err
		}
	}
	// The source is only read: a mistyped path must not make an empty one.
	if err := storeMissing(ctx, fromLoc); err != nil {
		return fmt.Errorf("copy: --from: %w", err)
	}
	src, err := storeurl.Open(ctx, fromLoc, storeurl.Options{Logger: log})
	if err != nil {
		return err
	}
	defer src.Close()
	master, err := m.masterKey(c, fromLoc, src, log)
	if err != nil {
		return err
	}
	defer clear(master)
	if _, err := personal.NewKeyring(ctx, src, master); err != nil {
		return fmt.Errorf("copy: source %s: %w", fromLoc, err)
	}
	dst, err := storeurl.Open(ctx, toLoc, storeurl.Options{Logger: log})
	if err != nil {
		return err
	}
	defer dst.Close()

	total, err := src.CountEvents(ctx)
	if err != nil {
		return err
	}
	done, resume, err := resumePoint(ctx, src, dst, total)
	if err != nil {
		return err
	}
	if err := sameSeals(ctx, src, dst); err != nil {
		return err
	}
	// The target's data keys are the source's, wrapped by the same master
	// key: a target that has another one is not this source's copy.
	keyFile := ""
	if toLoc.Kind == storeurl.SQLite {
		if keyFile, err = targetKeyFile(toLoc, master); err != nil {
			return err
		}
	}
	if _, err := personal.NewKeyring(ctx, dst, master); errors.Is(err, personal.ErrWrongMasterKey) {
		return fmt.Errorf("%w: the target %s has data keys of another master key", errRefused, toLoc)
	} else if err != nil {
		return err
	}
	if keyFile != "" {
		if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(master)+"\n"), 0o600); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		fmt.Fprintf(m.Stderr, "copy: wrote the source's master key to %s: keep it, and back it up apart from the store\n", keyFile)
	}

	keys, err := copyDataKeys(ctx, src, dst)
	if err != nil {
		return err
	}
	if done > 0 {
		fmt.Fprintf(m.Stderr, "copy: the target holds the first %d of %d events already: resuming\n", done, total)
	}
	start, first := time.Now(), done
	bar := newProgress(m.Stderr, m.isTerminal(m.Stderr))
	bar.verb = "copy"
	report := func() {
		el := time.Since(start)
		pr := projection.Progress{Projection: "events", EventsDone: done, Position: done, HeadPosition: total, Elapsed: el}
		if s := el.Seconds(); s > 0 {
			pr.EventsPerSec = float64(done-first) / s
			if pr.EventsPerSec > 0 {
				pr.ETA = time.Duration(float64(total-done) / pr.EventsPerSec * float64(time.Second))
			}
		}
		bar.report(pr)
	}
	report()
	done, err = copyEvents(ctx, src, dst, resume, done, total, batch, report)
	bar.printed = time.Time{} // the last line, also off a terminal
	report()
	bar.done()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	seals, err := copySeals(ctx, src, dst)
	if err != nil {
		return err
	}
	anchor := ""
	if latest, err := src.LatestSeal(ctx); err == nil {
		anchor = audit.Hash(latest.SealHash).String()
	} else if !errors.Is(err, chronicle.ErrNotFound) {
		return err
	}
	snaps, err := copySnapshots(ctx, src, dst)
	if err != nil {
		return err
	}
	if err := checkCopy(ctx, src, dst, total); err != nil {
		return err
	}
	if err := verifyCopy(ctx, dst); err != nil {
		return err
	}
	// The anchor: the target's seal chain holds the source's latest seal.
	rep, err := seal.Verify(ctx, dst, seal.VerifyOptions{Anchor: anchor})
	if err != nil {
		return fmt.Errorf("copy: verify --integrity on the target: %w", err)
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done-first) / s
	}
	fmt.Fprintf(m.Stdout, "copied %s to %s: %d events (%d in this run, %s, %.0f events/s), %d seals, %d snapshots, %d data keys; "+
		"verify ok; verify --integrity ok (%d events hashed and chained, %d seals)\n",
		fromLoc, toLoc, done, done-first, elapsed.Round(time.Millisecond), rate, seals, snaps, keys, rep.Events, rep.Seals)
	if toLoc.Kind == storeurl.Postgres {
		fmt.Fprintln(m.Stdout, "the target's data keys are wrapped by the source's master key: run its processes with that key (--master-key)")
	}
	return nil
}

// resumePoint checks that the target holds a prefix of the source's log (in
// the log's read order) and returns its length and the checkpoint of its
// last event in the source. Anything else is refused.
func resumePoint(ctx context.Context, src, dst storeurl.Store, total int64) (int64, chronicle.Checkpoint, error) {
	n, err := dst.CountEvents(ctx)
	if err != nil || n == 0 {
		return 0, chronicle.Checkpoint{}, err
	}
	if n > total {
		return 0, chronicle.Checkpoint{}, fmt.Errorf("%w: the target holds %d events, more than the source's %d: not a copy of it", errRefused, n, total)
	}
	var last chronicle.RecordedEvent
	for _, i := range []int64{1, n} {
		se, err := src.EventAt(ctx, i)
		if err != nil {
			return 0, chronicle.Checkpoint{}, err
		}
		te, err := dst.EventAt(ctx, i)
		if err != nil {
			return 0, chronicle.Checkpoint{}, err
		}
		if why := storedDiff(se, te); why != "" {
			return 0, chronicle.Checkpoint{}, fmt.Errorf("%w: the target's event %d (%s v%d, %s) is not the source's (%s v%d, %s): %s differs; not a partial copy of this source",
				errRefused, i, te.StreamID, te.Version, te.ID, se.StreamID, se.Version, se.ID, why)
		}
		last = se
	}
	return n, last.Checkpoint(), nil
}

// sameSeals refuses a target holding a seal that is not the source's seal
// of the same seq: one its own serve made since the copy stopped. Checked
// before anything is written, since importing the seals, last, would fail
// only after every remaining event was copied.
func sameSeals(ctx context.Context, src, dst storeurl.Store) error {
	after := int64(0)
	for {
		have, err := dst.Seals(ctx, after, copyPage)
		if err != nil || len(have) == 0 {
			return err
		}
		want, err := src.Seals(ctx, after, len(have))
		if err != nil {
			return err
		}
		for i, h := range have {
			if i >= len(want) || want[i].Seq != h.Seq || want[i].SealHash != h.SealHash ||
				want[i].KeyID != h.KeyID || want[i].Signature != h.Signature {
				return fmt.Errorf("%w: the target's seal %d is not the source's (sealed on the target since the copy stopped?); not a partial copy of this source",
					errRefused, h.Seq)
			}
		}
		after = have[len(have)-1].Seq
	}
}

// storedDiff names the first stored field in which a and b differ, "" when
// none does. Positions and transaction ids are each store's own.
func storedDiff(a, b chronicle.RecordedEvent) string {
	switch {
	case a.ID != b.ID:
		return "event_id"
	case a.StreamID != b.StreamID:
		return "stream_id"
	case a.Version != b.Version:
		return "version"
	case a.Type != b.Type:
		return "type"
	case a.SchemaVersion != b.SchemaVersion:
		return "schema_version"
	case !a.RecordedAt.Equal(b.RecordedAt):
		return "recorded_at"
	case !bytes.Equal(a.Data, b.Data):
		return "data"
	case !bytes.Equal(a.Metadata, b.Metadata):
		return "metadata"
	case a.Hash != b.Hash:
		return "hash"
	case a.PrevHash != b.PrevHash:
		return "prev_hash"
	}
	return ""
}

// copyEvents copies the source's events after from in chunks of batch, one
// target transaction each, reading the next chunk while one is written.
func copyEvents(ctx context.Context, src, dst storeurl.Store, from chronicle.Checkpoint, done, total int64, batch int, report func()) (int64, error) {
	type chunk struct {
		evs []chronicle.RecordedEvent
		err error
	}
	chunks := make(chan chunk, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(chunks)
		read, held := done, time.Time{}
		for read < total {
			evs, err := src.ReadAll(rctx, from, chronicle.ReadAllOptions{Limit: batch})
			if err == nil && len(evs) == 0 {
				// Committed but held back behind another transaction of the
				// source's server (PostgreSQL): wait for it, not forever.
				if held.IsZero() {
					held = time.Now()
				}
				if time.Since(held) > time.Minute {
					err = fmt.Errorf("copy: %d of the source's events stayed invisible for a minute (a transaction left open on its server?)", total-read)
				} else {
					select {
					case <-time.After(20 * time.Millisecond):
						continue
					case <-rctx.Done():
						err = rctx.Err()
					}
				}
			}
			select {
			case chunks <- chunk{evs, err}:
			case <-rctx.Done():
				return
			}
			if err != nil {
				return
			}
			held = time.Time{}
			read += int64(len(evs))
			from = evs[len(evs)-1].Checkpoint()
		}
	}()
	for ch := range chunks {
		if ch.err != nil {
			return done, ch.err
		}
		if err := dst.ImportEvents(ctx, ch.evs); err != nil {
			return done, fmt.Errorf("copy: %w", err)
		}
		done += int64(len(ch.evs))
		report()
	}
	return done, ctx.Err()
}

const copyPage = 1000

// copySeals imports the source's seals after the target's latest, as
// made, each with where it ends in the target: the event at the same place
// of the log (the seals' counts add up to it), which the target holds
// once the events are copied. It returns the number of seals the target
// holds.
func copySeals(ctx context.Context, src, dst storeurl.Store) (int64, error) {
	latest, err := dst.LatestSeal(ctx)
	if err != nil && !errors.Is(err, chronicle.ErrNotFound) {
		return 0, err
	}
	keys, err := src.SealKeys(ctx)
	if err != nil {
		return 0, err
	}
	n, cp := latest.Seq, latest.LocalEnd()
	for {
		seals, err := src.Seals(ctx, n, copyPage)
		if err != nil || len(seals) == 0 {
			return n, err
		}
		for i := range seals {
			if seals[i].Count > 0 {
				if cp, err = skipEvents(ctx, dst, cp, seals[i].Count); err != nil {
					return n, fmt.Errorf("copy: seal %d: %w", seals[i].Seq, err)
				}
			}
			seals[i].End = cp
		}
		if err := dst.ImportSeals(ctx, seals, keys); err != nil {
			return n, fmt.Errorf("copy: %w", err)
		}
		n = seals[len(seals)-1].Seq
	}
}

// skipEvents returns the checkpoint of the n-th event of the log after cp.
func skipEvents(ctx context.Context, s storeurl.Store, cp chronicle.Checkpoint, n int64) (chronicle.Checkpoint, error) {
	var held time.Time
	for n > 0 {
		page, err := s.ReadAll(ctx, cp, chronicle.ReadAllOptions{Limit: int(min(n, 5000))})
		if err != nil {
			return cp, err
		}
		if len(page) == 0 {
			// Held back behind another transaction of the target's server
			// (PostgreSQL): wait for it, not forever.
			if held.IsZero() {
				held = time.Now()
			}
			if time.Since(held) > time.Minute {
				return cp, fmt.Errorf("the target's log ends %d events before the seal does", n)
			}
			select {
			case <-time.After(20 * time.Millisecond):
				continue
			case <-ctx.Done():
				return cp, ctx.Err()
			}
		}
		held = time.Time{}
		cp, n = page[len(page)-1].Checkpoint(), n-int64(len(page))
	}
	return cp, nil
}

// copyDataKeys imports every data key of the source, tombstones included
// (again on a resumed copy: an import replaces keys by id).
func copyDataKeys(ctx context.Context, src, dst storeurl.Store) (int, error) {
	n, after := 0, ""
	for {
		keys, err := src.ListDataKeys(ctx, after, copyPage)
		if err != nil || len(keys) == 0 {
			return n, err
		}
		if err := dst.ImportDataKeys(ctx, keys); err != nil {
			return n, fmt.Errorf("copy: %w", err)
		}
		n += len(keys)
		after = keys[len(keys)-1].ID
	}
}

// copySnapshots imports every snapshot of the source.
func copySnapshots(ctx context.Context, src, dst storeurl.Store) (int, error) {
	n, after := 0, ""
	for {
		snaps, err := src.ListSnapshots(ctx, after, copyPage)
		if err != nil || len(snaps) == 0 {
			return n, err
		}
		if err := dst.ImportSnapshots(ctx, snaps); err != nil {
			return n, fmt.Errorf("copy: %w", err)
		}
		n += len(snaps)
		after = snaps[len(snaps)-1].StreamID
	}
}

// checkCopy compares the counts of events, data keys and snapshots, and
// the last events.
func checkCopy(ctx context.Context, src, dst storeurl.Store, total int64) error {
	n, err := dst.CountEvents(ctx)
	if err != nil {
		return err
	}
	if n != total {
		return fmt.Errorf("copy: check: the target holds %d events, the source %d", n, total)
	}
	if total > 0 {
		se, err := src.EventAt(ctx, total)
		if err != nil {
			return err
		}
		te, err := dst.EventAt(ctx, total)
		if err != nil {
			return err
		}
		if why := storedDiff(se, te); why != "" {
			return fmt.Errorf("copy: check: the last events differ in %s", why)
		}
	}
	for _, what := range []string{"data keys", "snapshots"} {
		count := func(s storeurl.Store) (int, error) {
			if what == "data keys" {
				return countPages(func(after string) ([]string, error) {
					keys, err := s.ListDataKeys(ctx, after, copyPage)
					ids := make([]string, len(keys))
					for i, k := range keys {
						ids[i] = k.ID
					}
					return ids, err
				})
			}
			return countPages(func(after string) ([]string, error) {
				snaps, err := s.ListSnapshots(ctx, after, copyPage)
				ids := make([]string, len(snaps))
				for i, s := range snaps {
					ids[i] = s.StreamID
				}
				return ids, err
			})
		}
		sn, err := count(src)
		if err != nil {
			return err
		}
		dn, err := count(dst)
		if err != nil {
			return err
		}
		if sn != dn {
			return fmt.Errorf("copy: check: the target holds %d %s, the source %d", dn, what, sn)
		}
	}
	return nil
}

func countPages(page func(after string) ([]string, error)) (int, error) {
	n, after := 0, ""
	for {
		ids, err := page(after)
		if err != nil || len(ids) == 0 {
			return n, err
		}
		n += len(ids)
		after = ids[len(ids)-1]
	}
}

// verifyCopy runs verify on the target: its read models, if any, against
// a replay of the copied log.
func verifyCopy(ctx context.Context, dst storeurl.Store) error {
	runner, err := projection.New(dst, projection.Options{Upcaster: order.NewRegistry(), Watch: []string{relay.Name}}, orderview.Projections()...)
	if err != nil {
		return err
	}
	if err := runner.Setup(ctx); err != nil {
		return err
	}
	diffs, err := runner.Verify(ctx)
	if err != nil {
		return fmt.Errorf("copy: verify the target: %w", err)
	}
	if len(diffs) > 0 {
		var b strings.Builder
		for _, d := range diffs {
			b.WriteString("\n" + d.String())
		}
		return fmt.Errorf("copy: verify the target: %d difference(s):%s", len(diffs), b.String())
	}
	return nil
}

// targetKeyFile returns the master key file to write beside a SQLite
// target's database, so that it opens with its default key: "" when it
// holds the source's key already. One holding another key is refused.
func targetKeyFile(loc storeurl.Location, master []byte) (string, error) {
	path := filepath.Join(filepath.Dir(loc.Path), "master.key")
	have, err := personal.ReadMasterKey(path)
	switch {
	case err == nil && bytes.Equal(have, master):
		return "", nil
	case err == nil:
		return "", fmt.Errorf("%w: %s holds another master key than the source's", errRefused, path)
	case errors.Is(err, os.ErrNotExist):
		return path, nil
	}
	return "", err
}
