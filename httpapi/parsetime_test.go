package httpapi

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestParseTime: exactly RFC 3339's date-time (section 5.6), which API.md
// asks for ("Times are RFC 3339 in UTC (`2026-11-25T15:00:00Z`);
// sub-second precision allowed"), within years 0001 to 9999 in UTC.
func TestParseTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // RFC3339Nano in UTC; "" when refused
		why  string // a word the refusal holds
	}{
		{in: "2026-11-25T15:00:00Z", want: "2026-11-25T15:00:00Z"},
		{in: "2026-11-25t15:00:00z", want: "2026-11-25T15:00:00Z"}, // section 5.6: T and Z may be lowercase
		{in: "2026-11-25t15:00:00Z", want: "2026-11-25T15:00:00Z"},
		{in: "2026-11-25T15:00:00.5Z", want: "2026-11-25T15:00:00.5Z"},
		{in: "2026-11-25T15:00:00.123456789z", want: "2026-11-25T15:00:00.123456789Z"},
		{in: "2026-11-25T15:00:00+01:00", want: "2026-11-25T14:00:00Z"},
		{in: "2026-11-25T15:00:00-00:00", want: "2026-11-25T15:00:00Z"},
		{in: "2026-11-25T15:00:00.25+23:59", want: "2026-11-24T15:01:00.25Z"},
		{in: "2026-11-25T15:00:00-23:59", want: "2026-11-26T14:59:00Z"},
		{in: "2024-02-29T00:00:00Z", want: "2024-02-29T00:00:00Z"},
		{in: "0001-01-01T00:00:00Z", want: "0001-01-01T00:00:00Z"},

		{in: "2026-11-25T15:00:00,5Z", why: "RFC 3339"}, // a comma is ISO 8601's, not RFC 3339's
		{in: "2026-11-25T15:00:00.Z", why: "RFC 3339"},
		{in: "2026-11-25T15:00:00+24:00", why: "RFC 3339"},
		{in: "2026-11-25T15:00:00+01:60", why: "RFC 3339"},
		{in: "2026-11-25T15:00:00+0100", why: "RFC 3339"},
		{in: "2026-11-25T15:00:00+01", why: "RFC 3339"},
		{in: "2026-11-25T15:00:00", why: "RFC 3339"},
		{in: "2026-11-25 15:00:00Z", why: "RFC 3339"},
		{in: "2026-11-25T15:00Z", why: "RFC 3339"},
		{in: "2026-11-25", why: "RFC 3339"},
		{in: "26-11-25T15:00:00Z", why: "RFC 3339"},
		{in: "+2026-11-25T15:00:00Z", why: "RFC 3339"},
		{in: "2026-1-25T15:00:00Z", why: "RFC 3339"},
		{in: "2026-11-25T15:00:00ZZ", why: "RFC 3339"},
		{in: "2026-11-25T15:00:00Z ", why: "RFC 3339"},
		{in: "2026-11-25T15:00:00\u00a0Z", why: "RFC 3339"},
		{in: "2026-11-25T15:00:00.١Z", why: "RFC 3339"}, // an Arabic-Indic digit
		{in: "2026-13-01T00:00:00Z", why: "RFC 3339"},
		{in: "2025-02-29T00:00:00Z", why: "RFC 3339"},
		{in: "2026-11-25T24:00:00Z", why: "RFC 3339"},
		{in: "2026-11-25T15:60:00Z", why: "RFC 3339"},
		{in: "2026-12-31T23:59:60Z", why: "leap second"},
		{in: "0000-12-31T23:59:59Z", why: "outside"},
		{in: "9999-12-31T23:59:59-00:01", why: "outside"},
		{in: "", why: "RFC 3339"},
	} {
		got, err := ParseTime(c.in)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("ParseTime(%q) = %v, want an error", c.in, got)
		case c.want == "" && !strings.Contains(err.Error(), c.why):
			t.Errorf("ParseTime(%q): %v, want it to say %q", c.in, err, c.why)
		case c.want != "" && err != nil:
			t.Errorf("ParseTime(%q): %v", c.in, err)
		case c.want != "" && got.Format(time.RFC3339Nano) != c.want:
			t.Errorf("ParseTime(%q) = %s, want %s", c.in, got.Format(time.RFC3339Nano), c.want)
		}
	}
}

// rfc3339 is RFC 3339's date-time ABNF (section 5.6) as a regular
// expression; the day, hour, minute and second ranges are the calendar's.
var rfc3339 = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$`)

// FuzzParseTime: ParseTime accepts nothing that is not RFC 3339's
// date-time, and never panics.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-25T15:00:00Z", "2026-11-25t15:00:00.5z", "2026-11-25T15:00:00,5Z", "2026-11-25T15:00:00+24:00", "2026-12-31T23:59:60Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := ParseTime(s); err == nil && !rfc3339.MatchString(s) {
			t.Errorf("ParseTime(%q) accepted a time that is not RFC 3339", s)
		}
	})
}
