package timeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/timeline"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// raw is an event as appended, bypassing the domain, so that old schema
// versions and unknown types can be stored as they were once written.
type raw struct {
	typ    string
	schema int
	data   string
}

// cases are stored through a real store; each becomes testdata/NAME.txt and
// testdata/NAME.json.
var cases = []struct {
	name, orderID string
	events        []raw
}{
	{"api_example", "ord_123", []raw{
		{"OrderCreated", 3, `{"customer_id":"cust_456","currency":"USD","items":[],"total":9999}`},
		{"PaymentReceived", 1, `{"method":"card","amount":9999}`},
		{"OrderShipped", 1, `{"carrier":"fedex","tracking":"FX123"}`},
		{"OrderDelivered", 1, `{"signed_by":"J. Smith"}`},
	}},
	{"upcast_v1", "ord_legacy", []raw{
		// Schema v1 of OrderCreated: no currency, no items.
		{"OrderCreated", 1, `{"customer_id":"cust_9","total":4500}`},
		{"ItemAdded", 1, `{"sku":"SKU-1","quantity":2,"unit_price":2250}`},
		{"ShippingAddressChanged", 1, `{"name":"Ada Lovelace","line1":"12 St James's Sq","city":"London","postal_code":"SW1Y 4JH","country":"GB"}`},
		{"OrderCancelled", 1, `{"reason":"changed my mind, sorry"}`},
	}},
	{"items_eur", "ord_eur", []raw{
		{"OrderCreated", 3, `{"customer_id":"cust_7","currency":"EUR","items":[{"sku":"SKU-1","quantity":1,"unit_price":1050},{"sku":"SKU-2","quantity":3,"unit_price":5}],"total":1065}`},
		{"ItemRemoved", 1, `{"sku":"SKU-2"}`},
		{"PaymentReceived", 1, `{"method":"paypal","amount":1050}`},
	}},
	{"unknown_types", "ord_odd", []raw{
		{"OrderCreated", 2, `{"customer_id":"cust_1","currency":"USD","total":0}`},
		{"LoyaltyPointsAwarded", 1, `{"tier":"gold","points":120,"note":"","extra":{"a":[1,2]}}`},
		// A declared type at a schema version this build does not know.
		{"ItemAdded", 7, `{"sku":"SKU-9","qty":1}`},
		{"Audit", 1, `["not","an","object"]`},
	}},
}

func TestGolden(t *testing.T) {
	for _, tc := range cases {
		// One golden file per case: both backends must print it exactly.
		t.Run(tc.name, func(t *testing.T) {
			testbackends.ForEach(t, func(t *testing.T, store testbackends.Backend) {
				ctx := context.Background()
				stream := "order-" + tc.orderID
				for _, e := range tc.events {
					ev := chronicle.Event{Type: e.typ, SchemaVersion: e.schema, Data: json.RawMessage(e.data),
						Metadata: json.RawMessage(`{"correlation_id":"corr-1"}`)}
					if _, err := store.Append(ctx, stream, chronicle.Any, []chronicle.Event{ev}); err != nil {
						t.Fatalf("append %s: %v", e.typ, err)
					}
				}
				tl, err := timeline.Load(ctx, store, order.NewRegistry(), tc.orderID, stream, chronicle.ReadStreamOptions{})
				if err != nil {
					t.Fatal(err)
				}
				golden(t, tc.name+".txt", []byte(tl.Text()))
				var js bytes.Buffer
				if err := tl.WriteJSON(&js); err != nil {
					t.Fatal(err)
				}
				golden(t, tc.name+".json", normalize(t, js.Bytes()))
			})
		})
	}
}

// TestAPIExample pins the text of API.md itself, independently of the
// golden files, which -update could silently change.
func TestAPIExample(t *testing.T) {
	want := `ord_123:
  v1 OrderCreated {customer: cust_456, total: $99.99}
  v2 PaymentReceived {method: card, amount: $99.99}
  v3 OrderShipped {carrier: fedex, tracking: FX123}
  v4 OrderDelivered {signed_by: J. Smith}
`
	got, err := os.ReadFile(filepath.Join("testdata", "api_example.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("api_example.txt differs from API.md (-want +got):\n%s", cmp.Diff(want, string(got)))
	}
}

func TestUpcastedV1(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, store testbackends.Backend) { testUpcastedV1(t, store) })
}

func testUpcastedV1(t *testing.T, store testbackends.Backend) {
	ctx := context.Background()
	v1 := chronicle.Event{Type: "OrderCreated", SchemaVersion: 1, Data: json.RawMessage(`{"customer_id":"cust_9","total":4500}`)}
	if _, err := store.Append(ctx, "order-ord_v1", chronicle.NoStream, []chronicle.Event{v1}); err != nil {
		t.Fatal(err)
	}
	tl, err := timeline.Load(ctx, store, order.NewRegistry(), "ord_v1", "order-ord_v1", chronicle.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := tl.Events[0]
	cur, _ := order.SchemaVersion("OrderCreated")
	if first.SchemaVersion != cur || first.StoredSchemaVersion != 1 {
		t.Errorf("schema_version %d (stored %d), want %d (stored 1)", first.SchemaVersion, first.StoredSchemaVersion, cur)
	}
	var data map[string]any
	if err := json.Unmarshal(first.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data["currency"] != "USD" || data["items"] == nil {
		t.Errorf("data %v: want currency USD and items added by the upcasters", data)
	}
}

func TestLoadNotFound(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, store testbackends.Backend) {
		_, err := timeline.Load(context.Background(), store, nil, "ord_none", "order-ord_none", chronicle.ReadStreamOptions{})
		if !errors.Is(err, chronicle.ErrStreamNotFound) {
			t.Errorf("Load of a missing stream: %v, want ErrStreamNotFound", err)
		}
	})
}

