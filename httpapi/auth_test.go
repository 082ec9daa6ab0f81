package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	got, err := ParseTokens(" s1:admin, ops:s:2:read ,,ci.bot-1:s3:write")
	if err != nil {
		t.Fatal(err)
	}
	want := []Token{
		{Name: TokenName("s1"), Secret: "s1", Role: RoleAdmin},
		{Name: "ops", Secret: "s:2", Role: RoleRead},
		{Name: "ci.bot-1", Secret: "s3", Role: RoleWrite},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d tokens, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("token %d: got %v %q, want %v %q", i, got[i], got[i].Secret, want[i], want[i].Secret)
		}
	}
	// The unnamed token's name: "token-" and SHA-256("s1")'s first 8 hex digits.
	if got, want := TokenName("s1"), "token-e8bc163c"; got != want {
		t.Errorf("TokenName(s1) = %s, want %s", got, want)
	}
	// Each malformed entry is named by its index and quotes no part of
	// its secret ("Sekr3t" here, wherever it sits).
	for _, c := range []struct{ in, entry string }{
		{"ok:read,Sekr3t", "entry 2"},
		{":admin", "entry 1"},
		{"a:read,b:read,Sekr3t:root", "entry 3"},
		{"Sekr3t p:read", "entry 1"},
		{"Sekr3t:", "entry 1"},
		{"admin:Sekr3t", "entry 1"},
		{"Sekr3t:x:read", "entry 1"},            // the name is not lower case
		{"ok:read,n:Sekr3t:admin:x", "entry 2"}, // the role is not last
		{"name::read", "entry 1"},
		{strings.Repeat("n", 65) + ":Sekr3t:read", "entry 1"},
		{"a:Sekr3t:read,a:other:read", "entry 2"},   // a name used twice
		{"a:Sekr3t:read,b:Sekr3t:admin", "entry 2"}, // a secret used twice
	} {
		_, err := ParseTokens(c.in)
		if err == nil {
			t.Errorf("ParseTokens(%q): no error", c.in)
			continue
		}
		if !strings.Contains(err.Error(), c.entry) {
			t.Errorf("ParseTokens(%q): %v, want it to name %s", c.in, err, c.entry)
		}
		for _, part := range []string{"Sekr3t", "Sekr", "kr3t"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("ParseTokens(%q): error quotes the secret: %v", c.in, err)
			}
		}
	}
	if s := (Token{Name: "n", Secret: "topsecret", Role: RoleRead}).String(); strings.Contains(s, "topsecret") {
		t.Errorf("Token.String shows the secret: %s", s)
	}
}

