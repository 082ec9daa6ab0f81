package audit

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
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
	p := parsers.Get().(*parser)
	defer p.release()
	out, err := p.canonicalize(b)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(out), nil
}

// parser canonicalizes in one pass, writing to out. Its buffers are reused
// (parsers): an append canonicalizes every event's data and metadata.
type parser struct {
	in      []byte
	i       int
	out     []byte
	tmp     []byte   // members reordered
	members []member // the members of the objects being read, innermost last
	keys    []byte   // their decoded names
	// unsure: a \u0000 escape, or nesting near the limit, was read. Only
	// then may chronicle.ValidateJSON refuse what was canonicalized.
	unsure bool
}

// member is an object member written to out[start:end] as "name":value,
// its decoded name at keys[kstart:kend]. Offsets, not slices: no pointers
// for the garbage collector to follow or for release to clear.
type member struct {
	kstart, kend, start, end int
}

var parsers = sync.Pool{New: func() any { return new(parser) }}

// release returns p to parsers, unless a huge input left it huge.
func (p *parser) release() {
	if cap(p.out) > 1<<20 || cap(p.tmp) > 1<<20 || cap(p.members) > 1<<14 || cap(p.keys) > 1<<20 {
		return
	}
	*p = parser{out: p.out[:0], tmp: p.tmp[:0], members: p.members[:0], keys: p.keys[:0]}
	parsers.Put(p)
}

// canonicalize returns b's canonical form, in p.out: valid until p is used
// again.
func (p *parser) canonicalize(b []byte) ([]byte, error) {
	if !utf8.Valid(b) {
		return nil, ErrInvalidUTF8
	}
	p.in, p.i, p.out, p.unsure = b, 0, p.out[:0], false
	p.space()
	if err := p.value(0); err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.in) {
		return nil, p.errorf("data after the value")
	}
	return p.out, nil
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

