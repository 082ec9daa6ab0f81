package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronicle-es/chronicle"
)

// Options configure a Store. The zero value is the documented default.
type Options struct {
	// Limits bound what an append may carry.
	Limits chronicle.Limits
	// BeforeCommit, when set, runs inside each append's transaction after its
	// events are written; an error aborts that append only and is returned
	// by Append. It is a fault-injection hook for tests.
	BeforeCommit func(stream string, events []chronicle.Event) error
	// Synchronous is SQLite's synchronous setting for writers: "FULL" (the
	// default: an acknowledged append survives power loss) or "NORMAL" (it
	// survives a crash of the process, but the last commits before a power
	// loss may be lost). "OFF" and "EXTRA" are accepted too.
	Synchronous string
	// BusyTimeout is how long a connection waits for another process's lock
	// before failing; 0 means 10 s.
	BusyTimeout int // milliseconds
	// MmapSize is how many bytes of the database file each reader
	// connection maps into memory (SQLite's mmap_size). A read of a mapped
	// page makes no system call and copies nothing: a catch-up over the
	// whole log spends about 15% less CPU in the reader. 0 means
	// DefaultMmapSize; a negative value turns mapping off, so that every
	// page is read with a read system call (SQLite's own default).
	//
	// The costs: the mapped pages read are the operating system's file
	// cache, shared and reclaimable, but they count in the process's
	// resident set (RSS), up to MmapSize; and an I/O error on a mapped
	// page stops the process (SIGBUS) where a read system call would have
	// returned an error. SQLite's shared-memory index beside the file (the
	// -shm file of WAL mode) is mapped the same way already. Writers never
	// write through the mapping.
	MmapSize int64
	// MigrateProgress, when set, is called while Open hashes the events of
	// a store made before hashing existed, after each batch: events hashed
	// so far by this Open, and how many were left to hash when it began.
	MigrateProgress func(done, total int64)
}

// Store is the SQLite event store. It is safe for concurrent use.
type Store struct {
	opts   Options
	memory bool

	wdb    *sql.DB // the one writer connection, used only by the write loop
	ckdb   *sql.DB // the checkpointer's connection; nil in memory
	rdb    *sql.DB // readers
	appDB  *sql.DB // handed to read models by SQLDB
	keeper *sql.DB // holds an in-memory database open; nil for files

	gate       gate // the write lock within this process; see gate.go
	queue      chan *job
	quit       chan struct{} // closed by Close
	writerDone chan struct{} // closed when the write loop has exited
	ckDone     chan struct{} // closed when the checkpointer has exited
	// checkpoints counts the background checkpoints done (for tests).
	checkpoints atomic.Int64
	closed      atomic.Bool
	closeOnce   sync.Once
	closeErr    error

	stmts      writeStmts // the write loop's statements, prepared at open
	lastMicros int64      // last recorded_at given out; write loop only

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}
}

var (
	_ chronicle.Store         = (*Store)(nil)
	_ chronicle.SnapshotStore = (*Store)(nil)
	_ chronicle.SQLDatabase   = (*Store)(nil)
)

// Store also implements aggregate.AppendRecorder (AppendRecorded), which
// this package cannot name without importing aggregate.

// connParams are per-connection settings, rendered by the driver file.
type connParams struct {
	busyTimeoutMS int
	synchronous   string
	queryOnly     bool
	immediate     bool // BEGIN IMMEDIATE: take the write lock up front
	// tempMemory keeps temporary files in memory (temp_store=MEMORY): the
	// statement journal of a multi-row insert (its undo log, should a row
	// fail) otherwise spills to a temporary file beyond 64 KiB, one write
	// syscall per page.
	tempMemory bool
	// noAutoCheckpoint: commits on this connection never checkpoint the WAL
	// themselves (wal_autocheckpoint=0); the store's checkpointer does.
	noAutoCheckpoint bool
	// secureDelete zeroes the bytes of deleted content (secure_delete), so
	// that an erased data key leaves no copy in free space.
	secureDelete bool
	// mmapSize > 0 maps that much of the file for reads (mmap_size).
	mmapSize int64
}

