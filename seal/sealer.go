package seal

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// Store is what the package needs of a store: its log and its seals.
type Store interface {
	chronicle.Store
	chronicle.SealStore
}

// Options tune a Sealer. The zero value is usable.
type Options struct {
	// Interval is the most time between two seals while events arrive
	// (the least, too, unless MaxEvents are waiting). Default 1s.
	Interval time.Duration
	// MaxEvents is the most events one seal covers. Default 10,000.
	MaxEvents int
	// Key, when set, signs every seal (Ed25519).
	Key ed25519.PrivateKey
	// LeaseInterval is how often a standby tries to take the sealing lease,
	// and the holder checks it (PostgreSQL). Default 2s: a holder that dies
	// or freezes is replaced within about 4 x LeaseInterval.
	LeaseInterval time.Duration
	// Logger receives operational messages. Default: discard.
	Logger *slog.Logger
	// Now is the clock of sealed_at. Default time.Now.
	Now func() time.Time
}

// ErrUnsigned: the latest seal is signed and the Sealer has no key. Once a
// key signed a seal, every later seal must be signed (Verify fails on an
// unsigned one, as it would on signatures removed).
var ErrUnsigned = errors.New("seal: the latest seal is signed, and no signing key was given")

// DefaultMaxEvents is the default of Options.MaxEvents.
const DefaultMaxEvents = 10_000

// Sealer seals one store's log. Create it with New; run it with Run.
type Sealer struct {
	store Store
	opts  Options
	key   *chronicle.SealKey
}

