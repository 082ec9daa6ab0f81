package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// sendAs sends method path with body, its Content-Type (none when ""),
// and the Host header host (the server's address when "").
func sendAs(t *testing.T, base, method, path, contentType, body, host string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	hr, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		hr.Header.Set("Content-Type", contentType)
	}
	if host != "" {
		hr.Host = host
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// TestCrossSiteRequestsRefused: what a web page can make a browser send
// without a preflight (a text/plain, form or typeless body) is 415, and
// with auth off a Host other than the loopback names is 421 (DNS
// rebinding); either way nothing is written.
func TestCrossSiteRequestsRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("o1")
		e.create("o9")
		create := `{"order_id":"o2","customer_id":"c","items":[{"sku":"A","quantity":1,"unit_price":5}]}`
		for _, c := range []struct {
			name, method, path, contentType, body, host string
			want                                        int
		}{
			{"text/plain", "POST", "/orders", "text/plain", create, "", 415},
			{"text/plain with charset", "POST", "/orders", "text/plain; charset=utf-8", create, "", 415},
			{"no Content-Type", "POST", "/orders", "", create, "", 415},
			{"form", "POST", "/orders", "application/x-www-form-urlencoded", create, "", 415},
			{"multipart", "POST", "/orders", "multipart/form-data; boundary=x", create, "", 415},
			{"JSON in another charset", "POST", "/orders", "application/json; charset=latin1", create, "", 415},
			{"JSON look-alike", "POST", "/orders", "application/jsonx", create, "", 415},
			{"text/plain on a PUT", "PUT", "/orders/o1/shipping-address", "text/plain", `{"name":"n","line1":"l","city":"c","postal_code":"p","country":"US"}`, "", 415},
			{"text/plain on a cancellation", "POST", "/orders/o1/cancellation", "text/plain", `{"reason":"x"}`, "", 415},
			{"text/plain on a rebuild", "POST", "/projections/order_summaries/rebuild", "text/plain", `{}`, "", 415},
			{"foreign Host", "POST", "/orders", "application/json", create, "evil.example", 421},
			{"foreign Host with port", "POST", "/orders/o1/cancellation", "application/json", `{"reason":"x"}`, "evil.example:8080", 421},
			{"rebinding name for loopback", "POST", "/orders", "application/json", create, "127.0.0.1.nip.io", 421},
			{"foreign Host reading", "GET", "/orders/o1", "", "", "evil.example", 421},
			{"foreign Host on the console", "GET", "/", "", "", "evil.example", 421},
			{"foreign Host on no route", "GET", "/nothing", "", "", "evil.example", 421},
			{"other loopback address by name", "GET", "/orders/o1", "", "", "127.0.0.2", 421},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := e.logSize()
				got := sendAs(t, e.ts.URL, c.method, c.path, c.contentType, c.body, c.host)
				isProblem(t, got, c.want)
				if after := e.logSize(); after != before {
					t.Errorf("appended: %v events, was %v", after, before)
				}
			})
		}

		for _, c := range []struct {
			name, method, path, contentType, body, host string
			want                                        int
		}{
			{"JSON with charset", "POST", "/orders", "application/json; charset=utf-8", `{"order_id":"o3","customer_id":"c"}`, "", 201},
			{"JSON in capitals", "POST", "/orders", "Application/JSON; Charset=UTF-8", `{"order_id":"o4","customer_id":"c"}`, "", 201},
			{"no body, no Content-Type", "DELETE", "/orders/o9/items/SKU-1", "", "", "", 200},
			{"a rebuild takes no body", "POST", "/projections/order_summaries/rebuild?wait=true", "", "", "", 200},
			{"localhost", "GET", "/orders/o1", "", "", "localhost:8080", 200},
			{"LOCALHOST without port", "GET", "/orders/o1", "", "", "LOCALHOST", 200},
			{"127.0.0.1", "POST", "/orders", "application/json", `{"order_id":"o5","customer_id":"c"}`, "127.0.0.1:1", 201},
			{"[::1]", "GET", "/orders/o1", "", "", "[::1]:8080", 200},
			{"[::1] without port", "GET", "/healthz", "", "", "[::1]", 200},
		} {
			t.Run(c.name, func(t *testing.T) {
				got := sendAs(t, e.ts.URL, c.method, c.path, c.contentType, c.body, c.host)
				if got.status != c.want {
					t.Errorf("status %d, want %d\n%s", got.status, c.want, got.body)
				}
			})
		}
	})
}

// TestAnyHostWithAuth: with tokens the Host is not checked (a proxy may
// name the server anything); the token is what protects it.
func TestAnyHostWithAuth(t *testing.T) {
	ts := newAuthFakeServer(t)
	got := sendAs(t, ts, "GET", "/healthz", "", "", "chronicle.example.com")
	if got.status != 200 {
		t.Errorf("GET /healthz as chronicle.example.com: %d\n%s", got.status, got.body)
	}
	isProblem(t, sendAs(t, ts, "POST", "/orders", "application/json", `{}`, "chronicle.example.com"), http.StatusUnauthorized)
}

func newAuthFakeServer(t *testing.T) string {
	t.Helper()
	ts := httptest.NewServer(newFakeServer(t, Options{Tokens: []Token{{Secret: "s", Role: RoleAdmin}}}))
	t.Cleanup(ts.Close)
	return ts.URL
}
