package orderview

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/projection"
)

// HistoryName is the name of the status history projection and table.
const HistoryName = "order_status_history"

var historyCols = []string{"order_id", "version", "status", "valid_from", "valid_to"}

// StatusHistory is the order_status_history projection: the intervals
// during which each order had each status.
type StatusHistory struct{}

var _ projection.Projection = StatusHistory{}

// Name returns "order_status_history".
func (StatusHistory) Name() string { return HistoryName }

// Tables returns its one table.
func (StatusHistory) Tables() []string { return []string{HistoryName} }

// Filter reads order streams only.
func (StatusHistory) Filter() chronicle.ReadAllOptions {
	return chronicle.ReadAllOptions{StreamTypes: []string{order.StreamType}}
}

var (
	_ projection.Indexer = StatusHistory{}
	_ projection.Builder = StatusHistory{}
)

// Create creates the table and its index.
func (p StatusHistory) Create(ctx context.Context, tx *sql.Tx, d projection.Dialect, t projection.Tables) error {
	if err := p.CreateTables(ctx, tx, d, t); err != nil {
		return err
	}
	return p.CreateIndexes(ctx, tx, d, t)
}

// CreateTables creates the table. An interval is keyed by the stream
// version of the event that began it.
func (StatusHistory) CreateTables(ctx context.Context, tx *sql.Tx, d projection.Dialect, t projection.Tables) error {
	_, err := tx.ExecContext(ctx, `CREATE TABLE `+t.Of(HistoryName)+` (
	order_id TEXT NOT NULL,
	version BIGINT NOT NULL,
	status TEXT NOT NULL,
	valid_from BIGINT NOT NULL,
	valid_to BIGINT,
	PRIMARY KEY (order_id, version)
)`)
	return err
}

// CreateIndexes creates the index on (valid_from, valid_to, status), which
// covers the count-at-T query, so that it is answered from the index alone.
func (StatusHistory) CreateIndexes(ctx context.Context, tx *sql.Tx, d projection.Dialect, t projection.Tables) error {
	n := t.Of(HistoryName)
	_, err := tx.ExecContext(ctx, `CREATE INDEX `+n+`_at ON `+n+` (valid_from, valid_to, status)`)
	return err
}

// interval is one row of order_status_history.
type interval struct {
	orderID  string
	version  int64
	status   order.Status
	from, to int64 // unix ns; to == 0: current
}

func (iv interval) args() []any {
	var to any
	if iv.to != 0 {
		to = iv.to
	}
	return []any{iv.orderID, iv.version, string(iv.status), iv.from, to}
}

// StatusAfter returns the status an order has after event ev, and false
// when ev does not change the status. It is the one rule both the SQL
// projection and its replay use; it agrees with order.Evolve.
func StatusAfter(ev order.Event) (order.Status, bool) {
	switch ev.(type) {
	case order.OrderCreated:
		return order.StatusCreated, true
	case order.PaymentReceived:
		return order.StatusPaid, true
	case order.OrderShipped:
		return order.StatusShipped, true
	case order.OrderDelivered:
		return order.StatusDelivered, true
	case order.OrderCancelled:
		return order.StatusCancelled, true
	}
	return "", false
}

// statusOf is StatusAfter by event type, for the order event types known
// here: the status the type leads to, "" for none. The status depends on the
// type alone, so intervals need no decoding of the payload.
var statusOf = func() map[string]order.Status {
	m := map[string]order.Status{}
	for _, ev := range []order.Event{order.OrderCreated{}, order.ItemAdded{}, order.ItemRemoved{},
		order.ShippingAddressChanged{}, order.PaymentReceived{}, order.OrderShipped{},
		order.OrderDelivered{}, order.OrderCancelled{}} {
		st, _ := StatusAfter(ev)
		m[ev.EventType()] = st
	}
	return m
}()