// New returns a Sealer of store.
func New(store Store, opts Options) *Sealer {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.LeaseInterval <= 0 {
		opts.LeaseInterval = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sealer{store: store, opts: opts}
	if opts.Key != nil {
		pub := opts.Key.Public().(ed25519.PublicKey)
		s.key = &chronicle.SealKey{KeyID: audit.KeyID(pub), PublicKey: pub}
	}
	return s
}

// SealOnce seals the events after the latest seal that readers can see now
// (at most MaxEvents of them): never past an event that an open
// transaction may still precede. It returns the new seal, or ok false when
// there was nothing to seal.
//
// Errors: chronicle.ErrSealConflict when another sealer stored that seal
// first (seal again to go on after it); ErrUnsigned without Options.Key
// when the latest seal is signed; the store's errors.
func (s *Sealer) SealOnce(ctx context.Context) (seal chronicle.Seal, ok bool, err error) {
	latest, err := s.store.LatestSeal(ctx)
	if err != nil && !errors.Is(err, chronicle.ErrNotFound) {
		return seal, false, fmt.Errorf("seal: %w", err)
	}
	if s.key == nil && latest.KeyID != "" {
		// Verify takes an unsigned seal after a signed one for signatures
		// removed: once signed, a log stays signed.
		return seal, false, fmt.Errorf("%w (seal %d, key %s): restart with its key or a new one", ErrUnsigned, latest.Seq, latest.KeyID)
	}
	cp := latest.LocalEnd()
	var hashes []audit.Hash
	for len(hashes) < s.opts.MaxEvents {
		page, err := s.store.ReadAll(ctx, cp, chronicle.ReadAllOptions{Limit: min(5000, s.opts.MaxEvents-len(hashes))})
		if err != nil {
			return seal, false, fmt.Errorf("seal: read the log: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			hashes = append(hashes, e.Hash)
		}
		cp = page[len(page)-1].Checkpoint()
	}
	if len(hashes) == 0 {
		return seal, false, nil
	}
	seal = chronicle.Seal{
		Seq:            latest.Seq + 1,
		LastCheckpoint: cp,
		Count:          int64(len(hashes)),
		Root:           audit.MerkleRoot(hashes),
		PrevSealHash:   latest.SealHash,
		// Stores keep microseconds: hash what they keep.
		SealedAt: s.opts.Now().UTC().Truncate(time.Microsecond),
	}
	seal.SealHash = audit.SealHash(audit.SealOf(seal))
	if s.key != nil {
		seal.KeyID = s.key.KeyID
		seal.Signature = audit.Sign(s.opts.Key, seal.SealHash)
	}
	if err := s.store.AddSeal(ctx, seal, s.key); err != nil {
		return chronicle.Seal{}, false, fmt.Errorf("seal: %w", err)
	}
	return seal, true, nil
}

// Run seals the log until ctx ends: at least every Interval while events
// arrive, one seal per MaxEvents when more are waiting. On PostgreSQL it
// seals only while it holds the store's sealing lease, so that of several
// processes on one store exactly one seals; a standby takes over when the
// holder dies. It returns nil when ctx ends.
func (s *Sealer) Run(ctx context.Context) error {
	db, ok := s.store.(chronicle.SQLDatabase)
	if !ok || db.Dialect() != "postgres" {
		// SQLite: one process owns the store.
		s.follow(ctx)
		return nil
	}
	s.lease(ctx, db.SQLDB())
	return nil
}

// follow seals while ctx lasts.
func (s *Sealer) follow(ctx context.Context) {
	notify := s.store.Notify(ctx)
	var last time.Time // when the last seal was made
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		seal, ok, err := s.SealOnce(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case errors.Is(err, chronicle.ErrSealConflict):
			s.opts.Logger.Warn("seal: another sealer stored the same seal", "err", err)
			continue
		case err != nil:
			s.opts.Logger.Warn("seal: sealing failed, will retry", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if ok {
			last = time.Now()
			if seal.Count >= int64(s.opts.MaxEvents) {
				continue // more are waiting
			}
		}
		// Wait for new events (or poll, in case a notification is lost,
		// and for events an open transaction held back), then for the rest
		// of the interval, so that a busy log is sealed once per interval.
		select {
		case <-ctx.Done():
			return
		case <-notify:
		case <-time.After(s.opts.Interval):
		}
		if !sleep(ctx, time.Until(last.Add(s.opts.Interval))) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// lease runs follow whenever this process holds the sealing lease: a
// session advisory lock on a connection pinned while it is held, as
// projections do (see package projection). A holder that dies loses the
// lock with its connection; one frozen or cut off is ended by the server
// (idle_session_timeout). Two holders at once, for a moment, cannot store
// two seals of one seq: AddSeal refuses the second.
func (s *Sealer) lease(ctx context.Context, db *sql.DB) {
	for ctx.Err() == nil {
		if conn, ok := s.tryLock(ctx, db); ok {
			held, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.follow(held)
			}()
			s.watch(held, cancel, conn)
			cancel()
			<-done
			s.unlock(conn)
		}
		if !sleep(ctx, s.opts.LeaseInterval) {
			return
		}
	}
}

// lockSQL names the lease: one per schema (one store per schema).
const lockSQL = `hashtext('chronicle/sealer'), hashtext(current_schema())`

func (s *Sealer) tryLock(ctx context.Context, db *sql.DB) (*sql.Conn, bool) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, false
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+lockSQL+`)`).Scan(&ok); err != nil || !ok {
		conn.Close()
		return nil, false
	}
	timeout := fmt.Sprint((3 * s.opts.LeaseInterval).Milliseconds())
	if _, err := conn.ExecContext(ctx, `SELECT set_config('idle_session_timeout', $1, false)`, timeout); err != nil {
		s.opts.Logger.Warn("seal: cannot bound the lease session (idle_session_timeout needs PostgreSQL 14)", "err", err)
	}
	s.opts.Logger.Info("seal: sealing lease taken")
	return conn, true
}

// watch returns when ctx ends or the lease connection fails, cancelling
// the holder in the latter case.
func (s *Sealer) watch(ctx context.Context, cancel context.CancelFunc, conn *sql.Conn) {
	t := time.NewTicker(s.opts.LeaseInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, pcancel := context.WithTimeout(ctx, s.opts.LeaseInterval)
			_, err := conn.ExecContext(pctx, `SELECT 1`)
			pcancel()
			if err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("seal: lease connection lost", "err", err)
				cancel()
				return
			}
		}
	}
}

// unlock releases the lease and discards its connection, which carries the
// lease's settings.
func (s *Sealer) unlock(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.ExecContext(ctx, `SELECT pg_advisory_unlock(`+lockSQL+`)`)
	conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
	s.opts.Logger.Info("seal: sealing lease released")
}
