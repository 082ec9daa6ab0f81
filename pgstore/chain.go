package pgstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// head is what an append to a stream chains on: the stream's version, the
// hash of its last event and that event's recorded_at (zero for no stream).
type head struct {
	version int64
	hash    audit.Hash
	at      time.Time
}

// maxHeads bounds the heads cache: two generations of at most half as many.
const maxHeads = 1 << 16

// heads caches streams' heads as this store's appends left them or its
// statements last saw them, so that an append is hashed without a lookup.
// It is only a guess: the append statement checks the version, hash and
// time it chains on against the stream's row, and runs again on a mismatch.
//
// When the current generation is full it becomes the old one and the
// oldest is dropped: recently used streams stay, and making room costs no
// search (dropping one entry at random began a map iteration per set,
// 7% of the store's CPU under W1).
type heads struct {
	mu     sync.Mutex
	m, old map[string]head
}

func (c *heads) get(stream string) (head, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.m[stream]; ok {
		return h, true
	}
	h, ok := c.old[stream]
	return h, ok
}

func (c *heads) set(stream string, h head) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxHeads/2 {
		if _, ok := c.m[stream]; !ok {
			c.old, c.m = c.m, make(map[string]head, len(c.m)) // a busy store: room at once
		}
	}
	if c.m == nil {
		c.m = make(map[string]head)
	}
	c.m[stream] = h
}

func (c *heads) forget(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, stream)
	delete(c.old, stream)
}

// known returns the head r chains on when no lookup is needed: none for a
// new stream, the cached one when it can be right.
func (c *heads) known(r *appendReq) (head, bool) {
	if r.expected == chronicle.NoStream {
		return head{}, true
	}
	h, ok := c.get(r.stream)
	if r.expected > 0 && h.version != int64(r.expected) {
		return head{}, false // the append fails anyway unless the stream moved on
	}
	return h, ok
}

// chain hashes the batch's events: each append on its stream's head, known
// or read in one query for the batch, recorded at now (or, should the
// stream's last event be later, at that time: a stream's times never go
// down).
func (s *Store) chain(ctx context.Context, batch []*appendReq) error {
	var missing []string
	for _, r := range batch {
		var ok bool
		if r.head, ok = s.heads.known(r); !ok {
			missing = append(missing, r.stream)
		}
	}
	if len(missing) > 0 {
		got, err := s.readHeads(ctx, missing)
		if err != nil {
			return err
		}
		for _, r := range batch {
			if h, ok := got[r.stream]; ok {
				r.head = h
			}
		}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, r := range batch {
		r.at = now
		if r.head.at.After(now) {
			r.at = r.head.at
		}
		r.hashes = append(r.hashes[:0], r.head.hash)
		for i, e := range r.events {
			r.hashes = append(r.hashes, audit.HashLines(r.hashes[i], r.stream, r.head.version+int64(i)+1,
				e.ID, e.Type, e.SchemaVersion, r.at, r.digests[i][0], r.digests[i][1]))
		}
	}
	return nil
}

// readHeads reads streams' heads; a stream with no row has none.
func (s *Store) readHeads(ctx context.Context, streams []string) (map[string]head, error) {
	rows, err := s.wpool.Query(ctx, `SELECT stream_id, version, last_hash, last_at FROM streams WHERE stream_id = ANY($1)`, streams)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := make(map[string]head, len(streams))
	for rows.Next() {
		var stream string
		var h head
		var hash []byte
		var at *time.Time
		if err := rows.Scan(&stream, &h.version, &hash, &at); err != nil {
			return nil, err
		}
		if len(hash) != len(h.hash) || at == nil {
			return nil, fmt.Errorf("stream %s has no last hash", stream)
		}
		copy(h.hash[:], hash)
		h.at = at.UTC()
		got[stream] = h
	}
	return got, rows.Err()
}

// hashArgs returns an append's event hashes and their prev_hashes as the
// statement takes them.
func (r *appendReq) hashArgs() (hashes, prevs [][]byte) {
	hashes = make([][]byte, len(r.events))
	prevs = make([][]byte, len(r.events))
	for i := range r.events {
		prevs[i], hashes[i] = r.hashes[i][:], r.hashes[i+1][:]
	}
	return hashes, prevs
}

// learn updates the heads cache from r's outcome in row.
func (s *Store) learn(r *appendReq, row resultRow) {
	switch {
	case row.appended:
		s.heads.set(r.stream, head{version: r.head.version + int64(len(r.events)), hash: r.hashes[len(r.events)], at: r.at})
	case row.version != nil && len(row.lastHash) == len(audit.Hash{}) && row.lastAt != nil:
		s.heads.set(r.stream, head{version: *row.version, hash: audit.Hash(row.lastHash), at: row.lastAt.UTC()})
	default:
		s.heads.forget(r.stream)
	}
}
