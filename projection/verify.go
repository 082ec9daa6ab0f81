package projection

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"

	"github.com/chronicle-es/chronicle"
)

// Difference is one place where a stored read model differs from a fresh
// replay of the log. Column is empty when the whole row is missing on one
// side; that side's value is then Missing.
type Difference struct {
	Projection string `json:"projection"`
	Table      string `json:"table"`
	Key        string `json:"key"`
	Column     string `json:"column,omitempty"`
	Stored     string `json:"stored"`
	Replayed   string `json:"replayed"`
}

// Missing stands for a row absent on one side of a Difference.
const Missing = "<missing>"

func (d Difference) String() string {
	if d.Column == "" {
		return fmt.Sprintf("%s: %s[%s]: stored %s, replayed %s", d.Projection, d.Table, d.Key, d.Stored, d.Replayed)
	}
	return fmt.Sprintf("%s: %s[%s].%s: stored %q, replayed %q", d.Projection, d.Table, d.Key, d.Column, d.Stored, d.Replayed)
}

// Verify replays the log in memory through every projection, up to the
// checkpoint each has committed (skipping the events recorded as skipped),
// and compares the result with the stored rows, read in the same
// transaction as that checkpoint. It returns the differences, none when
// every read model is right. Cancelling ctx abandons it.
func (r *Runner) Verify(ctx context.Context) ([]Difference, error) {
	if err := r.Setup(ctx); err != nil {
		return nil, err
	}
	var diffs []Difference
	for _, w := range r.workers {
		d, err := r.verify(ctx, w)
		if err != nil {
			return nil, err
		}
		diffs = append(diffs, d...)
	}
	return diffs, nil
}

func (r *Runner) verify(ctx context.Context, w *worker) ([]Difference, error) {
	// One snapshot for checkpoint and rows, read without stopping writers:
	// PostgreSQL needs REPEATABLE READ for that; on SQLite a read-only
	// transaction is a snapshot and, unlike SQLDB's others, takes no write
	// lock.
	opts := &sql.TxOptions{ReadOnly: true}
	if r.d == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := r.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("projection %s: verify: %w", w.name, err)
	}
	defer tx.Rollback()
	row, err := r.readCheckpoint(ctx, tx, w.name)
	if err != nil {
		return nil, err
	}
	skip, err := r.skippedSet(ctx, tx, w.name)
	if err != nil {
		return nil, err
	}
	stored, err := w.p.Load(ctx, tx, r.d, Tables{})
	if err != nil {
		return nil, fmt.Errorf("projection %s: verify: load: %w", w.name, err)
	}
	tx.Rollback()

	rep := w.p.NewReplay()
	var from chronicle.Checkpoint
	ropts := w.filter
	ropts.Limit = r.opts.BatchSize
	for from.Before(row.cp) {
		events, err := r.store.ReadAll(ctx, from, ropts)
		if err != nil {
			return nil, fmt.Errorf("projection %s: verify: %w", w.name, err)
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			if row.cp.Before(e.Checkpoint()) {
				break
			}
			from = e.Checkpoint()
			if skip[from] {
				continue
			}
			u, err := r.opts.Upcaster.Upcast(e)
			if err != nil {
				return nil, fmt.Errorf("projection %s: verify: upcast %s v%d: %w", w.name, e.StreamID, e.Version, err)
			}
			if err := rep.Apply(u); err != nil {
				return nil, fmt.Errorf("projection %s: verify: replay %s v%d: %w", w.name, e.StreamID, e.Version, err)
			}
		}
		if row.cp.Before(events[len(events)-1].Checkpoint()) {
			break
		}
	}
	return Compare(w.name, stored, rep.Rows()), nil
}

// Compare lists the differences between stored and replayed rows, sorted
// by table, key and column.
func Compare(projection string, stored, replayed Rows) []Difference {
	var out []Difference
	tables := map[string]bool{}
	for t := range stored {
		tables[t] = true
	}
	for t := range replayed {
		tables[t] = true
	}
	for _, t := range slices.Sorted(maps.Keys(tables)) {
		s, p := stored[t], replayed[t]
		keys := map[string]bool{}
		for k := range s {
			keys[k] = true
		}
		for k := range p {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			sr, sok := s[k]
			pr, pok := p[k]
			switch {
			case !sok:
				out = append(out, Difference{Projection: projection, Table: t, Key: k, Stored: Missing, Replayed: "present"})
				continue
			case !pok:
				out = append(out, Difference{Projection: projection, Table: t, Key: k, Stored: "present", Replayed: Missing})
				continue
			}
			cols := map[string]bool{}
			for c := range sr {
				cols[c] = true
			}
			for c := range pr {
				cols[c] = true
			}
			for _, c := range slices.Sorted(maps.Keys(cols)) {
				sv, ok1 := sr[c]
				pv, ok2 := pr[c]
				if !ok1 {
					sv = Missing
				}
				if !ok2 {
					pv = Missing
				}
				if sv != pv {
					out = append(out, Difference{Projection: projection, Table: t, Key: k, Column: c, Stored: sv, Replayed: pv})
				}
			}
		}
	}
	return out
}
