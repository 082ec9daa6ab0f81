package audit

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Errors of Canonicalize, all matching ErrJSON. They name the ways RFC 8785
// refuses input that encoding/json accepts.
var (
	// ErrJSON: the input is not JSON that RFC 8785 can canonicalize.
	ErrJSON = errors.New("audit: invalid JSON")
	// ErrDuplicateKey: an object has the same member name twice (after
	// unescaping).
	ErrDuplicateKey = fmt.Errorf("%w: duplicate object key", ErrJSON)
	// ErrLoneSurrogate: a string holds a \uXXXX escape of half a UTF-16
	// surrogate pair.
	ErrLoneSurrogate = fmt.Errorf("%w: lone surrogate", ErrJSON)
	// ErrInvalidUTF8: the input is not valid UTF-8.
	ErrInvalidUTF8 = fmt.Errorf("%w: not valid UTF-8", ErrJSON)
	// ErrNumberRange: a number is too large for an IEEE 754 double.
	ErrNumberRange = fmt.Errorf("%w: number out of range", ErrJSON)
)

// maxDepth is encoding/json's nesting limit, so that Canonicalize refuses
// nothing encoding/json accepts for its depth.
const maxDepth = 10000

// Canonicalize returns the RFC 8785 (JCS) canonical form of the JSON value
// in b: no whitespace, object members sorted by the UTF-16 code units of
// their names, strings with the minimal escaping of RFC 8785, and numbers as
// ECMAScript serializes an IEEE 754 double.
//
// Numbers are doubles, as RFC 8785 says: an integer beyond 2^53 becomes the
// nearest double (9007199254740993 canonicalizes to 9007199254740992), -0
// becomes 0, and a number that underflows becomes 0. Producers that need
// exact big integers must send them as strings (RFC 8785, appendix D).
//
// It returns an error matching ErrJSON for anything that is not one JSON
// value, and ErrDuplicateKey, ErrLoneSurrogate, ErrInvalidUTF8 or
// ErrNumberRange (a number that would be infinite) for the JSON that
// encoding/json accepts but RFC 8785 does not.
func Canonicalize(b []byte) ([]byte, error) {
	if !utf8.Valid(b) {
		return nil, ErrInvalidUTF8
	}
	p := &parser{in: b}
	p.space()
	out, err := p.value(nil, 0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.in) {
		return nil, p.errorf("data after the value")
	}
	return out, nil
}

type parser struct {
	in []byte
	i  int
}

func (p *parser) errorf(format string, a ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrJSON, p.i, fmt.Sprintf(format, a...))
}

func (p *parser) space() {
	for p.i < len(p.in) {
		switch p.in[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value appends the canonical form of the value at p.i to out.
func (p *parser) value(out []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deep")
	}
	if p.i >= len(p.in) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.in[p.i]; {
	case c == '{':
		return p.object(out, depth)
	case c == '[':
		return p.array(out, depth)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return appendString(out, s), nil
	case c == '-' || c >= '0' && c <= '9':
		return p.number(out)
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(p.in[p.i:], []byte(lit)) {
			p.i += len(lit)
			return append(out, lit...), nil
		}
	}
	return nil, p.errorf("unexpected character %q", p.in[p.i])
}

type member struct {
	key   string
	value []byte
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 sorts
// member names. It differs from code point order only between a character
// above U+FFFF (a surrogate pair, from 0xd800) and one from U+E000 to U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			// Above U+FFFF the first unit is a high surrogate; a BMP
			// character is never one (no lone surrogates), so 0xd800
			// stands for all of them against it.
			if ra > 0xffff && rb <= 0xffff {
				ra = 0xd800
			} else if rb > 0xffff && ra <= 0xffff {
				rb = 0xd800
			}
			return int(ra) - int(rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

func (p *parser) object(out []byte, depth int) ([]byte, error) {
	p.i++ // {
	var members []member
	p.space()
	if p.i < len(p.in) && p.in[p.i] == '}' {
		p.i++
		return append(out, "{}"...), nil
	}
	for {
		p.space()
		if p.i >= len(p.in) || p.in[p.i] != '"' {
			return nil, p.errorf("expected an object key")
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.in) || p.in[p.i] != ':' {
			return nil, p.errorf("expected ':'")
		}
		p.i++
		p.space()
		v, err := p.value(nil, depth+1)
		if err != nil {
			return nil, err
		}
		members = append(members, member{key: key, value: v})
		p.space()
		if p.i >= len(p.in) {
			return nil, p.errorf("unexpected end of input")
		}
		if p.in[p.i] == '}' {
			p.i++
			break
		}
		if p.in[p.i] != ',' {
			return nil, p.errorf("expected ',' or '}'")
		}
		p.i++
	}
	slices.SortFunc(members, func(a, b member) int { return compareUTF16(a.key, b.key) })
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			if m.key == members[i-1].key {
				return nil, fmt.Errorf("%w %q", ErrDuplicateKey, m.key)
			}
			out = append(out, ',')
		}
		out = appendString(out, m.key)
		out = append(out, ':')
		out = append(out, m.value...)
	}
	return append(out, '}'), nil
}

func (p *parser) array(out []byte, depth int) ([]byte, error) {
	p.i++ // [
	out = append(out, '[')
	p.space()
	if p.i < len(p.in) && p.in[p.i] == ']' {
		p.i++
		return append(out, ']'), nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			out = append(out, ',')
		}
		p.space()
		var err error
		if out, err = p.value(out, depth+1); err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.in) {
			return nil, p.errorf("unexpected end of input")
		}
		if p.in[p.i] == ']' {
			p.i++
			return append(out, ']'), nil
		}
		if p.in[p.i] != ',' {
			return nil, p.errorf("expected ',' or ']'")
		}
		p.i++
	}
}

