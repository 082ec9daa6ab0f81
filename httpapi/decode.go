package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/chronicle-es/chronicle"
)

// DefaultMaxBodyBytes is the request body limit when Options leaves it 0.
const DefaultMaxBodyBytes = 1 << 20

// readBody reads the whole request body, at most limit bytes (413 beyond).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, badRequest("reading the request body: %v", err)
	}
	return body, nil
}

func tooLarge(limit int64) *apiError {
	return newError(http.StatusRequestEntityTooLarge, typeTooLarge,
		"the request body is larger than the limit of "+formatBytes(limit))
}

// strictJSON is how request bodies decode: unknown members refused, names
// matched case-sensitively, and duplicate names refused (also the defaults
// of json v2, stated because the contract depends on them). encoding/json
// takes the last of duplicate names and matches names ignoring case, so a
// proxy and this server could read one request two ways.
var strictJSON = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
)

// decodeStrict decodes body, one JSON object, into v. It refuses what a
// lenient decoder would let through but the contract forbids: unknown
// fields, keys in another case, duplicate keys, trailing data, invalid
// UTF-8, and strings holding NUL or lone surrogates (checked on the raw
// bytes, since decoding replaces them silently). Every refusal is a 400
// naming the problem.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("the request body is empty; a JSON object is required")
	}
	if err := chronicle.ValidateJSON(body); err != nil {
		return badRequest("the request body is not acceptable JSON: %v", err)
	}
	if c := firstByte(body); c != '{' {
		return badRequest("the request body must be a JSON object")
	}
	if err := json.Unmarshal(body, v, strictJSON); err != nil {
		return decodeError(err)
	}
	return nil
}

func decodeError(err error) error {
	var se *json.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &syn):
		if errors.Is(syn.Err, jsontext.ErrDuplicateName) {
			return badField(fieldName(syn.JSONPointer), "duplicate key: a JSON object may name each field once")
		}
		return badRequest("malformed JSON at byte %d: %v", syn.ByteOffset, syn.Err)
	case errors.As(err, &se):
		field := fieldName(se.JSONPointer)
		if errors.Is(se.Err, json.ErrUnknownName) {
			return badField(field, "unknown field (field names are case-sensitive)")
		}
		got := jsonValueKind(se.JSONKind)
		if len(se.JSONValue) > 0 {
			got += " " + string(se.JSONValue)
		}
		want := "another type"
		if se.GoType != nil {
			want = jsonKind(se.GoType.Kind().String())
		}
		if field == "" {
			return badRequest("the request body has %s where %s is expected", got, want)
		}
		return badField(field, "expected %s, got %s", want, got)
	}
	return badRequest("malformed JSON: %v", err)
}

// fieldName turns a JSON pointer into the field names problems use:
// "/items/0/sku" is "items[0].sku".
func fieldName(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.ParseUint(tok, 10, 32); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// jsonValueKind names the kind of a JSON value.
func jsonValueKind(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "another value"
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(k string) string {
	switch k {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return k
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}

// checkQuery refuses a query that a proxy and the server could read two
// ways: a parameter given more than once (which one counts?), one the
// route does not take (a misspelt filter would be silently ignored), or a
// query that does not parse (Go drops a pair with a ';' or a bad escape,
// which another reader may keep). Each is 400.
func checkQuery(r *http.Request, known []string) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest("the query does not parse: %v", err)
	}
	for name, vs := range q {
		if !slices.Contains(known, name) {
			takes := "no parameters"
			if len(known) > 0 {
				takes = strings.Join(known, ", ")
			}
			return badField(name, "unknown parameter; %s takes %s", r.Pattern, takes)
		}
		if len(vs) > 1 {
			return badField(name, "given more than once")
		}
	}
	return nil
}

// The range of times the API and the CLI accept, in UTC: years 0001 to 9999,
// what a four-digit RFC 3339 year can write (but year 0000). The answers are
// exact over all of it: the stores hold recorded times in a narrower range
// (unix nanoseconds in the read models, 1678 to 2262), and every time
// outside that is before or after every event.
var (
	minTime = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, time.December, 31, 23, 59, 59, 999_999_999, time.UTC)
)

// ParseTime parses an RFC 3339 time (any offset, sub-second precision
// allowed) and returns it in UTC. Errors: not RFC 3339, a leap second, or
// outside years 0001 to 9999 once in UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := parseRFC3339(s)
	if err != nil {
		return time.Time{}, err
	}
	t = t.UTC()
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, fmt.Errorf("%q is outside the range %s to %s (UTC)", s, minTime.Format(time.RFC3339), maxTime.Format(time.RFC3339Nano))
	}
	return t, nil
}

// parseRFC3339 parses exactly RFC 3339's date-time (section 5.6):
// YYYY-MM-DDThh:mm:ss, an optional fraction after a dot, then Z or +hh:mm
// or -hh:mm (hh at most 23, mm at most 59), T and Z in either case. Go's
// time.Parse is looser (a comma before the fraction, offsets to +99:99) and
// stricter (no lowercase t or z), so the form is checked here and the
// value (month, day, hour, minute and second in range) is left to it.
func parseRFC3339(s string) (time.Time, error) {
	bad := fmt.Errorf("want an RFC 3339 time such as 2026-11-25T15:00:00Z, got %q", s)
	digits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return s != ""
	}
	// 2026-11-25T15:00:00 is 19 bytes; at least Z follows.
	if len(s) < 20 || !digits(s[0:4]) || s[4] != '-' || !digits(s[5:7]) || s[7] != '-' || !digits(s[8:10]) ||
		s[10] != 'T' && s[10] != 't' || !digits(s[11:13]) || s[13] != ':' || !digits(s[14:16]) || s[16] != ':' || !digits(s[17:19]) {
		return time.Time{}, bad
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		if n == 1 {
			return time.Time{}, bad
		}
		rest = rest[n:]
	}
	switch {
	case rest == "Z" || rest == "z":
		rest = "Z"
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && digits(rest[1:3]) && rest[3] == ':' && digits(rest[4:6]) &&
		rest[1:3] <= "23" && rest[4:6] <= "59":
	default:
		return time.Time{}, bad
	}
	if s[17:19] == "60" {
		return time.Time{}, fmt.Errorf("%q is a leap second (second 60): RFC 3339 allows it, but Go's time cannot represent it", s)
	}
	t, err := time.Parse(time.RFC3339Nano, s[:10]+"T"+s[11:len(s)-len(rest)]+rest)
	if err != nil { // a month, day, hour, minute or second out of range
		return time.Time{}, bad
	}
	return t, nil
}
