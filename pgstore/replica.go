package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// ErrReadOnly: a write (Append, a snapshot) was asked of a Replica.
var ErrReadOnly = errors.New("pgstore: the store is a read-only replica")

// Defaults of ReplicaOptions.
const (
	DefaultReplicaMaxLag        = 5 * time.Second
	DefaultReplicaCheckInterval = 500 * time.Millisecond
)

// ReplicaOptions configure a Replica. The zero value is usable.
type ReplicaOptions struct {
	// MaxLag: a replica further behind its primary than this is not
	// Usable. Default DefaultReplicaMaxLag.
	MaxLag time.Duration
	// CheckInterval is how often the replica's lag is measured (one small
	// query on the primary and one on the replica). The lag is known to
	// within about one interval. Default DefaultReplicaCheckInterval.
	CheckInterval time.Duration
	// MaxConns is the replica's pool size. Default 16.
	MaxConns int32
	// Logger receives the replica's changes of state. Default: discard.
	Logger *slog.Logger
}

// Replica is a read-only Store on a streaming-replication standby of a
// primary's database: the same schema, the same events with the same
// checkpoints (physical replication), and the same read-model tables.
// Its reads are gap-safe as the primary's are: on a hot standby
// pg_current_snapshot() counts as running every transaction of the primary
// whose end it has not replayed yet. Writes fail with ErrReadOnly, and
// Notify never fires (a standby cannot LISTEN): use the primary's.
//
// A Replica measures, every CheckInterval, how far it is behind the
// primary and says whether it may serve reads (Usable).
type Replica struct {
	*Store
	primary *Store
	opts    ReplicaOptions
	name    string // for logs: host and port, no password

	usable atomic.Bool
	lag    atomic.Int64 // nanoseconds; -1 until first measured
	// failed: a read failed since the last check; not usable until the
	// next check succeeds.
	failed atomic.Bool

	// The check's own state: the primary's WAL flush positions sampled,
	// oldest first, that the replica has not replayed yet.
	samples []walSample
	caught  bool // the replica has replayed a sample: its lag is known
	checked bool // a check has run (and logged the first state)

	stop context.CancelFunc
	wg   sync.WaitGroup
}

type walSample struct {
	at  time.Time
	lsn int64
}

// notCaughtUp is why a replica not yet seen to replay a sampled position
// serves no reads.
const notCaughtUp = "not caught up with the primary yet"

// maxWALSamples bounds the samples of a replica that stopped replaying.
const maxWALSamples = 4096

// OpenReplica connects to the standby at url (any libpq-style URL) and
// returns a Replica of primary in primary's schema. It does not wait for the
// standby: one that is down or behind is simply not Usable until it
// catches up. ctx bounds the setup only.
func OpenReplica(ctx context.Context, url string, primary *Store, opts ReplicaOptions) (*Replica, error) {
	if opts.MaxLag <= 0 {
		opts.MaxLag = DefaultReplicaMaxLag
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultReplicaCheckInterval
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open replica: %w", err)
	}
	cfg.MaxConns = opts.MaxConns
	cfg.ConnConfig.RuntimeParams["search_path"] = primary.schema
	// A replica that vanished must fail a read fast, so that it is
	// retried on the primary within the request.
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 2*time.Second {
		cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg) // connects lazily
	if err != nil {
		return nil, fmt.Errorf("pgstore: open replica: %w", err)
	}
	s := &Store{
		pool:         pool,
		db:           stdlib.OpenDBFromPool(pool),
		schema:       primary.schema,
		channel:      primary.channel,
		opts:         primary.opts,
		log:          log,
		readOnly:     true,
		done:         make(chan struct{}),
		subs:         make(map[chan struct{}]struct{}),
		cancelListen: func() {},
	}
	r := &Replica{Store: s, primary: primary, opts: opts,
		name: fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port)}
	r.lag.Store(-1)
	wctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	r.wg.Add(1)
	go r.watch(wctx)
	return r, nil
}

