package orderview

import (
	"context"
	"database/sql"
	"fmt"
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

// Create creates the table. An interval is keyed by the stream version of
// the event that began it. The index on (valid_from, valid_to, status)
// covers the count-at-T query, so it is answered from the index alone.
func (StatusHistory) Create(ctx context.Context, tx *sql.Tx, d projection.Dialect, t projection.Tables) error {
	n := t.Of(HistoryName)
	for _, s := range []string{
		`CREATE TABLE ` + n + ` (
	order_id TEXT NOT NULL,
	version BIGINT NOT NULL,
	status TEXT NOT NULL,
	valid_from BIGINT NOT NULL,
	valid_to BIGINT,
	PRIMARY KEY (order_id, version)
)`,
		`CREATE INDEX ` + n + `_at ON ` + n + ` (valid_from, valid_to, status)`,
	} {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
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

// opens returns the interval e opens, if e changes the status.
func opens(e chronicle.RecordedEvent) (interval, bool, error) {
	id, ok := order.IDFromStream(e.StreamID)
	if !ok {
		return interval{}, false, fmt.Errorf("orderview: stream %q is not an order stream", e.StreamID)
	}
	ev, err := order.Decode(e)
	if err != nil {
		return interval{}, false, err
	}
	st, ok := StatusAfter(ev)
	if !ok {
		return interval{}, false, nil
	}
	return interval{orderID: id, version: e.Version, status: st, from: e.RecordedAt.UnixNano()}, true, nil
}

// Apply closes each touched order's current interval at the first status
// change of the batch and inserts the batch's intervals (all but the last
// of each order already closed): two statements per chunk.
func (StatusHistory) Apply(ctx context.Context, tx *sql.Tx, d projection.Dialect, t projection.Tables, events []chronicle.RecordedEvent) error {
	n := t.Of(HistoryName)
	var ivs []interval
	last := map[string]int{} // order id -> index in ivs of its latest interval
	var closeIDs []string
	closeAt := map[string]int64{}
	for _, e := range events {
		iv, ok, err := opens(e)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if i, seen := last[iv.orderID]; seen {
			ivs[i].to = iv.from
		} else {
			closeIDs = append(closeIDs, iv.orderID)
			closeAt[iv.orderID] = iv.from
		}
		last[iv.orderID] = len(ivs)
		ivs = append(ivs, iv)
	}
	if d == projection.Postgres {
		// Fixed statement texts over arrays: prepared once per connection.
		at := make([]int64, len(closeIDs))
		for i, id := range closeIDs {
			at[i] = closeAt[id]
		}
		if len(closeIDs) > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE `+n+` SET valid_to = v.t FROM unnest($1::text[], $2::bigint[]) AS v(id, t)
			WHERE `+n+`.order_id = v.id AND `+n+`.valid_to IS NULL`, closeIDs, at); err != nil {
				return fmt.Errorf("orderview: close status intervals: %w", err)
			}
		}
		if len(ivs) == 0 {
			return nil
		}
		cols := columns(len(historyCols), len(ivs))
		for _, iv := range ivs {
			for i, v := range iv.args() {
				cols[i] = append(cols[i], v)
			}
		}
		a := arrays(cols)
		to := make([]*int64, len(ivs)) // all NULL when no interval is closed
		for j, v := range cols[4] {
			if x, ok := v.(int64); ok {
				to[j] = &x
			}
		}
		a[4] = to
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+n+` (`+strings.Join(historyCols, ", ")+`)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[])`, a...); err != nil {
			return fmt.Errorf("orderview: insert status intervals: %w", err)
		}
		return nil
	}
	for start := 0; start < len(closeIDs); start += chunk {
		part := closeIDs[start:min(start+chunk, len(closeIDs))]
		var b strings.Builder
		b.WriteString(`WITH v(id, t) AS (VALUES `)
		args := make([]any, 0, 2*len(part))
		for i, id := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			k := len(args)
			b.WriteString(`($` + strconv.Itoa(k+1) + `, CAST($` + strconv.Itoa(k+2) + ` AS BIGINT))`)
			args = append(args, id, closeAt[id])
		}
		b.WriteString(`) UPDATE ` + n + ` SET valid_to = v.t FROM v WHERE ` + n + `.order_id = v.id AND ` + n + `.valid_to IS NULL`)
		if _, err := tx.ExecContext(ctx, d.Rebind(b.String()), args...); err != nil {
			return fmt.Errorf("orderview: close status intervals: %w", err)
		}
	}
	for start := 0; start < len(ivs); start += chunk {
		part := ivs[start:min(start+chunk, len(ivs))]
		var b strings.Builder
		b.WriteString(`INSERT INTO ` + n + ` (` + strings.Join(historyCols, ", ") + `) VALUES `)
		args := make([]any, 0, len(part)*len(historyCols))
		for i, iv := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(projection.Placeholders(len(args)+1, len(historyCols)))
			args = append(args, iv.args()...)
		}
		if _, err := tx.ExecContext(ctx, d.Rebind(b.String()), args...); err != nil {
			return fmt.Errorf("orderview: insert status intervals: %w", err)
		}
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
