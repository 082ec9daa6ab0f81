package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/chronicle-es/chronicle"
)

var (
	_ chronicle.Store         = (*Store)(nil)
	_ chronicle.SnapshotStore = (*Store)(nil)
	_ chronicle.SQLDatabase   = (*Store)(nil)
)

// DefaultSchema is the schema a store lives in when Options.Schema is empty.
const DefaultSchema = "chronicle"

// Options configure a Store. The zero value is usable.
type Options struct {
	// Schema holds the store's tables; it is created when missing. Lower-case
	// letters, digits and '_', starting with a letter or '_', at most 40
	// bytes (it also names the NOTIFY channel). Default "chronicle".
	Schema string
	// Limits bound what an append may carry.
	Limits chronicle.Limits
	// BeforeCommit, when set, is called inside each append's transaction
	// after its events are written and before it commits; an error aborts
	// only that append and is returned by Append. Meant for fault injection
	// in tests: it forces the savepoint-per-append path.
	BeforeCommit func(stream string, events []chronicle.Event) error
	// MaxConns is the pool size that readers and the *sql.DB of SQLDB
	// share (default: the URL's pool_max_conns, else 16). Committers have
	// one connection each, and the NOTIFY listener one more.
	MaxConns int32
	// Committers is the number of goroutines committing batches of appends
	// (default 2: one batch runs while another waits for its WAL flush; more
	// means smaller batches, measured slower on 2 cores).
	Committers int
	// MaxBatch bounds the appends committed together (default 256).
	MaxBatch int
	// VersionReaders bounds the StreamVersion queries in flight (default
	// 1). Calls that come while they are all busy are answered together,
	// by one query, when one ends (see StreamVersion).
	VersionReaders int
	// Logger receives the listener's connection errors. Default: discard.
	Logger *slog.Logger
	// MigrateProgress, when set, is called while Open hashes the events of
	// a store made before hashing existed, after each batch: events hashed
	// so far by this Open, and how many were left to hash when it began.
	MigrateProgress func(done, total int64)
}

// Store is a chronicle event store in a PostgreSQL schema.
type Store struct {
	pool    *pgxpool.Pool // readers, snapshots, SQLDB
	wpool   *pgxpool.Pool // committers
	wq      poolQuerier   // the append statements on wpool
	db      *sql.DB
	schema  string
	channel string // NOTIFY channel
	opts    Options
	log     *slog.Logger
	// readOnly: a Replica's store, with no committers, notifier or
	// listener.
	readOnly bool

	// Group commit: appends wait in pending; at most Options.Committers
	// goroutines (callers of Append, or ones they hand over to) commit them.
	mu      sync.Mutex
	pending []*appendReq
	leaders int // goroutines committing batches now
	// inflight counts the appends in batches being committed. A leader
	// gathering a fuller batch (lead) waits on wake, closed when
	// gatherTarget appends are pending or a batch ends, or until
	// gatherUntil; gatherBusy and gatherIdle bound those waits.
	inflight               int
	wake                   chan struct{}
	gatherUntil            time.Time
	gatherTarget           int
	gatherBusy, gatherIdle time.Duration
	closing                bool           // Close has begun: no new appends
	leading                sync.WaitGroup // the leaders; Close waits for pending to drain
	// notifyReq asks the notifier for a NOTIFY (buffered 1: requests made
	// while one is in flight coalesce into the next).
	notifyReq chan struct{}
	npool     *pgxpool.Pool // the notifier's connection
	heads     heads         // streams' heads, for hashing appends without a lookup
	// batches and batched count commits and the appends in them;
	// overlapped the batches taken while another was committing; alone
	// the appends committed on their caller's goroutine (commitAlone);
	// known those appendOneSQL committed.
	batches, batched, overlapped, alone, known atomic.Int64
	oneSQLOnly                                 bool           // tests: never appendOneSQL
	done                                       chan struct{}  // closed by Close
	wg                                         sync.WaitGroup // the listener and the notifier

	cancelListen context.CancelFunc

	// StreamVersion's readers: at most Options.VersionReaders queries at
	// once; calls that find none free wait in vpending for one query.
	vmu       sync.Mutex
	vpending  []*versionReq
	vreaders  int
	vclosing  bool
	vreading  sync.WaitGroup // the readers: Close waits for them
	versioned atomic.Int64   // calls answered by a query of several

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}

	closeOnce sync.Once
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// Exists reports whether the database at url holds a store in schema
// (DefaultSchema when empty), without creating anything: a read-only
// command on a mistyped schema must not make an empty store and report
// on it.
func Exists(ctx context.Context, url, schema string) (bool, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false, fmt.Errorf("pgstore: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var ok bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'events')`, schema).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("pgstore: %w", err)
	}
	return ok, nil
}

