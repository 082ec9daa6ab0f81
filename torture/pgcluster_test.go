package torture

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// cluster is a throwaway PostgreSQL cluster this test owns, so that it can
// stop it (pg_ctl stop -m immediate) without touching the shared server.
type cluster struct {
	t     testing.TB
	bin   string // PostgreSQL's bin directory
	dir   string
	port  int
	runAs []string // runuser -u postgres -- when running as root
}

// newCluster initdb's a cluster in a temporary directory and starts it on
// a free loopback port; it is stopped and removed when t ends. It skips t
// when initdb or pg_ctl are not installed.
func newCluster(t testing.TB) *cluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(bins)
	if len(bins) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			bins = []string{p}
		}
	}
	if len(bins) == 0 {
		t.Skip("initdb not found (install Debian's postgresql): this scenario needs its own cluster to stop")
	}
	c := &cluster{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	if _, err := os.Stat(filepath.Join(c.bin, "pg_ctl")); err != nil {
		t.Skip("pg_ctl not found next to initdb: this scenario needs its own cluster to stop")
	}
	dir, err := os.MkdirTemp("", "chronicle-torture-pg")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() {
		_ = c.pgctl("-m", "immediate", "stop")
		os.RemoveAll(dir)
	})
	if os.Getuid() == 0 {
		// initdb refuses to run as root: the cluster runs as postgres.
		if _, err := exec.LookPath("runuser"); err != nil {
			t.Skip("running as root without runuser: cannot start a cluster as postgres")
		}
		if err := exec.Command("id", "postgres").Run(); err != nil {
			t.Skip("running as root and there is no postgres user to run a cluster as")
		}
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v\n%s", err, out)
		}
		c.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.start()
	return c
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

// url is the cluster's connection URL.
func (c *cluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

func (c *cluster) run(tool string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, c.runAs...), filepath.Join(c.bin, tool)), args...)
	return exec.Command(argv[0], argv[1:]...).CombinedOutput()
}

func (c *cluster) pgctl(args ...string) error {
	out, err := c.run("pg_ctl", append([]string{"-D", c.data(), "-w", "-t", "120"}, args...)...)
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %v\n%s", args, err, out)
	}
	return nil
}

// start starts the cluster and waits until it accepts connections.
func (c *cluster) start() {
	c.t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c max_connections=100", c.port, c.dir)
	if err := c.pgctl("-l", filepath.Join(c.dir, "server.log"), "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("%v\n%s", err, log)
	}
}

// crash stops the cluster the way a crash does: pg_ctl stop -m immediate
// (no checkpoint; the next start runs crash recovery).
func (c *cluster) crash() {
	c.t.Helper()
	if err := c.pgctl("-m", "immediate", "stop"); err != nil {
		c.t.Fatal(err)
	}
}