// value appends the canonical form of the value at p.i to p.out.
func (p *parser) value(depth int) error {
	if depth > maxDepth {
		return p.errorf("nested too deep")
	}
	if p.i >= len(p.in) {
		return p.errorf("unexpected end of input")
	}
	switch c := p.in[p.i]; {
	case c == '{':
		p.unsure = p.unsure || depth >= maxDepth-1
		return p.object(depth)
	case c == '[':
		p.unsure = p.unsure || depth >= maxDepth-1
		return p.array(depth)
	case c == '"':
		_, err := p.string()
		return err
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return p.errorf("unexpected character %q", p.in[p.i])
}

func (p *parser) literal(lit string) error {
	if !bytes.HasPrefix(p.in[p.i:], []byte(lit)) {
		return p.errorf("unexpected character %q", p.in[p.i])
	}
	p.i += len(lit)
	p.out = append(p.out, lit...)
	return nil
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 sorts
// member names.
func compareUTF16(a, b string) int { return compareKeys([]byte(a), []byte(b)) }

// compareKeys is compareUTF16 of valid UTF-8. It differs from byte (code
// point) order only between a character above U+FFFF (a surrogate pair,
// from 0xd800) and one from U+E000 to U+FFFF.
func compareKeys(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		return len(a) - len(b)
	}
	if a[i] < utf8.RuneSelf && b[i] < utf8.RuneSelf {
		return int(a[i]) - int(b[i])
	}
	for i > 0 && !utf8.RuneStart(a[i]) { // back to the characters that differ
		i--
	}
	ra, _ := utf8.DecodeRune(a[i:])
	rb, _ := utf8.DecodeRune(b[i:])
	// Above U+FFFF the first unit is a high surrogate; a BMP character is
	// never one (no lone surrogates), so 0xd800 stands for all of them
	// against it.
	if ra > 0xffff && rb <= 0xffff {
		ra = 0xd800
	} else if rb > 0xffff && ra <= 0xffff {
		rb = 0xd800
	}
	return int(ra) - int(rb)
}

// object writes the members as they come, each followed by a comma, then
// puts them in order if they are not.
func (p *parser) object(depth int) error {
	p.i++ // {
	p.space()
	if p.i < len(p.in) && p.in[p.i] == '}' {
		p.i++
		p.out = append(p.out, "{}"...)
		return nil
	}
	open := len(p.out)
	p.out = append(p.out, '{')
	base, kbase := len(p.members), len(p.keys)
	defer func() { p.members, p.keys = p.members[:base], p.keys[:kbase] }()
	for {
		p.space()
		if p.i >= len(p.in) || p.in[p.i] != '"' {
			return p.errorf("expected an object key")
		}
		start := len(p.out)
		key, err := p.string()
		if err != nil {
			return err
		}
		kstart := len(p.keys)
		p.keys = append(p.keys, key...)
		p.space()
		if p.i >= len(p.in) || p.in[p.i] != ':' {
			return p.errorf("expected ':'")
		}
		p.i++
		p.out = append(p.out, ':')
		p.space()
		if err := p.value(depth + 1); err != nil {
			return err
		}
		p.members = append(p.members, member{kstart: kstart, kend: len(p.keys), start: start, end: len(p.out)})
		p.out = append(p.out, ',')
		p.space()
		if p.i >= len(p.in) {
			return p.errorf("unexpected end of input")
		}
		if p.in[p.i] == '}' {
			p.i++
			break
		}
		if p.in[p.i] != ',' {
			return p.errorf("expected ',' or '}'")
		}
		p.i++
	}
	ms := p.members[base:]
	key := func(m member) []byte { return p.keys[m.kstart:m.kend] }
	sorted := true
	for i := 1; i < len(ms) && sorted; i++ {
		sorted = compareKeys(key(ms[i-1]), key(ms[i])) < 0
	}
	if !sorted {
		if len(ms) <= 12 { // what an event's objects have: no sort's overhead
			for i := 1; i < len(ms); i++ {
				for j := i; j > 0 && compareKeys(key(ms[j]), key(ms[j-1])) < 0; j-- {
					ms[j], ms[j-1] = ms[j-1], ms[j]
				}
			}
		} else {
			slices.SortFunc(ms, func(a, b member) int { return compareKeys(key(a), key(b)) })
		}
		p.tmp = p.tmp[:0]
		for i, m := range ms {
			if i > 0 && bytes.Equal(key(m), key(ms[i-1])) {
				return fmt.Errorf("%w %q", ErrDuplicateKey, key(m))
			}
			p.tmp = append(p.tmp, p.out[m.start:m.end]...)
			p.tmp = append(p.tmp, ',')
		}
		copy(p.out[open+1:], p.tmp) // the same length
	}
	p.out[len(p.out)-1] = '}' // the last comma
	return nil
}

func (p *parser) array(depth int) error {
	p.i++ // [
	p.out = append(p.out, '[')
	p.space()
	if p.i < len(p.in) && p.in[p.i] == ']' {
		p.i++
		p.out = append(p.out, ']')
		return nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			p.out = append(p.out, ',')
		}
		p.space()
		if err := p.value(depth + 1); err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.in) {
			return p.errorf("unexpected end of input")
		}
		if p.in[p.i] == ']' {
			p.i++
			p.out = append(p.out, ']')
			return nil
		}
		if p.in[p.i] != ',' {
			return p.errorf("expected ',' or ']'")
		}
		p.i++
	}
}

