package orderview

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/projection"
)

// Projections returns the order read models, for projection.New.
func Projections() []projection.Projection {
	return []projection.Projection{Summaries{}, StatusHistory{}}
}

// Errors.
var (
	// ErrNotFound: no such order in the read model. It matches
	// chronicle.ErrNotFound.
	ErrNotFound = fmt.Errorf("orderview: order %w", chronicle.ErrNotFound)
	// ErrBadCursor: the cursor was not one List returned.
	ErrBadCursor = errors.New("orderview: invalid cursor")
)

// Reader answers the queries of API.md from the read models.
type Reader struct {
	db *sql.DB
	d  projection.Dialect
}

// NewReader returns a Reader on the store's database.
func NewReader(db chronicle.SQLDatabase) *Reader {
	return &Reader{db: db.SQLDB(), d: projection.Dialect(db.Dialect())}
}

// Get returns an order's state as the read model has it; State.Version is
// the stream version it reflects. Errors: ErrNotFound.
func (r *Reader) Get(ctx context.Context, orderID string) (order.State, error) {
	row := r.db.QueryRowContext(ctx, r.d.Rebind(`SELECT `+strings.Join(summaryCols, ", ")+` FROM `+SummariesName+` WHERE order_id = $1`), orderID)
	s, err := scanSummary(row)
	if errors.Is(err, sql.ErrNoRows) {
		return order.State{}, fmt.Errorf("%w: %s", ErrNotFound, orderID)
	}
	if err != nil {
		return order.State{}, fmt.Errorf("orderview: get %s: %w", orderID, err)
	}
	return s, nil
}

// Filter selects orders to list. Empty fields do not filter.
type Filter struct {
	Status     order.Status
	CustomerID string
	// Limit is the page size: default DefaultLimit, at most MaxLimit.
	Limit int
	// Cursor continues a listing where a previous Page ended.
	Cursor string
	// MaxBytes bounds a page by the size of its orders' JSON encoding:
	// default DefaultPageBytes. A page ends before the order that would
	// exceed it (with a NextCursor), but holds at least one order.
	MaxBytes int
}

// Page sizes of List.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	// DefaultPageBytes bounds a page by the size of its orders' JSON.
	DefaultPageBytes = 1 << 20
)

// Page is one page of a listing, newest first.
type Page struct {
	Items []order.State `json:"items"`
	// NextCursor fetches the next page; empty on the last one.
	NextCursor string `json:"next_cursor"`
}

// List returns orders newest first (by created_at, then order_id), as f
// selects. Errors: ErrBadCursor.
func (r *Reader) List(ctx context.Context, f Filter) (Page, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(string(f.Status)))
	}
	if f.CustomerID != "" {
		where = append(where, "customer_id = "+arg(f.CustomerID))
	}
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		a, b, c := arg(at), arg(at), arg(id)
		where = append(where, "(created_at < "+a+" OR (created_at = "+b+" AND order_id < "+c+"))")
	}
	q := `SELECT ` + strings.Join(summaryCols, ", ") + ` FROM ` + SummariesName
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, order_id DESC LIMIT ` + arg(limit+1)
	rows, err := r.db.QueryContext(ctx, r.d.Rebind(q), args...)
	if err != nil {
		return Page{}, fmt.Errorf("orderview: list: %w", err)
	}
	defer rows.Close()
	maxBytes := f.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultPageBytes
	}
	p := Page{Items: []order.State{}}
	more, size := false, 0
	for rows.Next() {
		s, err := scanSummary(rows)
		if err != nil {
			return Page{}, fmt.Errorf("orderview: list: %w", err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			return Page{}, fmt.Errorf("orderview: list: %w", err)
		}
		// Stop reading rows at the budget: a page of large orders must not
		// cost its count limit in memory.
		if len(p.Items) == limit || len(p.Items) > 0 && size+len(b)+1 > maxBytes {
			more = true
			break
		}
		p.Items = append(p.Items, s)
		size += len(b) + 1 // and a comma
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("orderview: list: %w", err)
	}
	if more {
		last := p.Items[len(p.Items)-1]
		p.NextCursor = encodeCursor(last.CreatedAt.UnixNano(), last.OrderID)
	}
	return p, nil
}

func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + ":" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	at, id, ok := strings.Cut(string(b), ":")
	if !ok || order.ValidID("order_id", id) != nil {
		return 0, "", ErrBadCursor
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	return n, id, nil
}

// unixNano is t in unix nanoseconds, as the read models store times,
// clamped to int64 (years 1678 to 2262; UnixNano wraps outside): every
// event is recorded within that range, so a time before or after it counts
// as before or after every event.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// StatusCounts returns how many orders were in each status at time at
// (every status present, zero included), from order_status_history in one
// indexed query: the intervals with valid_from <= at < valid_to.
func (r *Reader) StatusCounts(ctx context.Context, at time.Time) (map[order.Status]int64, error) {
	rows, err := r.db.QueryContext(ctx, r.d.Rebind(`SELECT status, count(*) FROM `+HistoryName+`
	WHERE valid_from <= $1 AND (valid_to IS NULL OR valid_to > $1) GROUP BY status`), unixNano(at))
	if err != nil {
		return nil, fmt.Errorf("orderview: status counts: %w", err)
	}
	defer rows.Close()
	out := map[order.Status]int64{}
	for _, s := range order.Statuses() {
		out[s] = 0
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("orderview: status counts: %w", err)
		}
		out[order.Status(s)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("orderview: status counts: %w", err)
	}
	return out, nil
}
