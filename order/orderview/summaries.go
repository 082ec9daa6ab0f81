package orderview

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/projection"
)

// SummariesName is the name of the order summaries projection and table.
const SummariesName = "order_summaries"

// summaryCols are order_summaries' columns, in the order of summaryArgs.
var summaryCols = []string{
	"order_id", "customer_id", "status", "currency", "items", "total", "paid_amount", "payment_method",
	"carrier", "tracking", "shipping_address", "cancel_reason", "signed_by", "created_at", "updated_at", "version",
}

var summaryJSON = map[string]bool{"items": true, "shipping_address": true}

// summaryUpsert is the tail that turns the INSERT of a stored order into
// an update. It leaves out the columns only OrderCreated sets (the key,
// customer_id, currency, created_at): a stored row already holds their
// final values, and SQLite then leaves the indexes by created_at and by
// customer untouched instead of rewriting their entries on every update.
var summaryUpsert = func() string {
	var set []string
	for _, c := range summaryCols {
		switch c {
		case "order_id", "customer_id", "currency", "created_at":
			continue
		}
		set = append(set, c+" = excluded."+c)
	}
	return ` ON CONFLICT (order_id) DO UPDATE SET ` + strings.Join(set, ", ")
}()

// Summaries is the order_summaries projection.
type Summaries struct{}

var _ projection.Projection = Summaries{}

// Name returns "order_summaries".
func (Summaries) Name() string { return SummariesName }

// Tables returns its one table.
func (Summaries) Tables() []string { return []string{SummariesName} }

// Filter reads order streams only.
func (Summaries) Filter() chronicle.ReadAllOptions {
	return chronicle.ReadAllOptions{StreamTypes: []string{order.StreamType}}
}

var (
	_ projection.Indexer = Summaries{}
	_ projection.Builder = Summaries{}
)

// Create creates the table and its listing indexes (newest first, with
// order_id as the tie-break that makes the cursor exact).
func (p Summaries) Create(ctx context.Context, tx *sql.Tx, d projection.Dialect, t projection.Tables) error {
	if err := p.CreateTables(ctx, tx, d, t); err != nil {
		return err
	}
	return p.CreateIndexes(ctx, tx, d, t)
}

// CreateTables creates the table with its primary key only.
func (Summaries) CreateTables(ctx context.Context, tx *sql.Tx, d projection.Dialect, t projection.Tables) error {
	n := t.Of(SummariesName)
	_, err := tx.ExecContext(ctx, `CREATE TABLE `+n+` (
	order_id TEXT PRIMARY KEY,
	customer_id TEXT NOT NULL,
	status TEXT NOT NULL,
	currency TEXT NOT NULL,
	items TEXT NOT NULL,
	total BIGINT NOT NULL,
	paid_amount BIGINT NOT NULL,
	payment_method TEXT NOT NULL,
	carrier TEXT NOT NULL,
	tracking TEXT NOT NULL,
	shipping_address TEXT,
	cancel_reason TEXT NOT NULL,
	signed_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	version BIGINT NOT NULL
)`)
	return err
}