func itoa(n int) string { return strconv.Itoa(n) }

const defaultBusyTimeoutMS = 10_000

// DefaultMmapSize is Options.MmapSize's default: 1 GiB, the whole file of
// a store of about 1.9 million events of the benchmarks' size.
const DefaultMmapSize = 1 << 30

// syncLevel checks a synchronous level and spells it as SQLite does; ""
// is FULL.
func syncLevel(s string) (string, error) {
	switch level := strings.ToUpper(s); level {
	case "":
		return "FULL", nil
	case "OFF", "NORMAL", "FULL", "EXTRA":
		return level, nil
	}
	return "", fmt.Errorf("synchronous %q: want FULL, NORMAL, EXTRA or OFF", s)
}

// fileName is the URI of the file at path, ready for connection settings
// ("&" + dsnParams).
func fileName(path string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?"
}

// DriverName is the database/sql driver this build opens SQLite files
// with, registered by importing this package: "sqlite" (modernc.org/sqlite),
// or "sqlite3" (mattn/go-sqlite3) when built with -tags sqlite_cgo.
const DriverName = driverName

// DSN returns the data source name that opens the SQLite file at path with
// DriverName, in that driver's syntax, with a busy timeout and a
// synchronous level set on every connection: for code that keeps its own
// tables in a file beside a store, through the same driver (chronicle
// bench's plain table). synchronous "" means FULL, as for a store;
// busyTimeoutMS 0 means a store's default, 10 s. Errors: an empty path,
// or a level other than FULL, NORMAL, EXTRA or OFF.
func DSN(path, synchronous string, busyTimeoutMS int) (string, error) {
	if path == "" {
		return "", errors.New("sqlitestore: dsn: empty path")
	}
	level, err := syncLevel(synchronous)
	if err != nil {
		return "", fmt.Errorf("sqlitestore: dsn: %w", err)
	}
	if busyTimeoutMS <= 0 {
		busyTimeoutMS = defaultBusyTimeoutMS
	}
	return fileName(path) + "&" + dsnParams(connParams{busyTimeoutMS: busyTimeoutMS, synchronous: level}), nil
}

// Open opens (creating if needed) the store in the SQLite file at path and
// creates or migrates its schema. path ":memory:" opens a private in-memory
// store that lives until Close; it has a single connection, so reads wait
// for the writer (fine for tests and demos, not for load). ctx bounds the
// opening and migration only.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlitestore: open: empty path")
	}
	syncMode, err := syncLevel(opts.Synchronous)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	opts.Synchronous = syncMode
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = defaultBusyTimeoutMS
	}
	if opts.MmapSize == 0 {
		opts.MmapSize = DefaultMmapSize
	}
	s := &Store{
		opts:       opts,
		memory:     path == ":memory:",
		gate:       newGate(),
		queue:      make(chan *job, 1024),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		ckDone:     make(chan struct{}),
		subs:       map[chan struct{}]struct{}{},
	}
	if err := s.openDBs(ctx, path); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	go s.writeLoop()
	if s.ckdb != nil {
		go s.checkpointLoop()
	}
	return s, nil
}

