package orderview

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

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
