package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-es/chronicle"
)

// plainTable is the seed's table (one row per event, UNIQUE(order_id,
// version), a single-row INSERT per event) on one backend: what the
// baseline runs of W1-W5 do to it, each written as a competent user of that
// database would, without chronicle's machinery.
type plainTable interface {
	// create inserts one OrderCreated at version 1 of stream (W1).
	create(ctx context.Context, stream string) error
	// command reads stream's highest version and inserts one ItemAdded
	// after it (W2); when another client took that version first it
	// returns an error matching errPlainConflict.
	command(ctx context.Context, stream string) error
	// batch inserts plainBatch ItemAdded at versions 1.. of stream in one
	// statement (W3).
	batch(ctx context.Context, stream string) error
	// createEach inserts one OrderCreated at version 1 of every stream, in
	// one transaction (W2's set-up).
	createEach(ctx context.Context, streams []string) error
	// addEach inserts one ItemAdded at version of every stream, in one
	// transaction (a transaction of the W4/W5 data set).
	addEach(ctx context.Context, streams []string, version int) error
	// readStream reads stream ordered by version, decoding every event's
	// data, and returns how many it read (W4).
	readStream(ctx context.Context, stream string) (int, error)
	// readPage reads up to 1,000 events in physical order after cursor
	// ("" is the start), decoding every event's data, and returns the
	// cursor after them and how many it read (W5).
	readPage(ctx context.Context, cursor string) (string, int, error)
	// checkpoint flushes what the table's writes left in the log, before
	// a measured run.
	checkpoint(ctx context.Context) error
	close()
}

// plainBatch is W3's batch: the events of one append.
const plainBatch = 100

var errPlainConflict = errors.New("plain: version taken")

func plainConflict(err error) bool { return errors.Is(err, errPlainConflict) }

// The seed's table, exactly as BENCHMARKS.md gives it.
const plainSchema = `
CREATE TABLE order_events (
	id UUID PRIMARY KEY,
	order_id VARCHAR(50) NOT NULL,
	event_type VARCHAR(50) NOT NULL,
	version INTEGER NOT NULL,
	data JSONB NOT NULL,
	metadata JSONB,
	created_at TIMESTAMP DEFAULT NOW(),
	UNIQUE(order_id, version)
);
CREATE INDEX order_events_order_id ON order_events (order_id);`

// pgPlain is the table on PostgreSQL, through a pgx pool (whose statement
// cache prepares each statement once per connection).
type pgPlain struct {
	pool *pgxpool.Pool
	// W3's constant arrays, every payload a parameter as chronicle gets it.
	versions        []int32
	payloads, metas []string
}

var _ plainTable = (*pgPlain)(nil)

// openPGPlain opens a pool of conns connections on schema; create creates
// the table first.
func openPGPlain(ctx context.Context, url, schema string, conns int, create bool) (*pgPlain, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(conns)
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t := &pgPlain{pool: pool, versions: make([]int32, plainBatch), payloads: make([]string, plainBatch), metas: make([]string, plainBatch)}
	for i := range plainBatch {
		t.versions[i], t.payloads[i], t.metas[i] = int32(i+1), Payload, Metadata
	}
	if create {
		if _, err := pool.Exec(ctx, plainSchema); err != nil {
			pool.Close()
			return nil, fmt.Errorf("create the plain table: %w", err)
		}
	}
	return t, nil
}

func (t *pgPlain) create(ctx context.Context, stream string) error {
	_, err := t.pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
VALUES ($1, $2, 'OrderCreated', 1, $3, $4)`, chronicle.NewEventID(), stream, Payload, Metadata)
	return err
}

func (t *pgPlain) command(ctx context.Context, stream string) error {
	var v int32
	if err := t.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM order_events WHERE order_id = $1`, stream).Scan(&v); err != nil {
		return err
	}
	_, err := t.pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
VALUES ($1, $2, 'ItemAdded', $3, $4, $5)`, chronicle.NewEventID(), stream, v+1, Payload, Metadata)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: %w", errPlainConflict, err)
	}
	return err
}

func (t *pgPlain) batch(ctx context.Context, stream string) error {
	_, err := t.pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
SELECT id, $2, 'ItemAdded', v, d, m FROM unnest($1::uuid[], $3::int4[], $4::jsonb[], $5::jsonb[]) AS u(id, v, d, m)`,
		newIDs(plainBatch), stream, t.versions, t.payloads, t.metas)
	return err
}