func TestFormatMoney(t *testing.T) {
	tests := []struct {
		minor    int64
		currency string
		want     string
	}{
		{9999, "USD", "$99.99"},
		{0, "", "$0.00"},
		{5, "USD", "$0.05"},
		{-150, "USD", "-$1.50"},
		{123456789, "EUR", "1234567.89 EUR"},
		{-9223372036854775808, "USD", "-$92233720368547758.08"},
	}
	for _, tt := range tests {
		if got := timeline.FormatMoney(tt.minor, tt.currency); got != tt.want {
			t.Errorf("FormatMoney(%d, %q) = %q, want %q", tt.minor, tt.currency, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		typ, data, want string
	}{
		{"OrderCreated", `{"customer_id":"c","items":[{}],"total":100}`, "{customer: c, items: 1, total: $1.00}"},
		{"PaymentReceived", `{"method":"card","amount":"12"}`, "{method: card, amount: 12}"},
		{"OrderDelivered", `{"other":true}`, "{other: true}"},
		{"Custom", `{"b":"x y","a":null,"c":" pad"}`, `{a: null, b: x y, c: " pad"}`},
		{"Custom", `{}`, "{}"},
		{"Custom", `42`, "42"},
	}
	for _, tt := range tests {
		if got := timeline.Summary(tt.typ, json.RawMessage(tt.data), "USD"); got != tt.want {
			t.Errorf("Summary(%s, %s) = %q, want %q", tt.typ, tt.data, got, tt.want)
		}
	}
}

// normalize replaces what differs from run to run (event ids, times) with
// placeholders, so the JSON golden files are stable.
func normalize(t *testing.T, b []byte) []byte {
	t.Helper()
	b = eventIDRE.ReplaceAll(b, []byte(`"event_id": "<event_id>"`))
	// Hashes cover event ids and times; a version 1's prev_hash (zeros) stays.
	b = hashRE.ReplaceAllFunc(b, func(m []byte) []byte {
		if bytes.HasSuffix(m, []byte(strings.Repeat("0", 64)+`"`)) {
			return m
		}
		return hashRE.ReplaceAll(m, []byte(`"$1": "<$1>"`))
	})
	return recordedAtRE.ReplaceAll(b, []byte(`"recorded_at": "<recorded_at>"`))
}

var (
	eventIDRE    = regexp.MustCompile(`"event_id": "[0-9a-f-]{36}"`)
	recordedAtRE = regexp.MustCompile(`"recorded_at": "[0-9T:.Z-]+"`)
	hashRE       = regexp.MustCompile(`"(hash|prev_hash)": "[0-9a-f]{64}"`)
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (-want +got):\n%s", path, cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")))
	}
}

// unsafeRunes are the characters free text may not hold (API.md): C0, DEL,
// C1, bidirectional overrides and isolates, line and paragraph separators.
func unsafeRune(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) ||
		(r >= 0x2066 && r <= 0x2069) || r == 0x2028 || r == 0x2029
}

// TestTextEscapesUnsafe: events stored before free text was checked (here
// appended past the domain) print with every control, bidi and separator
// character escaped, in values, keys, nested JSON and type names, so one
// event stays one line and reads as what it holds.
func TestTextEscapesUnsafe(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, store testbackends.Backend) {
		ctx := context.Background()
		events := []raw{
			{"OrderCreated", 3, `{"customer_id":"cust_1","currency":"USD","items":[],"total":100}`},
			{"ShippingAddressChanged", 1, `{"name":"\u202eevil\u202c","line1":"l","city":"Line\u2028Two","postal_code":"p","country":"U\u0085S"}`},
			{"PaymentReceived", 1, "{\"method\":\"card\u2066x\u2069\",\"amount\":100}"},
			{"OrderCancelled", 1, `{"reason":"a\nb\u001b[31mred\u009b"}`},
			{"Note\u202e", 1, "{\"k\u2029ey\":{\"nested\":\"x\u202ay\u007f\"},\"list\":[\"\u2028\"]}"},
		}
		for _, e := range events {
			ev := chronicle.Event{Type: e.typ, SchemaVersion: e.schema, Data: json.RawMessage(e.data)}
			if _, err := store.Append(ctx, "order-ord_bidi", chronicle.Any, []chronicle.Event{ev}); err != nil {
				t.Fatalf("append %s: %v", e.typ, err)
			}
		}
		tl, err := timeline.Load(ctx, store, order.NewRegistry(), "ord_bidi", "order-ord_bidi", chronicle.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		text := tl.Text()
		if i := strings.IndexFunc(strings.ReplaceAll(text, "\n", ""), unsafeRune); i >= 0 {
			t.Errorf("text holds an unescaped %U:\n%q", []rune(strings.ReplaceAll(text, "\n", "")[i:])[0], text)
		}
		if n := strings.Count(text, "\n"); n != len(events)+1 {
			t.Errorf("%d lines for %d events:\n%s", n, len(events), text)
		}
		for _, want := range []string{`\u202e`, `\u2028`, `\u0085`, `\u2066`, `\n`, `\x1b`, `\u009b`, `\u2029`, `\u202a`, `\u007f`} {
			if !strings.Contains(text, want) {
				t.Errorf("text lacks the escape %s:\n%s", want, text)
			}
		}
	})
}