// opens returns the interval e opens, if e changes the status. It checks
// what Decode checks but the payload, which intervals do not read: a type
// not listed in statusOf or at another schema version goes through Decode
// and fails (or follows StatusAfter) exactly as before.
func opens(e chronicle.RecordedEvent) (interval, bool, error) {
	id, ok := order.IDFromStream(e.StreamID)
	if !ok {
		return interval{}, false, fmt.Errorf("orderview: stream %q is not an order stream", e.StreamID)
	}
	st, known := statusOf[e.Type]
	if v, _ := order.SchemaVersion(e.Type); !known || e.SchemaVersion != v {
		ev, err := order.Decode(e)
		if err != nil {
			return interval{}, false, err
		}
		st, _ = StatusAfter(ev)
	}
	if st == "" {
		return interval{}, false, nil
	}
	return interval{orderID: id, version: e.Version, status: st, from: e.RecordedAt.UnixNano()}, true, nil
}

// Apply closes each touched order's current interval at its first status
// change of the batch and inserts the batch's intervals (all but the last
// of each order already closed): two statements per chunk.
func (StatusHistory) Apply(ctx context.Context, tx *projection.Tx, d projection.Dialect, t projection.Tables, events []chronicle.RecordedEvent) error {
	f := newHistoryFold(d, t, 0)
	if err := f.Add(ctx, tx, events); err != nil {
		return err
	}
	return f.Flush(true)(ctx, tx)
}

// NewBuild returns the fold a rebuild uses: Apply's, holding each order's
// open interval in memory across batches, so that an interval is usually
// written once, already closed, and never updated.
func (StatusHistory) NewBuild(d projection.Dialect, t projection.Tables) projection.Build {
	return newHistoryFold(d, t, buildCache)
}

// historyFold turns events into intervals in memory and writes them on
// Flush.
type historyFold struct {
	d     projection.Dialect
	table string
	keep  int                  // open intervals a non-final flush may hold back
	open  map[string]*interval // each order's latest interval, not written yet
	ready []interval           // closed intervals, not written yet
	// Stored open intervals to close, at their order's first status change
	// since the last flush.
	closeIDs []string
	closeAt  []int64
}

func newHistoryFold(d projection.Dialect, t projection.Tables, keep int) *historyFold {
	return &historyFold{d: d, table: t.Of(HistoryName), keep: keep, open: map[string]*interval{}}
}

// Add folds events. It reads nothing: an order's earlier interval is either
// held here or closed by the next Flush.
func (f *historyFold) Add(_ context.Context, _ projection.Querier, events []chronicle.RecordedEvent) error {
	for _, e := range events {
		iv, ok, err := opens(e)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if cur := f.open[iv.orderID]; cur != nil {
			cur.to = iv.from
			f.ready = append(f.ready, *cur)
			*cur = iv
			continue
		}
		// Not held: the order's current interval, if it has one, is
		// stored. A first event has none before it.
		if e.Version != 1 {
			f.closeIDs = append(f.closeIDs, iv.orderID)
			f.closeAt = append(f.closeAt, iv.from)
		}
		f.open[iv.orderID] = &iv
	}
	return nil
}

// Pending returns the number of rows the next Flush writes at least.
func (f *historyFold) Pending() int { return len(f.ready) + len(f.closeIDs) }

// Flush takes the closes of stored intervals, the closed intervals and,
// when final or when too many are held, the open ones. The write closes
// first, then inserts (with COPY when the transaction can).
func (f *historyFold) Flush(final bool) func(ctx context.Context, tx *projection.Tx) error {
	ivs, ids, at := f.ready, f.closeIDs, f.closeAt
	f.ready, f.closeIDs, f.closeAt = nil, nil, nil
	if final || len(f.open) > f.keep {
		for _, iv := range f.open {
			ivs = append(ivs, *iv)
		}
		clear(f.open)
	}
	return func(ctx context.Context, tx *projection.Tx) error {
		// Closes first: they must not reach the intervals inserted below.
		if err := closeIntervals(ctx, tx, f.d, f.table, ids, at); err != nil {
			return err
		}
		// In key order, the primary key index takes the rows in runs
		// rather than at random places.
		slices.SortFunc(ivs, func(a, b interval) int {
			return cmp.Or(strings.Compare(a.orderID, b.orderID), cmp.Compare(a.version, b.version))
		})
		if len(ivs) > 0 && tx.CanCopy() {
			rows := make([][]any, len(ivs))
			for i, iv := range ivs {
				rows[i] = iv.args()
			}
			if err := tx.CopyFrom(ctx, f.table, historyCols, rows); err != nil {
				return fmt.Errorf("orderview: insert status intervals: %w", err)
			}
			return nil
		}
		return insertIntervals(ctx, tx, f.d, f.table, ivs)
	}
}

