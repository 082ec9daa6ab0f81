package freetext_test

import (
	"encoding/json"
	"testing"

	"github.com/chronicle-es/chronicle/internal/freetext"
)

func TestForbidden(t *testing.T) {
	for _, r := range []rune{0, '\t', '\n', 0x1b, 0x1f, 0x7f, 0x80, 0x85, 0x9f, 0x202a, 0x202e, 0x2066, 0x2069, 0x2028, 0x2029} {
		if !freetext.Forbidden(r) {
			t.Errorf("%U allowed", r)
		}
	}
	for _, r := range []rune{' ', 'a', '~', 0xa0, 'é', 0x2027, 0x202f, 0x2065, 0x206a, 0x200e, 0x1f600} {
		if freetext.Forbidden(r) {
			t.Errorf("%U forbidden", r)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain é":            "plain é",
		"a\u202eb\u2028c":    `a\u202eb\u2028c`,
		"x\ny\u0085\u007f":   `x\u000ay\u0085\u007f`,
		"\u2066iso\u2069 ok": `\u2066iso\u2069 ok`,
	} {
		got := freetext.Escape(in)
		if got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		// The escapes are JSON's: inside a JSON string they read back as
		// the original.
		var back string
		if err := json.Unmarshal([]byte(`"`+got+`"`), &back); err != nil || back != in {
			t.Errorf("%q as a JSON string reads %q, %v; want %q", got, back, err, in)
		}
	}
}
