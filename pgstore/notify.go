package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notify returns a channel that receives a value after events commit, from
// this process or any other on the same schema (coalesced; a hint to read
// again). It is closed when ctx ends or the store closes.
func (s *Store) Notify(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.subMu.Lock()
	if s.closed() {
		s.subMu.Unlock()
		close(ch)
		return ch
	}
	s.subs[ch] = struct{}{}
	s.subMu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		s.subMu.Lock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
		s.subMu.Unlock()
	}()
	return ch
}

// broadcast wakes every subscriber without ever blocking: a full buffer
// already holds a wake-up.
func (s *Store) broadcast() {
	s.subMu.Lock()
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.subMu.Unlock()
}

// listen opens the dedicated LISTEN connection.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+ident(s.channel)); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

// listenLoop relays notifications to subscribers until ctx ends,
// reconnecting when the connection fails. Subscribers also poll, so a
// notification missed while reconnecting only delays them.
func (s *Store) listenLoop(ctx context.Context, cfg *pgx.ConnConfig, conn *pgx.Conn) {
	defer s.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		for conn != nil {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				conn.Close(context.Background())
				conn = nil
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("pgstore: listen connection lost", "err", err)
				break
			}
			backoff = 100 * time.Millisecond
			s.broadcast()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		var err error
		if conn, err = s.listen(ctx, cfg); err != nil {
			s.log.Warn("pgstore: listen reconnect failed", "err", err)
			continue
		}
		s.broadcast() // commits may have happened while we were away
	}
}

// requestNotify asks the notifier to tell other processes that events
// committed; it never blocks.
func (s *Store) requestNotify() {
	select {
	case s.notifyReq <- struct{}{}:
	default: // one is already pending: it will cover this commit too
	}
}

// notifyInterval is the least time between two NOTIFYs. Each costs the
// notifier a transaction, and its commit record makes PostgreSQL's WAL
// writer flush, competing with the appends' own flushes: one per commit
// would slow a lone writer by half. Other processes hear of a commit at
// most this much later (this process's subscribers are woken at once).
const notifyInterval = 5 * time.Millisecond

// notifier sends a NOTIFY after requests, at most one per notifyInterval,
// until Close. Requests made meanwhile coalesce into the next one, which
// always follows the last request, so no commit goes unannounced.
func (s *Store) notifier() {
	defer s.wg.Done()
	ctx := context.Background()
	var last time.Time
	for {
		select {
		case <-s.notifyReq:
		case <-s.done:
			return
		}
		if wait := notifyInterval - time.Since(last); wait > 0 {
			select {
			case <-time.After(wait):
			case <-s.done:
				return
			}
		}
		// Drop a request that came while waiting: this NOTIFY covers it.
		select {
		case <-s.notifyReq:
		default:
		}
		last = time.Now()
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := s.npool.Exec(qctx, "SELECT pg_notify($1, '')", s.channel); err != nil && !s.closed() {
			// Listeners in other processes poll; they are late, not wrong.
			s.log.Warn("pgstore: notify failed", "err", err)
		}
		cancel()
	}
}