// Open connects to the PostgreSQL database at url (any libpq-style URL),
// creates or migrates the store's schema, and starts the committers and the
// NOTIFY listener. ctx bounds the connecting and migrating only.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
	}
	if !schemaRE.MatchString(opts.Schema) {
		return nil, fmt.Errorf("pgstore: open: invalid schema name %q (want [a-z_][a-z0-9_]*, at most 40 bytes)", opts.Schema)
	}
	if opts.Committers <= 0 {
		opts.Committers = 2
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.VersionReaders <= 0 {
		opts.VersionReaders = 1
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	// Without the statements' parameter types pgx cannot send the appends'
	// uuid arrays: every append would fail. Say so now, before anything is
	// created.
	if mode, ok := map[pgx.QueryExecMode]string{
		pgx.QueryExecModeExec:           "exec",
		pgx.QueryExecModeSimpleProtocol: "simple_protocol",
	}[cfg.ConnConfig.DefaultQueryExecMode]; ok {
		return nil, fmt.Errorf("pgstore: open: default_query_exec_mode=%s is not supported: appends need their statements' parameter types (use cache_statement, the default, or cache_describe or describe_exec behind a pooler that cannot keep prepared statements)", mode)
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(url, "pool_max_conns="):
		// pgx's own default (4 on 2 cores) starves readers under load.
		cfg.MaxConns = 16
	}
	// The schema name is checked above, so it needs no quoting here.
	cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	if err := migrate(ctx, pool, opts.Schema, opts.MigrateProgress); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	// The committers' own connections plan the batch statement once: its
	// cost does not depend on the arrays' contents, and planning it afresh
	// (custom plans) costs more than running it.
	wcfg := cfg.Copy()
	wcfg.MaxConns = int32(opts.Committers)
	wcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	// That one plan is made on the first append, often on empty tables,
	// where a sequential scan of streams looks cheapest; it would then scan
	// every stream on each append until the next ANALYZE. Every lookup the
	// statements make is by key, so index scans are right at any size.
	wcfg.ConnConfig.RuntimeParams["enable_seqscan"] = "off"
	wpool, err := pgxpool.NewWithConfig(ctx, wcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	// NOTIFY runs after the commit, in its own transaction: inside the
	// append's transaction it would serialize commits on PostgreSQL's
	// notify queue lock. It is only a hint (readers also poll), so its own
	// commit need not wait for a WAL flush.
	ncfg := cfg.Copy()
	ncfg.MaxConns = 1
	ncfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	npool, err := pgxpool.NewWithConfig(ctx, ncfg)
	if err != nil {
		pool.Close()
		wpool.Close()
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	s := &Store{
		pool:       pool,
		wpool:      wpool,
		wq:         newPoolQuerier(wpool, wcfg),
		npool:      npool,
		schema:     opts.Schema,
		channel:    "chronicle_" + opts.Schema,
		opts:       opts,
		log:        log,
		notifyReq:  make(chan struct{}, 1),
		gatherBusy: gatherBusy,
		gatherIdle: gatherIdle,
		done:       make(chan struct{}),
		subs:       make(map[chan struct{}]struct{}),
	}
	// Listen before returning, so that a commit acknowledged after Open
	// returns always wakes this store's subscribers.
	lconn, err := s.listen(ctx, cfg.ConnConfig)
	if err != nil {
		pool.Close()
		wpool.Close()
		npool.Close()
		return nil, fmt.Errorf("pgstore: open: listen: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.cancelListen = cancel
	s.wg.Add(1)
	go s.listenLoop(lctx, cfg.ConnConfig, lconn)
	s.wg.Add(1)
	go s.notifier()
	s.db = stdlib.OpenDBFromPool(pool)
	return s, nil
}

// Close stops accepting appends, lets batches already taken commit, and
// closes the connections. Calls after Close fail with chronicle.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.leading.Wait() // appends already accepted commit
		s.vmu.Lock()
		s.vclosing = true
		s.vmu.Unlock()
		s.vreading.Wait()
		close(s.done)
		s.cancelListen()
		s.wg.Wait()
		s.subMu.Lock()
		for ch := range s.subs {
			delete(s.subs, ch)
			close(ch)
		}
		s.subMu.Unlock()
		s.db.Close()
		if !s.readOnly {
			s.wpool.Close()
			s.npool.Close()
		}
		s.pool.Close()
	})
	return nil
}

func (s *Store) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// SQLDB returns a *sql.DB on the store's pool, with search_path set to the
// store's schema, for read models. The store owns it: do not close it.
func (s *Store) SQLDB() *sql.DB { return s.db }

// Dialect returns "postgres".
func (s *Store) Dialect() string { return "postgres" }

// Schema returns the schema the store's tables live in.
func (s *Store) Schema() string { return s.schema }

// opErr wraps err with the operation, mapping a closed store to ErrClosed.
func (s *Store) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if s.closed() && !errors.Is(err, chronicle.ErrClosed) {
		return fmt.Errorf("%s: %w (%v)", op, chronicle.ErrClosed, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// ident quotes a name for SQL text.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
