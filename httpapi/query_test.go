package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestQueryReadOneWay: API.md, "a proxy and the server must never read one
// request two ways". Every GET route refuses a repeated query parameter
// (which one counts?), one it does not take (a misspelt filter would be
// ignored) and a query that does not parse, with 400 problem details
// naming the parameter, as GET /events always did; the same request
// without them answers 200. On both backends.
func TestQueryReadOneWay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open(), func(o *Options) { o.MinVersionWait = 200 * time.Millisecond })
		e.create("q1")
		at := url.QueryEscape(time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
		for _, c := range []struct {
			path     string // answers 200
			repeated string // a parameter it takes, given once more
		}{
			{"/orders?status=created&customer_id=cust_1&limit=5", "status=paid"},
			{"/orders?limit=5", "limit=6"},
			{"/orders/q1", ""},
			{"/orders/q1?version=1", "version=1"},
			{"/orders/q1?as_of=" + at, "as_of=" + at},
			{"/orders/q1?min_version=1", "min_version=9"},
			{"/orders/q1/events?format=text", "format=json"},
			{"/stats/order-status?at=" + at, "at=" + at},
			{"/events?limit=1", "limit=2"},
			{"/audit/seals?after=0&limit=5", "after=1"},
			{"/audit/public-keys", ""},
			{"/projections", ""},
			{"/openapi.json", ""},
			{"/healthz", ""},
			{"/readyz", ""},
			{"/metrics", ""},
		} {
			sep := "?"
			if strings.Contains(c.path, "?") {
				sep = "&"
			}
			t.Run(c.path, func(t *testing.T) {
				e.mustDo(req{method: "GET", path: c.path}, http.StatusOK)
				bad := map[string]string{
					"unknown":    c.path + sep + "colour=red",
					"other case": c.path + sep + "Limit=5",
					"semicolon":  c.path + sep + "a=1;b=2",
					"bad escape": c.path + sep + "a=%zz",
				}
				if c.repeated != "" {
					bad["repeated"] = c.path + sep + c.repeated
				}
				for name, path := range bad {
					got := e.do(req{method: "GET", path: path})
					m := isProblem(t, got, http.StatusBadRequest)
					if name == "repeated" || name == "unknown" {
						want, _, _ := strings.Cut(c.repeated, "=")
						if name == "unknown" {
							want = "colour"
						}
						if m["field"] != want {
							t.Errorf("%s: field %v, want %q: %s", path, m["field"], want, got.body)
						}
					}
				}
			})
		}
		// The console's page takes any query: a link may carry one.
		e.mustDo(req{method: "GET", path: "/?utm_source=mail"}, http.StatusOK)
	})
}

// TestAuthorizationOnce: two Authorization headers are 400 on a route that
// needs a role, with auth on or off: a proxy might check one and the
// server the other.
func TestAuthorizationOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		store := open()
		for _, auth := range []bool{false, true} {
			e := newEnv(t, store, func(o *Options) {
				if auth {
					o.Tokens = []Token{{Name: "ops", Secret: "s3cret", Role: RoleAdmin}, {Name: "viewer", Secret: "r3ad", Role: RoleRead}}
				}
			})
			do := func(path string, tokens ...string) resp {
				t.Helper()
				hr, err := http.NewRequest("GET", e.ts.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, tok := range tokens {
					hr.Header.Add("Authorization", "Bearer "+tok)
				}
				res, err := http.DefaultClient.Do(hr)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				return resp{status: res.StatusCode, header: res.Header}
			}
			if got := do("/projections", "s3cret"); got.status != http.StatusOK {
				t.Errorf("auth %v, one token: %d, want 200", auth, got.status)
			}
			for _, tokens := range [][]string{{"s3cret", "s3cret"}, {"r3ad", "s3cret"}, {"nope", "s3cret"}} {
				if got := do("/projections", tokens...); got.status != http.StatusBadRequest {
					t.Errorf("auth %v, Authorization %v: %d, want 400", auth, tokens, got.status)
				}
			}
			// Routes that need no role read no Authorization.
			if got := do("/healthz", "a", "b"); got.status != http.StatusOK {
				t.Errorf("auth %v, /healthz with two: %d, want 200", auth, got.status)
			}
			e.stop()
		}
	})
}
