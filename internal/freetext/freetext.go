// Package freetext says which characters free text (names, addresses,
// reasons, carriers...) may not hold, and escapes them for display.
package freetext

import (
	"strconv"
	"strings"
)

// Forbidden reports whether r may not appear in free text: C0 and C1
// controls, DEL, bidirectional overrides and isolates (U+202A-U+202E,
// U+2066-U+2069), and the line and paragraph separators (U+2028, U+2029).
// Each can make text display as something else than it holds, or break a
// line-oriented output into lines it does not have.
func Forbidden(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// Escape returns s with every forbidden character written as \uXXXX, which
// is also a valid escape inside a JSON string: text output stays one line
// per line and reads as what it holds. s without such characters is
// returned as is.
func Escape(s string) string {
	if strings.IndexFunc(s, Forbidden) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !Forbidden(r) {
			b.WriteRune(r)
			continue
		}
		b.WriteString(`\u`)
		h := strconv.FormatInt(int64(r), 16)
		b.WriteString(strings.Repeat("0", 4-len(h)) + h)
	}
	return b.String()
}
