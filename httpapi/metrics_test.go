package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMetricsLabelsAreBounded: requests with invented methods and paths add
// no series to /metrics, whatever their number; a label holds a known
// method (or "other") and a route pattern, never what the client sent.
func TestMetricsLabelsAreBounded(t *testing.T) {
	ts := httptest.NewServer(newFakeServer(t, Options{}))
	defer ts.Close()

	invent := func(from, to int) {
		for i := from; i < to; i++ {
			method := fmt.Sprintf("INVENTED%d", i)
			for _, path := range []string{fmt.Sprintf("/no/such/%d", i), "/healthz", "/orders/o1"} {
				got := doHTTP(t, ts.URL, req{method: method, path: path})
				if got.status < 400 {
					t.Fatalf("%s %s: %d", method, path, got.status)
				}
			}
		}
	}
	invent(0, 2)
	httpSeries(t, ts.URL) // the scrape's own series, from here on counted
	before := httpSeries(t, ts.URL)
	invent(2, 60)
	after := httpSeries(t, ts.URL)
	if len(after) != len(before) {
		t.Errorf("%d series after 2 invented methods, %d after 60: the label set grows with the input\n%s", len(before), len(after), strings.Join(after, "\n"))
	}
	for _, s := range after {
		if strings.Contains(s, "INVENTED") || strings.Contains(s, "/no/such/") {
			t.Errorf("a series carries the client's method or path: %s", s)
			break
		}
	}
}

// httpSeries returns the chronicle_http_* series lines of a scrape.
func httpSeries(t *testing.T, base string) []string {
	t.Helper()
	got := doHTTP(t, base, req{method: http.MethodGet, path: "/metrics"})
	if got.status != 200 {
		t.Fatalf("GET /metrics: %d", got.status)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(got.body))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "chronicle_http_") {
			out = append(out, l)
		}
	}
	return out
}
