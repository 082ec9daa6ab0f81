package projection_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/internal/viewtest"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// rebuildHelperEnv tells the rebuild helper process its store:
// "sqlite:PATH" or "postgres:SCHEMA".
const rebuildHelperEnv = "CHRONICLE_PROJECTION_REBUILD_HELPER"

// TestRebuildHelperProcess is not a test: TestShadowTablesAfterKill runs
// the test binary with it as a process that stops in the middle of a
// rebuild, then kills it.
func TestRebuildHelperProcess(t *testing.T) {
	arg := os.Getenv(rebuildHelperEnv)
	if arg == "" {
		t.Skip("helper process for TestShadowTablesAfterKill")
	}
	backend, where, _ := strings.Cut(arg, ":")
	var s chronicle.Store
	if backend == "sqlite" {
		s = openSQLiteFile(t, where)
	} else {
		s = viewtest.OpenPostgresSchema(t, where)
	}
	r := newRunner(t, s, projection.Options{RebuildBatchSize: 10})
	// Bounded in case the parent dies without killing us.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r.Rebuild(ctx, orderview.SummariesName, func(projection.Progress) {
		fmt.Println("rebuilding")
		<-ctx.Done()
	})
}

func openSQLiteFile(t testing.TB, path string) testbackends.Backend {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		t.Fatalf("sqlitestore.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// shadowTables lists the tables that are neither the store's nor a live
// read model's: rebuilds' shadow tables.
func shadowTables(t testing.TB, b chronicle.SQLDatabase) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if b.Dialect() == "postgres" {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
	}
	rows, err := b.SQLDB().Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{orderview.SummariesName, orderview.HistoryName} {
			if strings.HasPrefix(name, table+"_") {
				out = append(out, name)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A process killed in the middle of a rebuild leaves shadow tables: the
// next start drops them, as does the next rebuild of a process already
// running, but neither drops those of a rebuild still running elsewhere.
func TestShadowTablesAfterKill(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var b testbackends.Backend
			var where, schema string
			if backend == "sqlite" {
				where = filepath.Join(t.TempDir(), "chronicle.db")
				b = openSQLiteFile(t, where)
			} else {
				b = testbackends.Postgres(t, testbackends.Options{})
				schema = b.(*pgstore.Store).Schema()
				where = schema
			}
			ctx := context.Background()
			running := newRunner(t, b, projection.Options{})
			if err := viewtest.NewWorkload(41, "kill").Run(ctx, b, 200); err != nil {
				t.Fatal(err)
			}
			for round, cleanup := range []string{"start", "rebuild"} {
				helper := exec.Command(os.Args[0], "-test.run=^TestRebuildHelperProcess$")
				helper.Env = append(os.Environ(), rebuildHelperEnv+"="+backend+":"+where)
				helper.Stderr = os.Stderr
				out, err := helper.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := helper.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
				mid := make(chan bool, 1)
				go func() {
					sc := bufio.NewScanner(out)
					for sc.Scan() {
						if sc.Text() == "rebuilding" {
							mid <- true
							break
						}
					}
					mid <- false
					for sc.Scan() { // drain
					}
				}()
				select {
				case ok := <-mid:
					if !ok {
						t.Fatal("the helper process ended before its rebuild was under way")
					}
				case <-time.After(60 * time.Second):
					t.Fatal("the helper process's rebuild not under way within 60 s")
				}
				shadows := shadowTables(t, b)
				if len(shadows) == 0 {
					t.Fatal("no shadow table in the middle of the helper's rebuild")
				}
				// The helper is alive: neither a start nor a rebuild here
				// touches its tables.
				other := newRunner(t, b, projection.Options{})
				if err := other.Rebuild(ctx, orderview.HistoryName, nil); err != nil {
					t.Fatal(err)
				}
				if got := shadowTables(t, b); !equalSets(got, shadows) {
					t.Fatalf("round %d: shadow tables %v while the helper rebuilds, want its %v", round, got, shadows)
				}

				if err := helper.Process.Kill(); err != nil { // SIGKILL: no cleanup
					t.Fatal(err)
				}
				helper.Wait()
				if backend == "postgres" {
					waitSessionsGone(t, b, schema)
				}
				if got := shadowTables(t, b); !equalSets(got, shadows) {
					t.Fatalf("round %d: shadow tables %v after the kill, want the helper's %v", round, got, shadows)
				}
				switch cleanup {
				case "start":
					newRunner(t, b, projection.Options{}) // Setup, as serve does at start
				case "rebuild":
					if err := running.Rebuild(ctx, orderview.HistoryName, nil); err != nil {
						t.Fatal(err)
					}
				}
				if got := shadowTables(t, b); len(got) != 0 {
					t.Fatalf("after the %s that followed the kill: shadow tables %v remain", cleanup, got)
				}
			}
			verifyEqual(t, running)
		})
	}
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
	}
	return true
}

// waitSessionsGone waits until the server has ended the sessions of the
// killed helper, which it notices at once but asynchronously: until nobody
// holds the rebuild lock of schema. Bounded.
func waitSessionsGone(t testing.TB, b chronicle.SQLDatabase, schema string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		var n int
		if err := b.SQLDB().QueryRow(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`, projection.LockKey(schema, "\x00rebuild")).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed helper's lock still held after 30 s")
		}
		time.Sleep(10 * time.Millisecond) // bounded polling of the server
	}
}
