package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-es/chronicle/personal"
)

// pgStoreURL returns a store URL for a fresh schema of the test PostgreSQL,
// dropped when t ends; it skips t when CHRONICLE_TEST_POSTGRES is unset.
func pgStoreURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("CHRONICLE_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CHRONICLE_TEST_POSTGRES is not set in CI: the PostgreSQL tests must run there")
		}
		t.Skip("CHRONICLE_TEST_POSTGRES is not set: no PostgreSQL to test against (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "cli_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// keyEnv is an environment naming a new master key file, which every
// command needs on a PostgreSQL store.
func keyEnv(t *testing.T) map[string]string {
	return map[string]string{"CHRONICLE_MASTER_KEY_FILE": masterKeyFile(t)}
}

// masterKeyFile returns a new master key file (PostgreSQL stores need one
// given).
func masterKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, personal.NewMasterKey(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPostgres runs the read-only and operations commands on PostgreSQL,
// with serve writing to the same schema meanwhile.
func TestPostgres(t *testing.T) {
	store := pgStoreURL(t)
	key := masterKeyFile(t)
	c := newCLI(t, map[string]string{"CHRONICLE_STORE": store, envMasterKey: key})
	appendRaw(t, store, "ord_pg1",
		ev("OrderCreated", 1, `{"customer_id":"cust_456","total":9999}`),
		ev("PaymentReceived", 1, `{"method":"card","amount":9999}`),
	)
	out, stderr, code := c.run("timeline", "ord_pg1")
	want := "ord_pg1:\n  v1 OrderCreated {customer: cust_456, total: $99.99}\n  v2 PaymentReceived {method: card, amount: $99.99}\n"
	if code != 0 || out != want {
		t.Errorf("timeline on PostgreSQL: exit %d, %s\n%s", code, stderr, out)
	}
	if out, stderr, code := c.run("demo", "--orders", "30"); code != 0 {
		t.Fatalf("demo: exit %d: %s %s", code, out, stderr)
	}
	for _, args := range [][]string{
		{"projections", "rebuild", "order_summaries"},
		{"projections", "rebuild", "order_status_history"},
		{"projections", "list"},
		{"verify"},
	} {
		if out, stderr, code := c.run(args...); code != 0 {
			t.Errorf("chronicle %s: exit %d:\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
	}

	base := startInProcess(t, map[string]string{"CHRONICLE_STORE": store, envMasterKey: key})
	id := createOrderOverHTTP(t, base)
	out, _, code = c.run("timeline", id)
	if code != 0 || !strings.Contains(out, "v1 OrderCreated {customer: cust_live, items: 1, total: $25.00}") {
		t.Errorf("timeline of an order created over HTTP: exit %d:\n%s", code, out)
	}
}