func (s *Store) openDBs(ctx context.Context, path string) error {
	open := func(name string, p connParams) (*sql.DB, error) {
		return sql.Open(driverName, name+"&"+dsnParams(p))
	}
	writer := connParams{busyTimeoutMS: s.opts.BusyTimeout, synchronous: s.opts.Synchronous, immediate: true, tempMemory: true, secureDelete: true}
	if !s.memory {
		writer.noAutoCheckpoint = true
	}
	if s.memory {
		// A shared-cache name so the keeper connection holds the database
		// while the pool's one connection comes and goes. One connection
		// for everything, because shared-cache readers get SQLITE_LOCKED
		// (which busy_timeout does not cover) while a writer is active.
		var b [8]byte
		_, _ = rand.Read(b[:])
		name := "file:chronicle-" + hex.EncodeToString(b[:]) + "?mode=memory&cache=shared"
		var err error
		if s.keeper, err = open(name, connParams{busyTimeoutMS: s.opts.BusyTimeout}); err != nil {
			return err
		}
		s.keeper.SetMaxOpenConns(1)
		if err := s.keeper.PingContext(ctx); err != nil {
			return err
		}
		if s.wdb, err = open(name, writer); err != nil {
			return err
		}
		s.wdb.SetMaxOpenConns(1)
		s.rdb, s.appDB = s.wdb, s.wdb
		if err := s.migrate(ctx); err != nil {
			return err
		}
		return s.prepareWrites(ctx)
	}

	name := fileName(path)
	var err error
	if s.wdb, err = open(name, writer); err != nil {
		return err
	}
	s.wdb.SetMaxOpenConns(1) // the single writer connection
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	// WAL is a property of the file; set it before anyone else reads.
	var mode string
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return fmt.Errorf("set WAL mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("set WAL mode: journal mode is %q", mode)
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if err := s.prepareWrites(ctx); err != nil {
		return err
	}
	if s.rdb, err = open(name, connParams{busyTimeoutMS: s.opts.BusyTimeout, queryOnly: true, mmapSize: s.opts.MmapSize}); err != nil {
		return err
	}
	// As many readers open as may stay idle: beyond the idle limit every
	// burst of concurrent reads opened connections that were closed right
	// after (opening them alone took 3.5% of the CPU under 32 HTTP
	// clients), and a new connection parses the schema on its first query.
	// No read holds one connection while asking for another, so the cap
	// cannot deadlock.
	readers := max(8, 4*runtime.GOMAXPROCS(0))
	s.rdb.SetMaxOpenConns(readers)
	s.rdb.SetMaxIdleConns(readers)
	// Read models write through this pool; IMMEDIATE so that a transaction
	// never has to upgrade a read snapshot to a write (SQLITE_BUSY_SNAPSHOT).
	if s.appDB, err = openGated(name+"&"+dsnParams(connParams{busyTimeoutMS: s.opts.BusyTimeout, synchronous: readModelSync(s.opts.Synchronous), immediate: true, tempMemory: true, noAutoCheckpoint: true}),
		s.gate, s.busyWait()); err != nil {
		return err
	}
	s.appDB.SetMaxIdleConns(4) // projections and read-model queries: keep their connections
	if s.ckdb, err = open(name, connParams{busyTimeoutMS: s.opts.BusyTimeout, synchronous: s.opts.Synchronous}); err != nil {
		return err
	}
	s.ckdb.SetMaxOpenConns(1)
	return nil
}

// checkpointInterval is how often the checkpointer copies the WAL's new
// pages into the database file.
const checkpointInterval = 200 * time.Millisecond

// checkpointLoop checkpoints the WAL in the background until Close. Left to
// SQLite, the commit that takes the WAL past 1,000 pages copies them all
// and syncs the database file before it returns: an append every few
// hundred waited several milliseconds for it, holding up the batches
// behind it. A PASSIVE checkpoint blocks neither writers nor readers.
//
// But the WAL only starts over from its beginning when a write transaction
// begins on a WAL that is all copied, and appends keep adding pages while a
// checkpoint runs. So when the WAL is large, a second round runs holding
// the write gate: a short pause (it copies only what was committed
// meanwhile), after which the next write restarts the WAL instead of
// growing it.
func (s *Store) checkpointLoop() {
	defer close(s.ckDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		busy, log, err := s.checkpoint()
		if err != nil || busy {
			continue // the WAL grows until the next round; nothing is lost
		}
		// Even when this round copied everything, a batch that began
		// during it still reads the WAL and will add to it; the round
		// under the gate makes sure the next batch begins on a WAL that is
		// all copied, so its first write restarts it.
		if log >= restartFrames {
			if held, _ := s.gate.enter(context.Background(), s.busyWait()); held {
				s.checkpoint()
				s.gate.leave()
			}
		}
	}
}

// restartFrames is the WAL size (pages) past which a checkpoint finishes
// under the write gate, so that the WAL restarts: SQLite's own default
// checkpoint threshold.
const restartFrames = 1000

// checkpoint runs a PASSIVE checkpoint: log is the WAL's size in frames.
func (s *Store) checkpoint() (busy bool, log int, err error) {
	var b, done int
	err = s.ckdb.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&b, &log, &done)
	if err == nil {
		s.checkpoints.Add(1)
	}
	return b != 0, log, err
}