// closeIntervals ends the open interval of each order in ids at the
// matching time in at.
func closeIntervals(ctx context.Context, tx *projection.Tx, d projection.Dialect, table string, ids []string, at []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if d == projection.Postgres {
		// A fixed statement text over arrays: prepared once per connection.
		if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET valid_to = v.t FROM unnest($1::text[], $2::bigint[]) AS v(id, t)
		WHERE `+table+`.order_id = v.id AND `+table+`.valid_to IS NULL`, ids, at); err != nil {
			return fmt.Errorf("orderview: close status intervals: %w", err)
		}
		return nil
	}
	for start := 0; start < len(ids); {
		end := start + piece(len(ids)-start, chunk)
		var b strings.Builder
		b.WriteString(`WITH v(id, t) AS (VALUES `)
		args := make([]any, 0, 2*(end-start))
		for i := start; i < end; i++ {
			if i > start {
				b.WriteByte(',')
			}
			b.WriteString(`(?, CAST(? AS BIGINT))`)
			args = append(args, ids[i], at[i])
		}
		b.WriteString(`) UPDATE ` + table + ` SET valid_to = v.t FROM v WHERE ` + table + `.order_id = v.id AND ` + table + `.valid_to IS NULL`)
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("orderview: close status intervals: %w", err)
		}
		start = end
	}
	return nil
}

// insertIntervals inserts ivs.
func insertIntervals(ctx context.Context, tx *projection.Tx, d projection.Dialect, table string, ivs []interval) error {
	if len(ivs) == 0 {
		return nil
	}
	if d == projection.Postgres {
		ids, statuses := make([]string, len(ivs)), make([]string, len(ivs))
		versions, from := make([]int64, len(ivs)), make([]int64, len(ivs))
		to := make([]*int64, len(ivs))
		for i := range ivs {
			iv := &ivs[i]
			ids[i], versions[i], statuses[i], from[i] = iv.orderID, iv.version, string(iv.status), iv.from
			if iv.to != 0 {
				to[i] = &iv.to
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (`+strings.Join(historyCols, ", ")+`)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[])`, ids, versions, statuses, from, to); err != nil {
			return fmt.Errorf("orderview: insert status intervals: %w", err)
		}
		return nil
	}
	if err := insertRows(ctx, tx, `INSERT INTO `+table+` (`+strings.Join(historyCols, ", ")+`) VALUES `, "",
		len(historyCols), len(ivs), func(i int, args []any) []any { return append(args, ivs[i].args()...) }); err != nil {
		return fmt.Errorf("orderview: insert status intervals: %w", err)
	}
	return nil
}

// NewReplay returns the in-memory fold of the same intervals.
func (StatusHistory) NewReplay() projection.Replay {
	return &historyReplay{byOrder: map[string][]interval{}}
}

type historyReplay struct{ byOrder map[string][]interval }

func (r *historyReplay) Apply(e chronicle.RecordedEvent) error {
	iv, ok, err := opens(e)
	if err != nil || !ok {
		return err
	}
	h := r.byOrder[iv.orderID]
	if len(h) > 0 {
		h[len(h)-1].to = iv.from
	}
	r.byOrder[iv.orderID] = append(h, iv)
	return nil
}

func (r *historyReplay) Rows() projection.Rows {
	rows := projection.Rows{HistoryName: {}}
	for _, h := range r.byOrder {
		for _, iv := range h {
			rows.Put(HistoryName, historyKey(iv.orderID, strconv.FormatInt(iv.version, 10)), rowOf(historyCols, iv.args(), nil))
		}
	}
	return rows
}

func historyKey(orderID, version string) string { return orderID + "@v" + version }

// Load reads every stored interval as text, for Verify.
func (StatusHistory) Load(ctx context.Context, q projection.Querier, d projection.Dialect, t projection.Tables) (projection.Rows, error) {
	return loadAll(ctx, q, t.Of(HistoryName), HistoryName, historyCols, nil, func(r projection.Row) string {
		return historyKey(r["order_id"], r["version"])
	})
}
