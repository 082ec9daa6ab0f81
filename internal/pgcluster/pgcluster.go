package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/chronicle-es/chronicle/internal/freeport"
)

// ErrUnavailable: PostgreSQL's server programs (initdb, pg_ctl,
// pg_basebackup) are not installed, or cannot be run as a non-root user.
// The error is wrapped with the reason; tests skip on it, or fail in CI.
var ErrUnavailable = errors.New("pgcluster: cannot run a PostgreSQL cluster here")

// Cluster is one PostgreSQL server this process started: a primary or a
// standby.
type Cluster struct {
	bin   string // PostgreSQL's bin directory
	dir   string // the cluster's directory: data/, the log and the socket
	Port  int
	runAs []string // runuser -u postgres -- when running as root

	mu      sync.Mutex
	running bool
}

// tools finds PostgreSQL's bin directory (the newest Debian one, else
// initdb on $PATH) and how to run it.
func tools() (bin string, runAs []string, err error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(bins)
	if len(bins) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			bins = []string{p}
		}
	}
	if len(bins) == 0 {
		return "", nil, fmt.Errorf("%w: initdb not found (install Debian's postgresql)", ErrUnavailable)
	}
	bin = filepath.Dir(bins[len(bins)-1])
	for _, tool := range []string{"pg_ctl", "pg_basebackup"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			return "", nil, fmt.Errorf("%w: %s not found next to initdb", ErrUnavailable, tool)
		}
	}
	if os.Getuid() == 0 {
		if _, err := exec.LookPath("runuser"); err != nil {
			return "", nil, fmt.Errorf("%w: running as root without runuser", ErrUnavailable)
		}
		if err := exec.Command("id", "postgres").Run(); err != nil {
			return "", nil, fmt.Errorf("%w: running as root and there is no postgres user", ErrUnavailable)
		}
		runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	return bin, runAs, nil
}

// newDir makes a cluster directory the server's user owns, and picks a
// free port.
func newDir(runAs []string) (string, int, error) {
	dir, err := os.MkdirTemp("", "chronicle-pgcluster")
	if err != nil {
		return "", 0, err
	}
	if len(runAs) > 0 {
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", 0, fmt.Errorf("chown: %v: %s", err, out)
		}
	}
	port, err := freeport.Loopback()
	if err != nil {
		os.RemoveAll(dir)
		return "", 0, err
	}
	return dir, port, nil
}

// StartPrimary initdb's a cluster in a new temporary directory and starts
// it on a free loopback port, ready for standbys (wal_level=replica,
// trust authentication for replication from loopback). Stop it with
// Remove. Errors: ErrUnavailable, or what initdb and pg_ctl said.
func StartPrimary() (*Cluster, error) {
	c, err := initPrimary()
	if err != nil {
		return nil, err
	}
	if err := c.firstStart(); err != nil {
		os.RemoveAll(c.dir)
		return nil, err
	}
	return c, nil
}

// initPrimary initdb's a new cluster, not started.
func initPrimary() (*Cluster, error) {
	bin, runAs, err := tools()
	if err != nil {
		return nil, err
	}
	dir, port, err := newDir(runAs)
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, dir: dir, Port: port, runAs: runAs}
	if out, err := c.run("initdb", "-D", c.Data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return c, nil
}

// StartStandby clones c with pg_basebackup -R (a streaming-replication
// standby of it, hot_standby on) into a new temporary directory and starts
// it on a free port. Stop it with Remove.
func (c *Cluster) StartStandby() (*Cluster, error) {
	dir, port, err := newDir(c.runAs)
	if err != nil {
		return nil, err
	}
	s := &Cluster{bin: c.bin, dir: dir, Port: port, runAs: c.runAs}
	if out, err := s.run("pg_basebackup", "-h", "127.0.0.1", "-p", fmt.Sprint(c.Port), "-U", "postgres",
		"-D", s.Data(), "-R", "-X", "stream", "-c", "fast"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_basebackup: %v\n%s", err, out)
	}
	if err := s.firstStart(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// firstStart starts a new cluster, on another free port when something
// took its port since it was picked.
func (c *Cluster) firstStart() error {
	var err error
	for range 5 {
		if err = c.Start(); err == nil || !strings.Contains(err.Error(), "Address already in use") {
			return err
		}
		port, perr := freeport.Loopback()
		if perr != nil {
			return errors.Join(err, perr)
		}
		c.Port = port
		// The log keeps what the failed start said; the next one's
		// failure must be read alone.
		os.Remove(filepath.Join(c.dir, "server.log"))
	}
	return err
}

// Data is the cluster's data directory.
func (c *Cluster) Data() string { return filepath.Join(c.dir, "data") }

// URL is the cluster's connection URL, as the postgres superuser.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
}

func (c *Cluster) run(tool string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, c.runAs...), filepath.Join(c.bin, tool)), args...)
	return exec.Command(argv[0], argv[1:]...).CombinedOutput()
}

func (c *Cluster) pgctl(args ...string) error {
	out, err := c.run("pg_ctl", append([]string{"-D", c.Data(), "-w", "-t", "120"}, args...)...)
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Start starts the server and waits until it accepts connections (a
// standby: until it accepts read-only ones).
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c max_connections=100"+
		" -c wal_level=replica -c max_wal_senders=10 -c hot_standby=on -c fsync=off", c.Port, c.dir)
	if err := c.pgctl("-l", filepath.Join(c.dir, "server.log"), "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		return fmt.Errorf("%v\n%s", err, log)
	}
	c.running = true
	return nil
}

// Stop stops the server: fast (sessions end, a checkpoint) or, with
// immediate, the way a crash does.
func (c *Cluster) Stop(immediate bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	mode := "fast"
	if immediate {
		mode = "immediate"
	}
	if err := c.pgctl("-m", mode, "stop"); err != nil {
		return err
	}
	c.running = false
	return nil
}

// Remove stops the server if it runs and deletes its directory.
func (c *Cluster) Remove() {
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if running {
		_ = c.Stop(true)
	}
	os.RemoveAll(c.dir)
}