// CreateIndexes creates the listing indexes.
func (Summaries) CreateIndexes(ctx context.Context, tx *sql.Tx, d projection.Dialect, t projection.Tables) error {
	n := t.Of(SummariesName)
	for _, s := range []string{
		`CREATE INDEX ` + n + `_by_created ON ` + n + ` (created_at DESC, order_id DESC)`,
		`CREATE INDEX ` + n + `_by_status ON ` + n + ` (status, created_at DESC, order_id DESC)`,
		`CREATE INDEX ` + n + `_by_customer ON ` + n + ` (customer_id, created_at DESC, order_id DESC)`,
	} {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// summaryArgs is the one mapping from a State to column values, used by
// the SQL writes and by the replay Verify compares with.
func summaryArgs(s order.State) []any {
	items := s.Items
	if items == nil {
		items = []order.Item{}
	}
	ib, _ := json.Marshal(items) // plain structs: cannot fail
	var addr any
	if s.ShippingAddress != nil {
		ab, _ := json.Marshal(s.ShippingAddress)
		addr = string(ab)
	}
	return []any{
		s.OrderID, s.CustomerID, string(s.Status), s.Currency, string(ib), s.Total, s.PaidAmount, s.PaymentMethod,
		s.Carrier, s.Tracking, addr, s.CancelReason, s.SignedBy, s.CreatedAt.UnixNano(), s.UpdatedAt.UnixNano(), s.Version,
	}
}

// scanSummary reads a row of summaryCols into a State.
func scanSummary(sc interface{ Scan(...any) error }) (order.State, error) {
	var (
		s                order.State
		status, items    string
		addr             sql.NullString
		created, updated int64
	)
	if err := sc.Scan(&s.OrderID, &s.CustomerID, &status, &s.Currency, &items, &s.Total, &s.PaidAmount,
		&s.PaymentMethod, &s.Carrier, &s.Tracking, &addr, &s.CancelReason, &s.SignedBy, &created, &updated, &s.Version); err != nil {
		return s, err
	}
	s.Status = order.Status(status)
	if err := json.Unmarshal([]byte(items), &s.Items); err != nil {
		return s, fmt.Errorf("order %s: items: %w", s.OrderID, err)
	}
	if addr.Valid {
		s.ShippingAddress = new(order.Address)
		if err := json.Unmarshal([]byte(addr.String), s.ShippingAddress); err != nil {
			return s, fmt.Errorf("order %s: shipping_address: %w", s.OrderID, err)
		}
	}
	s.CreatedAt, s.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return s, nil
}

// Apply folds the batch with order.Evolve over the stored states of the
// orders it touches and writes each touched order once: one read and one
// write per chunk of orders. Evolve refuses an event that is not the next
// version, and a new order's row is a plain INSERT, so an event applied
// twice fails loudly rather than counting twice.
func (Summaries) Apply(ctx context.Context, tx *projection.Tx, d projection.Dialect, t projection.Tables, events []chronicle.RecordedEvent) error {
	f := newSummaryFold(d, t, 0)
	if err := f.Add(ctx, tx, events); err != nil {
		return err
	}
	return f.Flush(true)(ctx, tx)
}

// NewBuild returns the fold a rebuild uses: Apply's, keeping states in
// memory across batches so that an order is read never and written about
// once per flush.
func (Summaries) NewBuild(d projection.Dialect, t projection.Tables) projection.Build {
	return newSummaryFold(d, t, buildCache)
}

// buildCache bounds the clean states a rebuild keeps after a flush (about
// a kilobyte each); past it they are dropped and read back when needed.
const buildCache = 100_000

// summaryFold folds events into order states in memory and writes the
// changed ones on Flush.
type summaryFold struct {
	d      projection.Dialect
	table  string
	keep   int // clean states kept after a flush
	states map[string]*summaryEntry
	dirty  []*summaryEntry // changed since the last flush, in first-change order
}

type summaryEntry struct {
	s      order.State
	stored bool // the table has a row for this order
	dirty  bool
}

func newSummaryFold(d projection.Dialect, t projection.Tables, keep int) *summaryFold {
	return &summaryFold{d: d, table: t.Of(SummariesName), keep: keep, states: map[string]*summaryEntry{}}
}

// Add folds events; it reads the stored states of the orders it does not
// hold, except those created by the batch (version 1 comes first).
func (f *summaryFold) Add(ctx context.Context, q projection.Querier, events []chronicle.RecordedEvent) error {
	var load []string
	for _, e := range events {
		id, ok := order.IDFromStream(e.StreamID)
		if !ok {
			return fmt.Errorf("orderview: stream %q is not an order stream", e.StreamID)
		}
		if _, ok := f.states[id]; ok {
			continue
		}
		f.states[id] = &summaryEntry{}
		if e.Version != 1 {
			load = append(load, id)
		}
	}
	if len(load) > 0 {
		if err := loadSummaries(ctx, q, f.d, f.table, load, f.states); err != nil {
			return err
		}
	}
	for _, e := range events {
		id, _ := order.IDFromStream(e.StreamID)
		en := f.states[id]
		s, err := order.Evolve(en.s, e)
		if err != nil {
			return err
		}
		en.s = s
		if !en.dirty {
			en.dirty = true
			f.dirty = append(f.dirty, en)
		}
	}
	return nil
}

// Pending returns the number of orders changed since the last flush.
func (f *summaryFold) Pending() int { return len(f.dirty) }

// Flush takes the changed orders, to be written with INSERT (COPY when
// the transaction can) for new rows and upsert for stored ones. Every
// changed order is taken, final or not.
func (f *summaryFold) Flush(final bool) func(ctx context.Context, tx *projection.Tx) error {
	var fresh, stored []order.State
	for _, en := range f.dirty {
		if en.stored {
			stored = append(stored, en.s)
		} else {
			fresh = append(fresh, en.s)
		}
		en.stored, en.dirty = true, false
	}
	f.dirty = f.dirty[:0]
	if len(f.states) > f.keep {
		clear(f.states)
	}
	return func(ctx context.Context, tx *projection.Tx) error {
		// In key order, the primary key index takes the rows in runs
		// rather than at random places.
		byID := func(a, b order.State) int { return strings.Compare(a.OrderID, b.OrderID) }
		slices.SortFunc(fresh, byID)
		slices.SortFunc(stored, byID)
		if len(fresh) > 0 && tx.CanCopy() {
			rows := make([][]any, len(fresh))
			for i, s := range fresh {
				rows[i] = summaryArgs(s)
			}
			if err := tx.CopyFrom(ctx, f.table, summaryCols, rows); err != nil {
				return fmt.Errorf("orderview: write summaries: %w", err)
			}
			fresh = nil
		}
		if err := writeSummaries(ctx, tx, f.d, f.table, fresh, false); err != nil {
			return err
		}
		return writeSummaries(ctx, tx, f.d, f.table, stored, true)
	}
}

const chunk = 200 // rows per statement: 16 columns stay far below both dialects' parameter limits

// loadSummaries reads the stored states of ids into out (entries already
// there); it leaves the entries of orders without a row untouched.
func loadSummaries(ctx context.Context, q projection.Querier, d projection.Dialect, table string, ids []string, out map[string]*summaryEntry) error {
	put := func(rows *sql.Rows) error {
		for rows.Next() {
			s, err := scanSummary(rows)
			if err != nil {
				return err
			}
			if en := out[s.OrderID]; en != nil {
				en.s, en.stored = s, true
			}
		}
		return rows.Err()
	}
	if d == projection.Postgres {
		// One statement text whatever the batch: prepared once per
		// connection, where a list of placeholders would be re-planned.
		rows, err := q.QueryContext(ctx, `SELECT `+strings.Join(summaryCols, ", ")+` FROM `+table+` WHERE order_id = ANY($1)`, ids)
		if err != nil {
			return fmt.Errorf("orderview: load summaries: %w", err)
		}
		defer rows.Close()
		if err := put(rows); err != nil {
			return fmt.Errorf("orderview: load summaries: %w", err)
		}
		return nil
	}
	for start := 0; start < len(ids); {
		part := ids[start : start+piece(len(ids)-start, chunk*4)]
		start += len(part)
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		q2 := `SELECT ` + strings.Join(summaryCols, ", ") + ` FROM ` + table + ` WHERE order_id IN (` + sqliteParams(len(part)) + `)`
		rows, err := q.QueryContext(ctx, q2, args...)
		if err != nil {
			return fmt.Errorf("orderview: load summaries: %w", err)
		}
		err = put(rows)
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("orderview: load summaries: %w", err)
		}
	}
	return nil
}

// writeSummaries inserts states (upsert: or replaces their rows).
func writeSummaries(ctx context.Context, tx *projection.Tx, d projection.Dialect, table string, states []order.State, upsert bool) error {
	if len(states) == 0 {
		return nil
	}
	var tail string
	if upsert {
		tail = summaryUpsert
	}
	if d == projection.Postgres {
		cols := columns(len(summaryCols), len(states))
		for _, s := range states {
			for i, v := range summaryArgs(s) {
				cols[i] = append(cols[i], v)
			}
		}
		q := `INSERT INTO ` + table + ` (` + strings.Join(summaryCols, ", ") + `) SELECT * FROM unnest(` +
			`$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], ` +
			`$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[], $16::bigint[])` + tail
		if _, err := tx.ExecContext(ctx, q, arrays(cols)...); err != nil {
			return fmt.Errorf("orderview: write summaries: %w", err)
		}
		return nil
	}
	return insertRows(ctx, tx, `INSERT INTO `+table+` (`+strings.Join(summaryCols, ", ")+`) VALUES `, tail,
		len(summaryCols), len(states), func(i int, args []any) []any { return append(args, summaryArgs(states[i])...) })
}

// NewReplay returns the in-memory fold: order.Evolve per order.
func (Summaries) NewReplay() projection.Replay {
	return &summaryReplay{states: map[string]order.State{}}
}

type summaryReplay struct{ states map[string]order.State }

func (r *summaryReplay) Apply(e chronicle.RecordedEvent) error {
	id, ok := order.IDFromStream(e.StreamID)
	if !ok {
		return fmt.Errorf("orderview: stream %q is not an order stream", e.StreamID)
	}
	s, err := order.Evolve(r.states[id], e)
	if err != nil {
		return err
	}
	r.states[id] = s
	return nil
}

func (r *summaryReplay) Rows() projection.Rows {
	rows := projection.Rows{SummariesName: {}}
	for id, s := range r.states {
		rows.Put(SummariesName, id, rowOf(summaryCols, summaryArgs(s), summaryJSON))
	}
	return rows
}

// Load reads every stored row as text, for Verify.
func (Summaries) Load(ctx context.Context, q projection.Querier, d projection.Dialect, t projection.Tables) (projection.Rows, error) {
	return loadAll(ctx, q, t.Of(SummariesName), SummariesName, summaryCols, summaryJSON, func(r projection.Row) string { return r["order_id"] })
}

// loadAll reads a whole table, every column as text (NULL as
// projection.Null), keyed by key.
func loadAll(ctx context.Context, q projection.Querier, table, logical string, cols []string, jsonCols map[string]bool, key func(projection.Row) string) (projection.Rows, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := projection.Rows{logical: {}}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		args := make([]any, len(cols))
		for i, v := range vals {
			if v.Valid {
				args[i] = v.String
			}
		}
		r := rowOf(cols, args, jsonCols)
		out.Put(logical, key(r), r)
	}
	return out, rows.Err()
}

// columns returns n empty column slices with room for rows values each.
func columns(n, rows int) [][]any {
	c := make([][]any, n)
	for i := range c {
		c[i] = make([]any, 0, rows)
	}
	return c
}

// arrays turns columns of values into typed slices that pgx sends as
// arrays; nil values become NULL elements.
func arrays(cols [][]any) []any {
	out := make([]any, len(cols))
	for i, col := range cols {
		var kind any
		for _, v := range col {
			if v != nil {
				kind = v
				break
			}
		}
		switch kind.(type) {
		case int64:
			a := make([]*int64, len(col))
			for j, v := range col {
				if x, ok := v.(int64); ok {
					a[j] = &x
				}
			}
			out[i] = a
		default:
			a := make([]*string, len(col))
			for j, v := range col {
				if x, ok := v.(string); ok {
					a[j] = &x
				}
			}
			out[i] = a
		}
	}
	return out
}
