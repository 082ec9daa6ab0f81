package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle/console"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(console.Handler())
	defer srv.Close()
	tests := []struct {
		path, wantType, wantBody string
		wantCode                 int
	}{
		{"/", "text/html", `<script src="/console/app.js"`, 200},
		{"/console/app.js", "text/javascript", "/orders/", 200},
		{"/console/style.css", "text/css", "#diff", 200},
		{"/console/missing.js", "", "", 404},
		{"/orders", "", "", 404},
	}
	for _, tt := range tests {
		res, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tt.wantCode {
			t.Errorf("GET %s: %d, want %d", tt.path, res.StatusCode, tt.wantCode)
			continue
		}
		if tt.wantCode != 200 {
			continue
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, ct, tt.wantType)
		}
		if !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.wantBody)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tt.path, csp)
		}
	}
}

// TestNoExternalResources keeps the console self-contained: it must work
// with no network beyond the server itself.
func TestNoExternalResources(t *testing.T) {
	srv := httptest.NewServer(console.Handler())
	defer srv.Close()
	for _, path := range []string{"/", "/console/app.js", "/console/style.css"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			s := strings.ReplaceAll(string(body), "http://www.w3.org/2000/svg", "")
			if strings.Contains(s, bad) {
				t.Errorf("%s refers to %q: the console must not load anything from elsewhere", path, bad)
			}
		}
	}
}
