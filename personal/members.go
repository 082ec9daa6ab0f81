package personal

import (
	"bytes"
	"encoding/json"
)

// member is one member of a JSON object: its name as written (quotes
// excluded, escapes kept) and its value, as offsets into the object.
type member struct {
	nameStart, nameEnd   int
	valueStart, valueEnd int
}

// members returns the top-level members of the JSON object data, appended
// to buf, or false when data is not an object this scanner can read. It
// only finds boundaries: whether data is valid JSON is the store's to say,
// so a value about to be sealed is checked on its own (see Store.seal).
// Scanning in place, rather than decoding into a map and encoding again,
// keeps the data as the caller wrote it and costs no allocation per
// member.
func members(data []byte, buf []member) ([]member, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return buf, skipSpace(data, i+1) == len(data)
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return nil, false
		}
		end := stringEnd(data, i)
		if end < 0 {
			return nil, false
		}
		m := member{nameStart: i + 1, nameEnd: end - 1}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		i = skipSpace(data, i+1)
		end = valueEnd(data, i)
		if end <= i {
			return nil, false
		}
		m.valueStart, m.valueEnd = i, end
		buf = append(buf, m)
		i = skipSpace(data, end)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return buf, skipSpace(data, i+1) == len(data)
		default:
			return nil, false
		}
	}
}

// named reports whether m's name is name, decoding escapes when it has
// any (a name may be spelled with \u escapes).
func (m member) named(data []byte, name string) bool {
	raw := data[m.nameStart:m.nameEnd]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	var s string
	return json.Unmarshal(data[m.nameStart-1:m.nameEnd+1], &s) == nil && s == name
}

// lookup returns the value of the last member named name (the one a JSON
// decoder keeps), or nil.
func lookup(data []byte, ms []member, name string) []byte {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].named(data, name) {
			return data[ms[i].valueStart:ms[i].valueEnd]
		}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the offset just past the string starting at b[i] ('"'),
// or -1.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// valueEnd returns the offset just past the value starting at b[i], or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end := stringEnd(b, i)
				if end < 0 {
					return -1
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	default: // a number or a literal: up to the next delimiter
		j := i
		for j < len(b) && !delimiter(b[j]) {
			j++
		}
		return j
	}
}

func delimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}