// string appends the canonical form of the string at p.i to p.out and
// returns its decoded value (the input is valid UTF-8).
func (p *parser) string() ([]byte, error) {
	p.i++ // "
	// Most strings have no escape and no control character: their
	// canonical form is the input's.
	for j := p.i; j < len(p.in) && p.in[j] >= 0x20 && p.in[j] != '\\'; j++ {
		if p.in[j] == '"' {
			s := p.in[p.i:j]
			p.out = append(p.out, p.in[p.i-1:j+1]...)
			p.i = j + 1
			return s, nil
		}
	}
	var sb []byte
	for {
		if p.i >= len(p.in) {
			return nil, p.errorf("unterminated string")
		}
		c := p.in[p.i]
		switch {
		case c == '"':
			p.i++
			p.out = appendString(p.out, sb)
			return sb, nil
		case c < 0x20:
			return nil, p.errorf("control character in string")
		case c != '\\':
			sb = append(sb, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.in) {
			return nil, p.errorf("unterminated string")
		}
		esc := p.in[p.i+1]
		p.i += 2
		switch esc {
		case '"', '\\', '/':
			sb = append(sb, esc)
		case 'b':
			sb = append(sb, '\b')
		case 'f':
			sb = append(sb, '\f')
		case 'n':
			sb = append(sb, '\n')
		case 'r':
			sb = append(sb, '\r')
		case 't':
			sb = append(sb, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.errorf("bad \\u escape")
			}
			p.unsure = p.unsure || r == 0
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || !bytes.HasPrefix(p.in[p.i:], []byte(`\u`)) {
					return nil, fmt.Errorf("%w \\u%04x at offset %d", ErrLoneSurrogate, r, p.i)
				}
				p.i += 2
				lo, ok := p.hex4()
				if !ok {
					return nil, p.errorf("bad \\u escape")
				}
				if lo < 0xdc00 || lo > 0xdfff {
					return nil, fmt.Errorf("%w \\u%04x at offset %d", ErrLoneSurrogate, r, p.i)
				}
				r = utf16.DecodeRune(r, lo)
			}
			sb = utf8.AppendRune(sb, r)
		default:
			return nil, p.errorf("bad escape \\%c", esc)
		}
	}
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.in) {
		return 0, false
	}
	var r rune
	for _, c := range p.in[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// maxExactDigits: an integer of at most this many digits is a double
// exactly, and ECMAScript writes it as it is (up to 10^21).
const maxExactDigits = 15

func (p *parser) number() error {
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
	n := 0
	if p.i < len(p.in) && p.in[p.i] == '0' {
		p.i++
		n = 1
	} else if n = digits(); n == 0 {
		return p.errorf("bad number")
	}
	plain := true
	if p.i < len(p.in) && p.in[p.i] == '.' {
		p.i++
		plain = false
		if digits() == 0 {
			return p.errorf("bad number")
		}
	}
	if p.i < len(p.in) && (p.in[p.i] == 'e' || p.in[p.i] == 'E') {
		p.i++
		plain = false
		if p.i < len(p.in) && (p.in[p.i] == '+' || p.in[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return p.errorf("bad number")
		}
	}
	lit := p.in[start:p.i]
	if plain && n <= maxExactDigits { // no leading zeros: JSON has none
		if string(lit) == "-0" {
			lit = lit[1:]
		}
		p.out = append(p.out, lit...)
		return nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && !(errors.Is(err, strconv.ErrRange) && f == 0) {
		return fmt.Errorf("%w: %s", ErrNumberRange, lit)
	}
	p.out, err = appendNumber(p.out, f)
	return err
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
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // d.ddde±xx
	at := bytes.IndexByte(e, 'e')
	x := 0
	for _, c := range e[at+2:] { // after e and its sign
		x = 10*x + int(c-'0')
	}
	if e[at+1] == '-' {
		x = -x
	}
	var db [24]byte
	digits := append(append(db[:0], e[0]), e[min(2, at):at]...) // without the point
	k, n := len(digits), x+1                                    // f = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		out = append(out, digits...)
		out = appendZeros(out, n-k)
	case 0 < n && n <= 21:
		out = append(out, digits[:n]...)
		out = append(out, '.')
		out = append(out, digits[n:]...)
	case -6 < n && n <= 0:
		out = append(out, "0."...)
		out = appendZeros(out, -n)
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

func appendZeros(out []byte, n int) []byte {
	for range n {
		out = append(out, '0')
	}
	return out
}

// appendString appends s quoted with RFC 8785's escaping: \" \\ \b \f \n \r
// \t, \u00xx (lowercase) for the other control characters, everything else
// as is.
func appendString(out []byte, s []byte) []byte {
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
