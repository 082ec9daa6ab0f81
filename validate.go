package chronicle

import (
	"fmt"
	"unicode/utf8"
)

// Limits bound what an append may carry. Backends take them as options.
type Limits struct {
	MaxEventSize int // bytes of data + metadata per event; default 1 MiB
}

// DefaultMaxEventSize is the default limit on one event's data + metadata.
const DefaultMaxEventSize = 1 << 20

// MaxNameLength bounds stream ids and event types, in bytes.
const MaxNameLength = 200

// PrepareAppend checks an append's input and returns a copy of events with
// ids assigned and schema versions defaulted. Backends call it before
// touching the database, so bad input is refused identically everywhere and
// nothing is written. Errors: *InvalidError.
func PrepareAppend(stream string, expected ExpectedVersion, events []Event, lim Limits) ([]Event, error) {
	return PrepareAppendWith(stream, expected, events, lim, nil)
}

// PrepareAppendWith is PrepareAppend with validJSON in place of ValidateJSON
// for each event's data and (when any) metadata, i being the event's index:
// a backend that parses the JSON anyway (package audit canonicalizes it to
// hash it) checks it in that same pass. validJSON must return what
// ValidateJSON returns. A nil validJSON is ValidateJSON.
func PrepareAppendWith(stream string, expected ExpectedVersion, events []Event, lim Limits, validJSON func(i int, metadata bool, b []byte) error) ([]Event, error) {
	if validJSON == nil {
		validJSON = func(_ int, _ bool, b []byte) error { return ValidateJSON(b) }
	}
	if err := ValidateName("stream_id", stream); err != nil {
		return nil, err
	}
	if !expected.Valid() {
		return nil, &InvalidError{Field: "expected_version", Reason: expected.String()}
	}
	if len(events) == 0 {
		return nil, &InvalidError{Field: "events", Reason: "no events to append"}
	}
	max := lim.MaxEventSize
	if max <= 0 {
		max = DefaultMaxEventSize
	}
	out := make([]Event, len(events))
	// Ids for the events without one, made together; they are new, so only
	// the ids given need checking for repeats.
	var given int
	for _, e := range events {
		if e.ID != "" {
			given++
		}
	}
	made := make([]string, len(events)-given)
	newEventIDs(made)
	var seen map[string]bool
	if given > 1 {
		seen = make(map[string]bool, given)
	}
	for i, e := range events {
		field := func(f string) string { return fmt.Sprintf("events[%d].%s", i, f) }
		if e.ID == "" {
			e.ID, made = made[0], made[1:]
		} else {
			id, err := ParseEventID(e.ID)
			if err != nil {
				return nil, &InvalidError{Field: field("id"), Reason: err.Error()}
			}
			if seen[id] {
				return nil, &InvalidError{Field: field("id"), Reason: "event id repeated within one append"}
			}
			if seen != nil {
				seen[id] = true
			}
			e.ID = id
		}
		if err := ValidateName("", e.Type); err != nil {
			err.(*InvalidError).Field = field("type") // built only on error: every append checks every event
			return nil, err
		}
		if e.SchemaVersion == 0 {
			e.SchemaVersion = 1
		}
		if e.SchemaVersion < 0 {
			return nil, &InvalidError{Field: field("schema_version"), Reason: "must be positive"}
		}
		if n := len(e.Data) + len(e.Metadata); n > max {
			return nil, &InvalidError{Field: field("data"), Reason: fmt.Sprintf("%d bytes exceeds the limit of %d", n, max), tooBig: true}
		}
		if len(e.Data) == 0 {
			return nil, &InvalidError{Field: field("data"), Reason: "empty"}
		}
		if err := validJSON(i, false, e.Data); err != nil {
			return nil, &InvalidError{Field: field("data"), Reason: err.Error()}
		}
		if len(e.Metadata) > 0 {
			if err := validJSON(i, true, e.Metadata); err != nil {
				return nil, &InvalidError{Field: field("metadata"), Reason: err.Error()}
			}
			if firstNonSpace(e.Metadata) != '{' {
				return nil, &InvalidError{Field: field("metadata"), Reason: "must be a JSON object"}
			}
		}
		out[i] = e
	}
	return out, nil
}

// ValidateName checks a stream id or event type: 1 to MaxNameLength bytes of
// valid UTF-8 without control characters. Errors: *InvalidError.
func ValidateName(field, s string) error {
	switch {
	case s == "":
		return &InvalidError{Field: field, Reason: "empty"}
	case len(s) > MaxNameLength:
		return &InvalidError{Field: field, Reason: fmt.Sprintf("longer than %d bytes", MaxNameLength)}
	case !utf8.ValidString(s):
		return &InvalidError{Field: field, Reason: "not valid UTF-8"}
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return &InvalidError{Field: field, Reason: "contains a control character"}
		}
	}
	return nil
}