// string decodes the string at p.i (the input is valid UTF-8).
func (p *parser) string() (string, error) {
	p.i++ // "
	// Most strings have no escape: take them as they are.
	for j := p.i; j < len(p.in) && p.in[j] >= 0x20 && p.in[j] != '\\'; j++ {
		if p.in[j] == '"' {
			s := string(p.in[p.i:j])
			p.i = j + 1
			return s, nil
		}
	}
	var sb strings.Builder
	for {
		if p.i >= len(p.in) {
			return "", p.errorf("unterminated string")
		}
		c := p.in[p.i]
		switch {
		case c == '"':
			p.i++
			return sb.String(), nil
		case c < 0x20:
			return "", p.errorf("control character in string")
		case c != '\\':
			sb.WriteByte(c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.in) {
			return "", p.errorf("unterminated string")
		}
		esc := p.in[p.i+1]
		p.i += 2
		switch esc {
		case '"', '\\', '/':
			sb.WriteByte(esc)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.errorf("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || !bytes.HasPrefix(p.in[p.i:], []byte(`\u`)) {
					return "", fmt.Errorf("%w \\u%04x at offset %d", ErrLoneSurrogate, r, p.i)
				}
				p.i += 2
				lo, ok := p.hex4()
				if !ok {
					return "", p.errorf("bad \\u escape")
				}
				if lo < 0xdc00 || lo > 0xdfff {
					return "", fmt.Errorf("%w \\u%04x at offset %d", ErrLoneSurrogate, r, p.i)
				}
				r = utf16.DecodeRune(r, lo)
			}
			sb.WriteRune(r)
		default:
			return "", p.errorf("bad escape \\%c", esc)
		}
	}
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.in) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.in[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

func (p *parser) number(out []byte) ([]byte, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.in) && p.in[p.i] >= '0' && p.in[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.in[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.in) && p.in[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, p.errorf("bad number")
	}
	if p.i < len(p.in) && p.in[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errorf("bad number")
		}
	}
	if p.i < len(p.in) && (p.in[p.i] == 'e' || p.in[p.i] == 'E') {
		p.i++
		if p.i < len(p.in) && (p.in[p.i] == '+' || p.in[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errorf("bad number")
		}
	}
	lit := string(p.in[start:p.i])
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !(errors.Is(err, strconv.ErrRange) && f == 0) {
		return nil, fmt.Errorf("%w: %s", ErrNumberRange, lit)
	}
	return appendNumber(out, f)
}

// appendNumber appends f as ECMAScript's Number.prototype.toString does
// (ECMA-262, Number::toString), which RFC 8785 prescribes.
func appendNumber(out []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: %v", ErrNumberRange, f)
	}
	if f == 0 { // -0 too
		return append(out, '0'), nil
	}
	if f < 0 {
		out = append(out, '-')
		f = -f
	}
	// Go's shortest 'e' form has the digits ECMAScript asks for: the fewest
	// that read back as f, the closest to f among those.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±xx
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1 // f = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		out = append(out, digits...)
		out = append(out, strings.Repeat("0", n-k)...)
	case 0 < n && n <= 21:
		out = append(out, digits[:n]...)
		out = append(out, '.')
		out = append(out, digits[n:]...)
	case -6 < n && n <= 0:
		out = append(out, "0."...)
		out = append(out, strings.Repeat("0", -n)...)
		out = append(out, digits...)
	default:
		out = append(out, digits[0])
		if k > 1 {
			out = append(out, '.')
			out = append(out, digits[1:]...)
		}
		out = append(out, 'e')
		if n-1 >= 0 {
			out = append(out, '+')
		}
		out = strconv.AppendInt(out, int64(n-1), 10)
	}
	return out, nil
}

// appendString appends s quoted with RFC 8785's escaping: \" \\ \b \f \n \r
// \t, \u00xx (lowercase) for the other control characters, everything else
// as is.
func appendString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			out = append(out, '\\', c)
		case '\b':
			out = append(out, '\\', 'b')
		case '\f':
			out = append(out, '\\', 'f')
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		default:
			if c < 0x20 {
				out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				out = append(out, c)
			}
		}
	}
	return append(out, '"')
}
