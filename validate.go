package chronicle

import (
	"encoding/json"
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
	seen := make(map[string]bool, len(events))
	for i, e := range events {
		field := func(f string) string { return fmt.Sprintf("events[%d].%s", i, f) }
		if e.ID == "" {
			e.ID = NewEventID()
		} else {
			id, err := ParseEventID(e.ID)
			if err != nil {
				return nil, &InvalidError{Field: field("id"), Reason: err.Error()}
			}
			e.ID = id
		}
		if seen[e.ID] {
			return nil, &InvalidError{Field: field("id"), Reason: "event id repeated within one append"}
		}
		seen[e.ID] = true
		if err := ValidateName(field("type"), e.Type); err != nil {
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
		if err := ValidateJSON(e.Data); err != nil {
			return nil, &InvalidError{Field: field("data"), Reason: err.Error()}
		}
		if len(e.Metadata) > 0 {
			if err := ValidateJSON(e.Metadata); err != nil {
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
func ValidateJSON(b []byte) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("not valid UTF-8")
	}
	if !json.Valid(b) {
		return fmt.Errorf("not valid JSON")
	}
	// b is valid JSON, so escapes are well formed: \uXXXX has 4 hex digits.
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			i++
			if b[i] != 'u' {
				continue
			}
			r := hex4(b[i+1 : i+5])
			i += 4
			switch {
			case r == 0:
				return fmt.Errorf("string contains NUL (\\u0000)")
			case r >= 0xdc00 && r <= 0xdfff:
				return fmt.Errorf("string contains a lone surrogate (\\u%04x)", r)
			case r >= 0xd800 && r <= 0xdbff:
				if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
					return fmt.Errorf("string contains a lone surrogate (\\u%04x)", r)
				}
				lo := hex4(b[i+3 : i+7])
				if lo < 0xdc00 || lo > 0xdfff {
					return fmt.Errorf("string contains a lone surrogate (\\u%04x)", r)
				}
				i += 6
			}
		}
	}
	return nil
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
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