func TestReadTokens(t *testing.T) {
	got, err := ReadTokens(strings.NewReader("# tokens\n\nalpha:read\n  ops:beta:admin  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (Token{TokenName("alpha"), "alpha", RoleRead}) || got[1] != (Token{"ops", "beta", RoleAdmin}) {
		t.Errorf("got %v", got)
	}
	for _, in := range []string{"ok:read\nSekr3t\n", "ok:read\nBad Name:Sekr3t:read\n", "a:x:read\na:Sekr3t:read\n"} {
		_, err := ReadTokens(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("ReadTokens(%q): error %v, want one naming line 2", in, err)
		}
		if err != nil && strings.Contains(err.Error(), "Sekr3t") {
			t.Errorf("ReadTokens(%q): error quotes the secret: %v", in, err)
		}
	}
}

// TestAuth sends a request to every registered route with no token, a
// wrong token and a token of each role: 401 without a valid token, 403
// when the role is too low, and never either on /healthz, /readyz,
// /metrics. Secrets never reach the log.
func TestAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		tokens := []Token{{"r", "r-secret-1", RoleRead}, {"w", "w-secret-2", RoleWrite}, {"a", "a-secret-3", RoleAdmin}}
		e := newEnv(t, open(), func(o *Options) { o.Tokens = tokens })
		if !e.server.AuthEnabled() {
			t.Fatal("AuthEnabled is false with tokens")
		}
		admin := map[string]string{"Authorization": "Bearer a-secret-3"}
		e.mustDo(req{method: "POST", path: "/orders", body: `{"order_id":"o1","customer_id":"c","total":100}`, header: admin}, 201)

		bearers := []struct {
			name   string
			header string
			role   Role
		}{
			{"no token", "", RoleNone},
			{"wrong token", "Bearer nope", RoleNone},
			{"wrong scheme", "Basic r-secret-1", RoleNone},
			{"read", "Bearer r-secret-1", RoleRead},
			{"write", "Bearer w-secret-2", RoleWrite},
			{"admin", "bearer a-secret-3", RoleAdmin},
		}
		for _, rt := range e.server.routes {
			r := sampleRequest(rt.pattern)
			for _, b := range bearers {
				t.Run(rt.pattern+"/"+b.name, func(t *testing.T) {
					r := r
					r.header = map[string]string{}
					if b.header != "" {
						r.header["Authorization"] = b.header
					}
					got := e.do(r)
					switch {
					case rt.role == RoleNone || b.role >= rt.role:
						if got.status == 401 || got.status == 403 {
							t.Errorf("%s: status %d, want access\n%s", b.name, got.status, got.body)
						}
					case b.role == RoleNone:
						isProblem(t, got, http.StatusUnauthorized)
						if got.header.Get("WWW-Authenticate") == "" {
							t.Error("401 without WWW-Authenticate")
						}
					default:
						isProblem(t, got, http.StatusForbidden)
					}
				})
			}
		}
		logs := e.logs.String()
		for _, tok := range tokens {
			if strings.Contains(logs, tok.Secret) {
				t.Errorf("the log holds the secret of the %s token", tok.Role)
			}
		}
	})
}

// sampleRequest returns a plausible request for a route pattern.
func sampleRequest(pattern string) req {
	method, path, _ := strings.Cut(pattern, " ")
	path = strings.NewReplacer("{id}", "o1", "{sku}", "SKU-1", "{name}", "order_summaries", "{asset...}", "app.js", "{$}", "").Replace(path)
	r := req{method: method, path: path}
	switch {
	case strings.HasSuffix(path, "/items") && method == "POST":
		r.body = `{"sku":"X","quantity":1,"unit_price":1}`
	case path == "/orders" && method == "POST":
		r.body = `{"customer_id":"c"}`
	case strings.HasSuffix(path, "/shipping-address"):
		r.body = `{"name":"n","line1":"l","city":"c","postal_code":"p","country":"US"}`
	case strings.HasSuffix(path, "/payments"):
		r.body = `{"method":"card","amount":100}`
	case strings.HasSuffix(path, "/shipments"):
		r.body = `{"carrier":"c","tracking":"t"}`
	case strings.HasSuffix(path, "/delivery"):
		r.body = `{"signed_by":"s"}`
	case strings.HasSuffix(path, "/cancellation"):
		r.body = `{"reason":"r"}`
	}
	return r
}

// TestTokenErrorsQuoteNoSecret: a malformed entry is named by its place
// (entry index, line number), never by any part of its text, since which
// part is the secret is unknown.
func TestTokenErrorsQuoteNoSecret(t *testing.T) {
	const secret = "Zq9Xw7Vk4Jh2Tb"
	for _, entry := range []string{"admin:" + secret, secret + ":" + secret, secret + " x:read", secret + "\x01:read", secret, secret + ":"} {
		_, err := ParseTokens("ok:read," + entry)
		if err == nil || !strings.Contains(err.Error(), "entry 2") {
			t.Errorf("ParseTokens(%q): %v, want an error naming entry 2", entry, err)
		}
		_, ferr := ReadTokens(strings.NewReader("ok:read\n" + entry + "\n"))
		if ferr == nil || !strings.Contains(ferr.Error(), "line 2") {
			t.Errorf("ReadTokens(%q): %v, want an error naming line 2", entry, ferr)
		}
		for _, e := range []error{err, ferr} {
			if e != nil && strings.Contains(e.Error(), secret[:4]) {
				t.Errorf("entry %q: the error quotes the secret: %v", entry, e)
			}
		}
	}
}