func (t *pgPlain) createEach(ctx context.Context, streams []string) error {
	_, err := t.pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
SELECT id, s, 'OrderCreated', 1, $3::jsonb, $4::jsonb FROM unnest($1::uuid[], $2::text[]) AS u(id, s)`,
		newIDs(len(streams)), streams, Payload, Metadata)
	return err
}

func (t *pgPlain) addEach(ctx context.Context, streams []string, version int) error {
	_, err := t.pool.Exec(ctx, `INSERT INTO order_events (id, order_id, event_type, version, data, metadata)
SELECT id, s, 'ItemAdded', $3, $4::jsonb, $5::jsonb FROM unnest($1::uuid[], $2::text[]) AS u(id, s)`,
		newIDs(len(streams)), streams, version, Payload, Metadata)
	return err
}

func (t *pgPlain) readStream(ctx context.Context, stream string) (int, error) {
	rows, err := t.pool.Query(ctx, `SELECT id, order_id, event_type, version, data, metadata, created_at
FROM order_events WHERE order_id = $1 ORDER BY version`, stream)
	if err != nil {
		return 0, err
	}
	return scanPlain(rows, nil)
}

func (t *pgPlain) readPage(ctx context.Context, cursor string) (string, int, error) {
	// Unordered keyset paging by ctid: a TID range scan that returns rows
	// in physical order, no index, no global order.
	rows, err := t.pool.Query(ctx, `SELECT ctid::text, id, order_id, event_type, version, data, metadata, created_at
FROM order_events WHERE ctid > $1::tid LIMIT 1000`, cmpOr(cursor, "(0,0)"))
	if err != nil {
		return cursor, 0, err
	}
	n, err := scanPlain(rows, &cursor)
	return cursor, n, err
}

// checkpoint does nothing: the store's CHECKPOINT, just before, covers the
// whole cluster.
func (t *pgPlain) checkpoint(context.Context) error { return nil }

func (t *pgPlain) close() { t.pool.Close() }

// newIDs returns n new event ids as 16 bytes each, as chronicle's store
// sends them: pgx has no binary plan for strings into uuid[]; it failed
// one on every call, formatting the whole array into an error, before
// falling back to text.
func newIDs(n int) [][16]byte {
	ids := make([][16]byte, n)
	for i := range ids {
		ids[i] = uuidBytes(chronicle.NewEventID())
	}
	return ids
}

// uuidBytes is a canonical UUID's 16 bytes.
func uuidBytes(id string) [16]byte {
	var u [16]byte
	hex.Decode(u[:], []byte(strings.ReplaceAll(id, "-", "")))
	return u
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// scanPlain reads plain rows, decoding data; with cursor set, the first
// column is the ctid and the highest one seen is stored there.
func scanPlain(rows pgx.Rows, cursor *string) (int, error) {
	defer rows.Close()
	var (
		ctid, id, orderID, typ string
		version                int32
		data, meta             []byte
		created                time.Time
		n                      int
		maxBlock, maxOff       int64 = -1, -1
	)
	for rows.Next() {
		var err error
		if cursor != nil {
			err = rows.Scan(&ctid, &id, &orderID, &typ, &version, &data, &meta, &created)
			if b, o, ok := parseTID(ctid); ok && (b > maxBlock || b == maxBlock && o > maxOff) {
				maxBlock, maxOff = b, o
			}
		} else {
			err = rows.Scan(&id, &orderID, &typ, &version, &data, &meta, &created)
		}
		if err != nil {
			return n, err
		}
		if err := decode(data); err != nil {
			return n, err
		}
		n++
	}
	if cursor != nil && maxBlock >= 0 {
		*cursor = fmt.Sprintf("(%d,%d)", maxBlock, maxOff)
	}
	return n, rows.Err()
}

func parseTID(s string) (block, off int64, ok bool) {
	b, o, found := strings.Cut(strings.Trim(s, "()"), ",")
	if !found {
		return 0, 0, false
	}
	bi, err1 := strconv.ParseInt(b, 10, 64)
	oi, err2 := strconv.ParseInt(o, 10, 64)
	return bi, oi, err1 == nil && err2 == nil
}