// ValidateJSON checks that b is one valid JSON value that every backend
// stores unchanged: valid UTF-8, and no string holding NUL (\u0000) or a lone
// UTF-16 surrogate (\ud800), which encoding/json accepts and PostgreSQL
// rejects.
//
// It accepts exactly what json.Valid accepts (nesting depth included), in
// one pass: every append validates every event.
func ValidateJSON(b []byte) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("not valid UTF-8")
	}
	v := jsonValidator{b: b}
	v.space()
	if !v.value(0) || v.space() != len(b) {
		return fmt.Errorf("not valid JSON")
	}
	return v.err // invalid JSON anywhere is reported before this
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

// jsonValidator checks the grammar of RFC 8259 and keeps the first NUL or
// lone surrogate it meets in a string.
type jsonValidator struct {
	b   []byte
	i   int
	err error
}

func (v *jsonValidator) space() int {
	for v.i < len(v.b) {
		switch v.b[v.i] {
		case ' ', '\t', '\n', '\r':
			v.i++
		default:
			return v.i
		}
	}
	return v.i
}

// value checks the value at v.i, the space before it skipped.
func (v *jsonValidator) value(depth int) bool {
	if v.i >= len(v.b) {
		return false
	}
	switch c := v.b[v.i]; {
	case c == '{':
		return v.object(depth + 1)
	case c == '[':
		return v.array(depth + 1)
	case c == '"':
		return v.string()
	case c == '-' || c >= '0' && c <= '9':
		return v.number()
	case c == 't':
		return v.literal("true")
	case c == 'f':
		return v.literal("false")
	case c == 'n':
		return v.literal("null")
	}
	return false
}

func (v *jsonValidator) literal(lit string) bool {
	if len(v.b)-v.i < len(lit) || string(v.b[v.i:v.i+len(lit)]) != lit {
		return false
	}
	v.i += len(lit)
	return true
}

func (v *jsonValidator) object(depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	v.i++ // {
	if v.space() < len(v.b) && v.b[v.i] == '}' {
		v.i++
		return true
	}
	for {
		if v.space() >= len(v.b) || v.b[v.i] != '"' || !v.string() {
			return false
		}
		if v.space() >= len(v.b) || v.b[v.i] != ':' {
			return false
		}
		v.i++
		v.space()
		if !v.value(depth) || v.space() >= len(v.b) {
			return false
		}
		switch v.b[v.i] {
		case '}':
			v.i++
			return true
		case ',':
			v.i++
		default:
			return false
		}
	}
}

func (v *jsonValidator) array(depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	v.i++ // [
	if v.space() < len(v.b) && v.b[v.i] == ']' {
		v.i++
		return true
	}
	for {
		v.space()
		if !v.value(depth) || v.space() >= len(v.b) {
			return false
		}
		switch v.b[v.i] {
		case ']':
			v.i++
			return true
		case ',':
			v.i++
		default:
			return false
		}
	}
}

// string checks the string at v.i (its opening quote).
func (v *jsonValidator) string() bool {
	b := v.b
	for i := v.i + 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			v.i = i + 1
			return true
		case c < 0x20:
			return false
		case c != '\\':
			continue
		}
		i++
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			continue
		case 'u':
		default:
			return false
		}
		r, ok := hex4(b, i+1)
		if !ok {
			return false
		}
		i += 4
		switch {
		case v.err != nil:
		case r == 0:
			v.err = fmt.Errorf("string contains NUL (\\u0000)")
		case r >= 0xdc00 && r <= 0xdfff:
			v.err = fmt.Errorf("string contains a lone surrogate (\\u%04x)", r)
		case r >= 0xd800 && r <= 0xdbff:
			// A pair is consumed whole; anything else leaves the next
			// escape to be read as itself.
			if lo, ok := hex4(b, i+3); ok && i+2 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' && lo >= 0xdc00 && lo <= 0xdfff {
				i += 6
			} else {
				v.err = fmt.Errorf("string contains a lone surrogate (\\u%04x)", r)
			}
		}
	}
	return false
}

func (v *jsonValidator) number() bool {
	b := v.b
	digits := func() int {
		n := 0
		for v.i < len(b) && b[v.i] >= '0' && b[v.i] <= '9' {
			v.i++
			n++
		}
		return n
	}
	if b[v.i] == '-' {
		v.i++
	}
	if v.i < len(b) && b[v.i] == '0' {
		v.i++
	} else if digits() == 0 {
		return false
	}
	if v.i < len(b) && b[v.i] == '.' {
		v.i++
		if digits() == 0 {
			return false
		}
	}
	if v.i < len(b) && (b[v.i] == 'e' || b[v.i] == 'E') {
		v.i++
		if v.i < len(b) && (b[v.i] == '+' || b[v.i] == '-') {
			v.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// hex4 reads the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}
