package orderview

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/chronicle-es/chronicle/projection"
)

// canon returns the canonical text of a column value as Verify compares it:
// the same function serves replayed values (Go values) and stored ones
// (scanned as text), so only real differences show.
func canon(v any, isJSON bool) string {
	switch v := v.(type) {
	case nil:
		return projection.Null
	case string:
		if isJSON {
			return canonJSON(v)
		}
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	default:
		return fmt.Sprint(v)
	}
}

// canonJSON re-encodes JSON with sorted keys and no spaces, so that
// equivalent documents compare equal; invalid JSON is returned as is.
func canonJSON(s string) string {
	var v any
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return s
	}
	return string(b)
}

// rowOf pairs column names with values.
func rowOf(cols []string, vals []any, jsonCols map[string]bool) projection.Row {
	r := make(projection.Row, len(cols))
	for i, c := range cols {
		r[c] = canon(vals[i], jsonCols[c])
	}
	return r
}

// insertRows writes n rows of width values with SQLite multi-row
// statements: head, up to chunk "(?, ...)" groups (see piece), tail. The
// statement of a full chunk is prepared once per call, and the
// placeholders are plain "?": SQLite resolves numbered ones through a list
// search per use.
func insertRows(ctx context.Context, tx *projection.Tx, head, tail string, width, n int, row func(i int, args []any) []any) error {
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, min(n, chunk)*width)
	for start := 0; start < n; {
		k := piece(n-start, chunk)
		args = args[:0]
		for i := start; i < start+k; i++ {
			args = row(i, args)
		}
		var err error
		switch {
		case k < chunk:
			_, err = tx.ExecContext(ctx, head+valuesList(width, k)+tail, args...)
		case full == nil:
			if full, err = tx.PrepareContext(ctx, head+valuesList(width, k)+tail); err == nil {
				_, err = full.ExecContext(ctx, args...)
			}
		default:
			_, err = full.ExecContext(ctx, args...)
		}
		if err != nil {
			return err
		}
		start += k
	}
	return nil
}

// piece returns how many of n rows the next statement takes: most while n
// allows, else the largest power of two not above n. The statement texts
// then have few shapes, which the runner's live transactions prepare once
// (projection.Tx) instead of parsing a new text per batch size.
func piece(n, most int) int {
	if n >= most {
		return most
	}
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}

// valuesList returns n groups of width "?" placeholders.
func valuesList(width, n int) string {
	group := "(" + strings.Repeat("?,", width-1) + "?)"
	var b strings.Builder
	b.Grow(n * (len(group) + 1))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(group)
	}
	return b.String()
}

// sqliteParams returns n comma-separated "?".
func sqliteParams(n int) string {
	return strings.Repeat("?,", n-1) + "?"
}
