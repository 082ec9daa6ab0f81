package orderview

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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

// Create creates the table and its listing indexes (newest first, with
// order_id as the tie-break that makes the cursor exact).
func (Summaries) Create(ctx context.Context, tx *sql.Tx, d projection.Dialect, t projection.Tables) error {
	n := t.Of(SummariesName)
	stmts := []string{
		`CREATE TABLE ` + n + ` (
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
)`,
		`CREATE INDEX ` + n + `_by_created ON ` + n + ` (created_at DESC, order_id DESC)`,
		`CREATE INDEX ` + n + `_by_status ON ` + n + ` (status, created_at DESC, order_id DESC)`,
		`CREATE INDEX ` + n + `_by_customer ON ` + n + ` (customer_id, created_at DESC, order_id DESC)`,
	}
	for _, s := range stmts {
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
// orders it touches and writes them back: one read and one upsert per
// chunk of orders. Evolve refuses an event that is not the next version,
// so an event applied twice would fail loudly rather than count twice.
func (Summaries) Apply(ctx context.Context, tx *sql.Tx, d projection.Dialect, t projection.Tables, events []chronicle.RecordedEvent) error {
	n := t.Of(SummariesName)
	var ids []string
	seen := map[string]bool{}
	for _, e := range events {
		id, ok := order.IDFromStream(e.StreamID)
		if !ok {
			return fmt.Errorf("orderview: stream %q is not an order stream", e.StreamID)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	states, err := loadSummaries(ctx, tx, d, n, ids)
	if err != nil {
		return err
	}
	for _, e := range events {
		id, _ := order.IDFromStream(e.StreamID)
		s, err := order.Evolve(states[id], e)
		if err != nil {
			return err
		}
		states[id] = s
	}
	return upsertSummaries(ctx, tx, d, n, ids, states)
}

const chunk = 200 // rows per statement: 16 columns stay far below both dialects' parameter limits

func loadSummaries(ctx context.Context, tx *sql.Tx, d projection.Dialect, table string, ids []string) (map[string]order.State, error) {
	out := make(map[string]order.State, len(ids))
	if d == projection.Postgres {
		// One statement text whatever the batch: prepared once per
		// connection, where a list of placeholders would be re-planned.
		rows, err := tx.QueryContext(ctx, `SELECT `+strings.Join(summaryCols, ", ")+` FROM `+table+` WHERE order_id = ANY($1)`, ids)
		if err != nil {
			return nil, fmt.Errorf("orderview: load summaries: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			s, err := scanSummary(rows)
			if err != nil {
				return nil, fmt.Errorf("orderview: load summaries: %w", err)
			}
			out[s.OrderID] = s
		}
		return out, rows.Err()
	}
	for start := 0; start < len(ids); start += chunk * 4 {
		part := ids[start:min(start+chunk*4, len(ids))]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		q := `SELECT ` + strings.Join(summaryCols, ", ") + ` FROM ` + table + ` WHERE order_id IN ` + projection.Placeholders(1, len(part))
		rows, err := tx.QueryContext(ctx, d.Rebind(q), args...)
		if err != nil {
			return nil, fmt.Errorf("orderview: load summaries: %w", err)
		}
		for rows.Next() {
			s, err := scanSummary(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("orderview: load summaries: %w", err)
			}
			out[s.OrderID] = s
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("orderview: load summaries: %w", err)
		}
	}
	return out, nil
}

func upsertSummaries(ctx context.Context, tx *sql.Tx, d projection.Dialect, table string, ids []string, states map[string]order.State) error {
	var set []string
	for _, c := range summaryCols[1:] {
		set = append(set, c+" = excluded."+c)
	}
	tail := ` ON CONFLICT (order_id) DO UPDATE SET ` + strings.Join(set, ", ")
	if d == projection.Postgres {
		cols := columns(len(summaryCols), len(ids))
		for _, id := range ids {
			for i, v := range summaryArgs(states[id]) {
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
	head := `INSERT INTO ` + table + ` (` + strings.Join(summaryCols, ", ") + `) VALUES `
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		var b strings.Builder
		b.WriteString(head)
		args := make([]any, 0, len(part)*len(summaryCols))
		for i, id := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(projection.Placeholders(len(args)+1, len(summaryCols)))
			args = append(args, summaryArgs(states[id])...)
		}
		b.WriteString(tail)
		if _, err := tx.ExecContext(ctx, d.Rebind(b.String()), args...); err != nil {
			return fmt.Errorf("orderview: write summaries: %w", err)
		}
	}
	return nil
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
