package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secret is a password or token no output may hold, even in part.
const secret = "Zq9Xw7Vk4Jh2Tb"

// leaks reports which pieces of secret (4 bytes or longer) out holds.
func leaks(out, secret string) []string {
	var got []string
	for i := 0; i+4 <= len(secret); i++ {
		if strings.Contains(out, secret[i:i+4]) {
			got = append(got, secret[i:i+4])
		}
	}
	return got
}

// TestSecretsStayOutOfOutput: a password in a store URL (as userinfo or as
// a password= parameter, in a URL that parses or one that does not) and a
// token in a malformed entry appear nowhere in what the CLI prints: not
// in serve's logs, not in any command's output or error.
func TestSecretsStayOutOfOutput(t *testing.T) {
	storeURLs := []string{
		"postgres://alice:" + secret + "@127.0.0.1:1/db?sslmode=disable",
		"postgres://alice@127.0.0.1:1/db?sslmode=disable&password=" + secret,
		"postgres://alice:" + secret + "@127.0.0.1:1/db?sslmode=bogus",
		"postgres://alice:" + secret + "@127.0.0.1:badport/db",
		"postgres://alice:" + secret + "%zz@127.0.0.1:1/db",
		"postgres://alice:" + secret + "@[::1:1/db",
		"postgres://alice:pw/" + secret + "@127.0.0.1:1/db",
		"postgresql://alice@127.0.0.1:1/db?sslpassword=" + secret + "&password=" + secret,
	}
	commands := [][]string{
		{"serve", "--addr", "127.0.0.1:0"},
		{"timeline", "o1"},
		{"projections", "list"},
		{"projections", "rebuild", "order_summaries"},
		{"verify"},
		{"demo", "--orders", "1"},
	}
	for _, u := range storeURLs {
		for _, args := range commands {
			for _, via := range []string{"flag", "env"} {
				env := map[string]string{}
				a := append([]string(nil), args...)
				if via == "flag" {
					a = append(a, "--store", u)
				} else {
					env["CHRONICLE_STORE"] = u
				}
				stdout, stderr, code := newCLI(t, env).run(a...)
				if code == 0 {
					t.Errorf("chronicle %s on %s: exit 0", strings.Join(args, " "), via)
				}
				if l := leaks(stdout+stderr, secret); l != nil {
					t.Errorf("chronicle %s, store by %s %q: the output holds %q:\n%s%s", strings.Join(args, " "), via, u, l, stdout, stderr)
				}
			}
		}
	}

	dir := t.TempDir()
	for _, entry := range []string{
		"admin:" + secret,         // role and secret swapped
		secret + ":" + secret,     // no role
		secret + " x:read",        // a space
		secret + "\x01:write",     // a control character
		secret,                    // no colon
		"name:" + secret + ":bad", // a named entry with a bad role
	} {
		file := filepath.Join(dir, "tokens")
		if err := os.WriteFile(file, []byte("# tokens\nok-secret:read\n"+entry+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			env  map[string]string
			args []string
			want string
		}{
			{map[string]string{"CHRONICLE_TOKENS": "ok-secret:read," + entry}, nil, "entry 2"},
			{nil, []string{"--tokens-file", file}, "line 3"},
		} {
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--store", tempStore(t)}, tt.args...)
			_, stderr, code := newCLI(t, tt.env).run(args...)
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("token entry %q: exit %d, stderr %q, want it to name %s", entry, code, stderr, tt.want)
			}
			if l := leaks(stderr, secret); l != nil {
				t.Errorf("token entry %q: stderr holds %q: %s", entry, l, stderr)
			}
		}
	}
}

// TestServeLogsNoPassword: serve on PostgreSQL, with the password in the
// URL's userinfo or in a password= parameter, logs where its store is
// without the password.
func TestServeLogsNoPassword(t *testing.T) {
	u, err := url.Parse(pgStoreURL(t))
	if err != nil {
		t.Fatal(err)
	}
	// The test server's own password if it needs one; else any password,
	// which a server that trusts loopback ignores.
	pw, ok := u.User.Password()
	if !ok {
		pw = secret
	}
	asUserinfo := *u
	asUserinfo.User = url.UserPassword(u.User.Username(), pw)
	asParam := *u
	asParam.User = url.User(u.User.Username())
	q := asParam.Query()
	q.Set("password", pw)
	asParam.RawQuery = q.Encode()
	key := masterKeyFile(t)
	for _, store := range []string{asUserinfo.String(), asParam.String()} {
		ctx, cancel := context.WithCancel(context.Background())
		var stderr bytes.Buffer
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &lockedWriter{w: &stderr}, Getenv: func(string) string { return "" },
			Ready: func(string) { cancel() }}
		err := m.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--store", store, "--master-key", key, "--log-level", "debug"})
		cancel()
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		logs := stderr.String()
		if !strings.Contains(logs, "store open") {
			t.Fatalf("no store line in the log:\n%s", logs)
		}
		if l := leaks(logs, pw); l != nil {
			t.Errorf("the log holds %q of the password:\n%s", l, logs)
		}
	}
}
