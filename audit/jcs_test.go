package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-json-experiment/json/jsontext"
	"pgregory.net/rapid"
)

// RFC 8785, appendix B: IEEE 754 bit patterns and their serialization.
func TestNumberSerializationRFC8785(t *testing.T) {
	for _, c := range []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	} {
		f := math.Float64frombits(c.bits)
		got, err := appendNumber(nil, f)
		if err != nil || string(got) != c.want {
			t.Errorf("number %#016x: got %q, %v; want %q", c.bits, got, err, c.want)
		}
	}
	for _, bits := range []uint64{0x7fffffffffffffff, 0x7ff0000000000000} {
		if _, err := appendNumber(nil, math.Float64frombits(bits)); !errors.Is(err, ErrNumberRange) {
			t.Errorf("number %#016x: err = %v, want ErrNumberRange", bits, err)
		}
	}
}

func TestCanonicalize(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		// RFC 8785, section 3.2.2.
		{"rfc 8785 example",
			`{
			  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
			  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
			  "literals": [null, true, false]
			}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		// RFC 8785, section 3.2.3: sorting by UTF-16 code units.
		{"rfc 8785 sorting",
			`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",` +
				`"\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			`{"\r":"Carriage Return","1":"One","` + "\u0080" + `":"Control","ö":"Latin Small Letter O With Diaeresis",` +
				`"€":"Euro Sign","😀":"Emoji: Grinning Face","` + "\ufb33" + `":"Hebrew Letter Dalet With Dagesh"}`},
		{"nested and empty", ` { "b" : [ {} , [ ] ] , "a" : { "z" : 1 , "y" : "" } } `, `{"a":{"y":"","z":1},"b":[{},[]]}`},
		{"escapes", `"\b\f\n\r\t\u0001\u001f\u007f\u2028 \/"`, `"\b\f\n\r\t\u0001\u001f` + "\u007f\u2028" + ` /"`},
		{"numbers", `[-0, 0.0, 1.0, -1.5e0, 100, 1e21, 1e20, 123456789012345678901234567890, 1e-7, 0.000001, 1e-400]`,
			`[0,0,1,-1.5,100,1e+21,100000000000000000000,1.2345678901234568e+29,1e-7,0.000001,0]`},
		{"integer beyond 2^53 rounds to a double", `9007199254740993`, `9007199254740992`},
		{"literals", `[true,false,null]`, `[true,false,null]`},
		{"escaped key order", `{"b":1,"\u0061":2}`, `{"a":2,"b":1}`},
	} {
		got, err := Canonicalize([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("%s: Canonicalize(%s) = %s, %v; want %s", c.name, c.in, got, err, c.want)
		}
	}
}

func TestCanonicalizeErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want error
	}{
		{`{"a":1,"a":2}`, ErrDuplicateKey},
		{`{"a":1,"\u0061":2}`, ErrDuplicateKey},
		{`"\ud800"`, ErrLoneSurrogate},
		{`"\udc00"`, ErrLoneSurrogate},
		{`"\ud800x"`, ErrLoneSurrogate},
		{`"\ud800\u0041"`, ErrLoneSurrogate},
		{"\"\xff\"", ErrInvalidUTF8},
		{`1e400`, ErrNumberRange},
		{`-1e400`, ErrNumberRange},
		{``, ErrJSON},
		{`{"a":1,}`, ErrJSON},
		{`[1,]`, ErrJSON},
		{`01`, ErrJSON},
		{`1.`, ErrJSON},
		{`.5`, ErrJSON},
		{`NaN`, ErrJSON},
		{`Infinity`, ErrJSON},
		{`"a` + "\n" + `"`, ErrJSON},
		{`"\x"`, ErrJSON},
		{`{} {}`, ErrJSON},
		{`tru`, ErrJSON},
		{`{1:2}`, ErrJSON},
	} {
		if _, err := Canonicalize([]byte(c.in)); !errors.Is(err, c.want) {
			t.Errorf("Canonicalize(%q) error = %v, want %v", c.in, err, c.want)
		}
	}
}

// FuzzCanonicalize: whatever encoding/json accepts, Canonicalize either
// refuses for one of RFC 8785's reasons, or returns JSON that reads back as
// the same value, is its own canonical form, and does not depend on the
// input's member order or whitespace.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`{"b":[1,2.5,-0,1e300],"a":{"y":null,"x":true}}`, `"\u20ac\ud83d\ude00\t\"\\"`,
		`[333333333.33333329, 1E30, 4.50, 2e-3]`, `{"\ufb33":1,"\r":2,"\u0080":3}`,
		`9007199254740993`, `{"a":1,"a":2}`, `"\ud800"`, "\"\xff\"", `1e400`, `[]`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Canonicalize(in)
		if !json.Valid(in) {
			if err == nil {
				t.Fatalf("Canonicalize(%q) = %q, want an error for invalid JSON", in, got)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrDuplicateKey) && !errors.Is(err, ErrLoneSurrogate) &&
				!errors.Is(err, ErrInvalidUTF8) && !errors.Is(err, ErrNumberRange) {
				t.Fatalf("Canonicalize(%q) refused valid JSON: %v", in, err)
			}
			return
		}
		var want, back any
		if err := json.Unmarshal(in, &want); err != nil {
			t.Fatalf("json.Unmarshal(%q): %v", in, err)
		}
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", got, in, err)
		}
		if !reflect.DeepEqual(back, want) {
			t.Fatalf("canonical form %q of %q reads back as %#v, want %#v", got, in, back, want)
		}
		again, err := Canonicalize(got)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("Canonicalize(%q) = %q, %v; want it unchanged", got, again, err)
		}
		// Re-encode the value with encoding/json (sorted keys, no spaces),
		// then indented: a different member order and whitespace.
		for _, re := range [][]byte{mustMarshal(t, want), mustIndent(t, want)} {
			c, err := Canonicalize(re)
			if err != nil || !bytes.Equal(c, got) {
				t.Fatalf("Canonicalize(%q) = %q, %v; want %q as for %q", re, c, err, got, in)
			}
		}
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustIndent(t *testing.T, v any) []byte {
	b, err := json.MarshalIndent(v, " ", "\t")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A typical order event: what every append pays, twice (data, metadata).
func BenchmarkCanonicalize(b *testing.B) {
	in := []byte(`{"customer_id":"cust_456","items":[{"sku":"sku-1","quantity":2,"unit_price":1999},` +
		`{"sku":"sku-2","quantity":1,"unit_price":5999}],"total":9997,"shipping_address":{"name":"J. Smith",` +
		`"line1":"1 Main St","city":"Springfield","postal_code":"12345"}}`)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Canonicalize(in); err != nil {
			b.Fatal(err)
		}
	}
}

// compareUTF16 is the order of UTF-16 code units.
func TestCompareUTF16(t *testing.T) {
	chars := rapid.SampledFrom([]rune{'a', 'b', 0x7f, 0x80, 0xff, 0x20ac, 0xd7ff, 0xe000, 0xfb33, 0xffff, 0x10000, 0x1f600, 0x10ffff})
	str := rapid.Custom(func(t *rapid.T) string { return string(rapid.SliceOfN(chars, 0, 4).Draw(t, "runes")) })
	rapid.Check(t, func(t *rapid.T) {
		a, b := str.Draw(t, "a"), str.Draw(t, "b")
		want := slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
		if got := compareUTF16(a, b); (got > 0) != (want > 0) || (got < 0) != (want < 0) {
			t.Fatalf("compareUTF16(%+q, %+q) = %d, want the sign of %d", a, b, got, want)
		}
	})
}

// What an append pays per event: both digests of a typical order event.
func BenchmarkDigests(b *testing.B) {
	data := []byte(`{"customer_id":"cust_456","items":[{"sku":"sku-1","quantity":2,"unit_price":1999},` +
		`{"sku":"sku-2","quantity":1,"unit_price":5999}],"total":9997,"shipping_address":{"name":"J. Smith",` +
		`"line1":"1 Main St","city":"Springfield","postal_code":"12345"}}`)
	meta := []byte(`{"actor":"token:ops","request_id":"0b6f3c1e-55a4-4f0e-9d7b-3c1f2a9e8d10","correlation_id":"0b6f3c1e-55a4-4f0e-9d7b-3c1f2a9e8d10"}`)
	b.SetBytes(int64(len(data) + len(meta)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Digests(data, meta); err != nil {
			b.Fatal(err)
		}
	}
}

// The same with jsontext's canonicalizer, for comparison.
func BenchmarkDigestsJSONText(b *testing.B) {
	data := []byte(`{"customer_id":"cust_456","items":[{"sku":"sku-1","quantity":2,"unit_price":1999},` +
		`{"sku":"sku-2","quantity":1,"unit_price":5999}],"total":9997,"shipping_address":{"name":"J. Smith",` +
		`"line1":"1 Main St","city":"Springfield","postal_code":"12345"}}`)
	meta := []byte(`{"actor":"token:ops","request_id":"0b6f3c1e-55a4-4f0e-9d7b-3c1f2a9e8d10","correlation_id":"0b6f3c1e-55a4-4f0e-9d7b-3c1f2a9e8d10"}`)
	b.SetBytes(int64(len(data) + len(meta)))
	b.ReportAllocs()
	for b.Loop() {
		for _, in := range [][]byte{data, meta} {
			v := jsontext.Value(bytes.Clone(in))
			if err := v.Canonicalize(); err != nil {
				b.Fatal(err)
			}
			sum := sha256.Sum256(v)
			_ = hex.EncodeToString(sum[:])
		}
	}
}

// appendTime is TimeFormat, in UTC, whatever the time's zone.
func TestAppendTime(t *testing.T) {
	zone := time.FixedZone("x", -5*3600-1800)
	for _, tm := range []time.Time{
		time.Date(2026, 12, 3, 14, 5, 9, 123456789, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, zone),
		time.Date(2026, 1, 1, 0, 0, 0, 1000, zone),
		time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format(TimeFormat); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}