// Close stops measuring the lag and closes the replica's connections.
func (r *Replica) Close() error {
	r.stop()
	r.wg.Wait()
	return r.Store.Close()
}

// Name is the replica's host:port, for logs and metrics.
func (r *Replica) Name() string { return r.name }

// Usable reports whether the replica may serve reads now: its last check
// reached it, found it a standby less than MaxLag behind the primary, and
// no read has failed on it since.
func (r *Replica) Usable() bool { return r.usable.Load() && !r.failed.Load() }

// Failed tells the replica that a read on it failed: it is not Usable
// until its next check succeeds.
func (r *Replica) Failed() { r.failed.Store(true) }

// Lag is how far the replica was behind the primary at its last check,
// and false when that is not known (unreachable, or not caught up with any
// position the primary had since the replica was opened).
func (r *Replica) Lag() (time.Duration, bool) {
	n := r.lag.Load()
	return time.Duration(n), n >= 0
}

func (r *Replica) watch(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.opts.CheckInterval)
	defer t.Stop()
	for {
		r.check(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// check measures the lag. The primary's WAL flush position is sampled
// first (everything acknowledged as committed is at or below it); the
// lag is the time since the primary passed the oldest sampled position
// the replica has not replayed yet, 0 when it has replayed them all.
// Unlike the standby's own view (pg_last_xact_replay_timestamp, received
// against replayed WAL), this sees a standby that stopped receiving, and
// an idle primary costs no false lag.
func (r *Replica) check(watching context.Context) {
	ctx, cancel := context.WithTimeout(watching, max(2*r.opts.CheckInterval, 2*time.Second))
	defer cancel()
	var flushed int64
	if err := r.primary.pool.QueryRow(ctx, `SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8`).Scan(&flushed); err == nil {
		if n := len(r.samples); n == 0 || r.samples[n-1].lsn < flushed {
			r.samples = append(r.samples, walSample{time.Now(), flushed})
		}
		if len(r.samples) > maxWALSamples {
			// Keep the oldest (the lag stays a lower bound) and thin the rest.
			r.samples = slices.Delete(r.samples, 1, 2)
		}
	}
	var standby bool
	var replayed *int64
	err := r.pool.QueryRow(ctx, `SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8`).Scan(&standby, &replayed)
	switch {
	case watching.Err() != nil:
		return // closing
	case err != nil:
		r.set(false, -1, "unreachable", err)
		return
	case !standby || replayed == nil:
		// A promoted standby is no longer a copy of the primary.
		r.set(false, -1, "not a standby (pg_is_in_recovery() is false)", nil)
		return
	}
	i := 0
	for i < len(r.samples) && r.samples[i].lsn <= *replayed {
		i++
	}
	if i > 0 {
		r.caught = true
		r.samples = slices.Delete(r.samples, 0, i)
	}
	if !r.caught {
		r.set(false, -1, notCaughtUp, nil)
		return
	}
	var lag time.Duration
	if len(r.samples) > 0 {
		lag = time.Since(r.samples[0].at)
	}
	if lag >= r.opts.MaxLag {
		r.set(false, lag, "behind the primary by more than "+r.opts.MaxLag.String(), nil)
		return
	}
	r.set(true, lag, "", nil)
}

// set records a check's outcome and logs changes of state.
func (r *Replica) set(usable bool, lag time.Duration, reason string, err error) {
	r.lag.Store(int64(lag))
	was := r.usable.Swap(usable)
	r.failed.Store(false)
	first := !r.checked
	r.checked = true
	switch {
	case usable && (!was || first):
		r.log.Info("pgstore: replica serves reads", "replica", r.name, "lag", lag)
	case !usable && (was || first):
		attrs := []any{"replica", r.name, "reason", reason}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		level := slog.LevelWarn
		if reason == notCaughtUp {
			level = slog.LevelInfo // a new replica's first check, usually
		}
		r.log.Log(context.Background(), level, "pgstore: replica does not serve reads", attrs...)
	}
}
