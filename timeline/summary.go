package timeline

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/chronicle-es/chronicle/internal/freetext"
)

// kind says how a salient field is shown.
type kind int

const (
	plain kind = iota
	money      // integer minor units, shown as $X.YY
	count      // an array, shown as its length
)

type field struct {
	label, key string
	kind       kind
}

// salient lists the fields worth a glance for each order event type, in the
// order shown. Unknown types get the generic rendering.
func salient(eventType string) []field {
	switch eventType {
	case "OrderCreated":
		return []field{{"customer", "customer_id", plain}, {"items", "items", count}, {"total", "total", money}}
	case "ItemAdded":
		return []field{{"sku", "sku", plain}, {"quantity", "quantity", plain}, {"unit_price", "unit_price", money}}
	case "ItemRemoved":
		return []field{{"sku", "sku", plain}}
	case "ShippingAddressChanged":
		return []field{{"name", "name", plain}, {"city", "city", plain}, {"country", "country", plain}}
	case "PaymentReceived":
		return []field{{"method", "method", plain}, {"amount", "amount", money}}
	case "OrderShipped":
		return []field{{"carrier", "carrier", plain}, {"tracking", "tracking", plain}}
	case "OrderDelivered":
		return []field{{"signed_by", "signed_by", plain}}
	case "OrderCancelled":
		return []field{{"reason", "reason", plain}}
	}
	return nil
}

// Summary renders an event's data as the "{key: value, ...}" of a timeline
// line: the salient fields of a known order event type (money in minor units
// of currency shown as "$99.99"), or every top-level field, sorted by key,
// for other types. Data that is not a JSON object is shown compacted.
func Summary(eventType string, data json.RawMessage, currency string) string {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return compact(data)
	}
	var parts []string
	for _, f := range salient(eventType) {
		raw, ok := obj[f.key]
		if !ok || string(raw) == "null" {
			continue
		}
		var v string
		switch f.kind {
		case money:
			v = formatMoney(raw, currency)
		case count:
			var a []json.RawMessage
			if json.Unmarshal(raw, &a) != nil {
				v = value(raw)
			} else if len(a) == 0 {
				continue // an order created without items: nothing to say
			} else {
				v = strconv.Itoa(len(a))
			}
		default:
			v = value(raw)
		}
		parts = append(parts, f.label+": "+v)
	}
	if parts == nil {
		// Unknown type, or a known one whose salient fields are all absent:
		// show everything rather than an empty summary.
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			parts = append(parts, k+": "+value(obj[k]))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// value renders one JSON value: strings bare unless that would be ambiguous,
// everything else as compact JSON.
func value(raw json.RawMessage) string {
	var s string
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '"' && json.Unmarshal(t, &s) == nil {
		if needsQuotes(s) {
			return strconv.Quote(s)
		}
		return s
	}
	return compact(raw)
}

func needsQuotes(s string) bool {
	if s == "" || strings.TrimSpace(s) != s {
		return true
	}
	for _, r := range s {
		if freetext.Forbidden(r) || strings.ContainsRune(",{}\"", r) {
			return true
		}
	}
	return false
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return strconv.Quote(string(raw))
	}
	return b.String()
}

// formatMoney shows integer minor units as "$99.99" for USD and
// "99.99 EUR" for other currencies; anything else is shown as it is.
func formatMoney(raw json.RawMessage, currency string) string {
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil {
		return value(raw)
	}
	return FormatMoney(n, currency)
}

// FormatMoney shows an amount in minor units: "$99.99" for USD (or no
// currency), "99.99 EUR" otherwise.
func FormatMoney(minor int64, currency string) string {
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign, u = "-", uint64(-minor) // two's complement: right for MinInt64 too
	}
	amount := strconv.FormatUint(u/100, 10) + "." + strconv.FormatUint(u%100/10, 10) + strconv.FormatUint(u%10, 10)
	if currency == "" || currency == "USD" {
		return sign + "$" + amount
	}
	return sign + amount + " " + currency
}

// stringField returns data's top-level string field key, or "".
func stringField(data json.RawMessage, key string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return ""
	}
	var s string
	_ = json.Unmarshal(obj[key], &s)
	return s
}
