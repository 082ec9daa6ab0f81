package torture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/personal"
)

// envPostgres names the development PostgreSQL the suite uses for its
// PostgreSQL variants (CI sets it through scripts/with-postgres).
const envPostgres = "CHRONICLE_TEST_POSTGRES"

// The chronicle binary, built on first use into binDir (fuzz workers,
// which re-run TestMain, never need it); buildErr says why there is none.
var (
	binDir       string
	buildOnce    sync.Once
	chronicleBin string
	buildErr     error
)

func TestMain(m *testing.M) {
	if os.Getenv(envAppenderStore) != "" {
		os.Exit(runAppender())
	}
	dir, err := os.MkdirTemp("", "chronicle-torture-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// Every chronicle process of the suite shares one master key: a
	// PostgreSQL store needs one given.
	key := filepath.Join(dir, "master.key")
	if err := os.WriteFile(key, personal.NewMasterKey(), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("CHRONICLE_MASTER_KEY_FILE", key)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildChronicle builds cmd/chronicle into dir, with -race when the tests
// run with it.
func buildChronicle(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go tool not in PATH: %w", err)
	}
	bin := filepath.Join(dir, "chronicle")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool, append(args, "github.com/chronicle-es/chronicle/cmd/chronicle")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// binary returns the chronicle binary, failing t when it could not be built.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { chronicleBin, buildErr = buildChronicle(binDir) })
	if buildErr != nil {
		t.Fatalf("no chronicle binary: %v", buildErr)
	}
	return chronicleBin
}

// backend is where a scenario's store lives.
type backend struct {
	name string
	// url is the store URL given to chronicle serve / verify.
	url string
}

// forEachBackend runs f per backend as a subtest, skipping PostgreSQL with
// a reason when no server is configured.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var b backend
			switch name {
			case "sqlite":
				b = backend{name: name, url: "sqlite://" + filepath.Join(t.TempDir(), "chronicle.db")}
			case "postgres":
				b = backend{name: name, url: postgresSchemaURL(t, devPostgres(t))}
			}
			f(t, b)
		})
	}
}

// devPostgres returns the shared PostgreSQL URL or skips t.
func devPostgres(t testing.TB) string {
	t.Helper()
	url := os.Getenv(envPostgres)
	if url == "" {
		if os.Getenv("CI") != "" {
			t.Fatal(envPostgres + " is not set in CI: the PostgreSQL scenarios must run there")
		}
		t.Skip(envPostgres + " is not set: no PostgreSQL to attack " +
			"(e.g. postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable, or run under scripts/with-postgres)")
	}
	return url
}

// postgresSchemaURL returns a store URL for a fresh schema of the server at
// base, dropped when t ends.
func postgresSchemaURL(t testing.TB, base string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "torture_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "schema=" + schema
}

// openStore opens the store at url from the test process (the way
// `chronicle timeline` does while serve runs), closed when t ends.
func openStore(t testing.TB, url string) storeurl.Store {
	t.Helper()
	s, err := storeurl.OpenURL(context.Background(), url, storeurl.Options{})
	if err != nil {
		t.Fatalf("open store %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// verifyIntegrity runs `chronicle verify --integrity` on the store (every
// hash, chain and seal) and fails t unless it exits 0.
func verifyIntegrity(t testing.TB, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), boundedWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), "verify", "--integrity", "--store", url).CombinedOutput()
	if err != nil {
		t.Fatalf("chronicle verify --integrity: %v\n%s", err, out)
	}
}

// verify runs `chronicle verify` on the store and fails t unless it exits 0.
func verify(t testing.TB, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), boundedWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), "verify", "--store", url).CombinedOutput()
	if err != nil {
		t.Fatalf("chronicle verify: %v\n%s", err, out)
	}
}