// readModelSync is the synchronous level of read-model writes (SQLDB): at
// most NORMAL, which in WAL mode commits without an fsync of its own. Their
// frames go to the same WAL as the events, so the next durable append's
// fsync covers them; a power loss before it can only take the read models
// back to an earlier commit, rows and checkpoint together, and the
// projections apply those events again. Events keep the store's level.
// The fsync held the write gate, and the appends behind it, ~5% of W8.
func readModelSync(store string) string {
	if store == "FULL" || store == "EXTRA" {
		return "NORMAL"
	}
	return store
}

// busyWait is how long a writer waits for another: busy_timeout.
func (s *Store) busyWait() time.Duration {
	return time.Duration(s.opts.BusyTimeout) * time.Millisecond
}

func (s *Store) closeDBs() error {
	var errs []error
	seen := map[*sql.DB]bool{nil: true} // in memory, one pool plays every part
	for _, db := range []*sql.DB{s.appDB, s.rdb, s.ckdb, s.wdb, s.keeper} {
		if seen[db] {
			continue
		}
		seen[db] = true
		if err := db.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops the writer, waits for the batch in progress to commit, fails
// queued appends with ErrClosed and closes the database. Calling it again
// returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.quit)
		<-s.writerDone
		if s.ckdb != nil {
			<-s.ckDone
		}
		for _, st := range s.stmts.all() {
			if st != nil {
				st.Close()
			}
		}
		if err := s.closeDBs(); err != nil {
			s.closeErr = fmt.Errorf("sqlitestore: close: %w", err)
		}
	})
	return s.closeErr
}

// SQLDB returns a handle on the store's database for read models. Its
// transactions take the write lock when they begin (BEGIN IMMEDIATE), so a
// projection's read-model update and checkpoint commit together without
// ever failing on a stale snapshot; plain queries outside a transaction do
// not lock, nor do read-only transactions (sql.TxOptions.ReadOnly), which
// read one snapshot and must not write. Its commits are synchronous=NORMAL
// at most: a power loss may take back the last ones (never events), which projections re-apply. For ":memory:" it is the store's single connection: do not hold
// a transaction on it while calling the store.
func (s *Store) SQLDB() *sql.DB { return s.appDB }

// Dialect returns "sqlite".
func (s *Store) Dialect() string { return "sqlite" }

// Notify returns a channel that receives a value after events commit in this
// process. Appends by another process (a CLI writing to the same file) do
// not wake it: readers should also poll now and then.
func (s *Store) Notify(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.subMu.Lock()
	s.subs[ch] = struct{}{}
	s.subMu.Unlock()
	context.AfterFunc(ctx, func() {
		s.subMu.Lock()
		delete(s.subs, ch)
		s.subMu.Unlock()
	})
	return ch
}

func (s *Store) broadcast() {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending: coalesce
		}
	}
}

// readErr turns an error of a read into what callers should see.
func (s *Store) readErr(op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, chronicle.ErrClosed)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// IsConstraintViolation reports whether err is DriverName's error for a
// row a constraint refused (SQLITE_CONSTRAINT: a unique key, a trigger),
// for code that writes its own tables through DSN. A store's own methods
// return chronicle's errors instead.
func IsConstraintViolation(err error) bool { return isConstraintViolation(err) }
