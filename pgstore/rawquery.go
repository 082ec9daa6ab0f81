package pgstore

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// poolQuerier runs the append statements on the pool as pgx's Query does
// (the statement prepared once per connection, arguments and results in
// pgx's formats), but encodes the arguments into a buffer it keeps. pgx
// drops its argument buffer after any query whose arguments pass 256
// bytes, so each 100-event append grew a new one from nothing: about half
// of what such an append allocated, and most of the garbage collector's
// work in the process that appends.
//
// It does so only in pgx's default mode, which prepares statements too. A
// URL that chose another (default_query_exec_mode, e.g. for a connection
// pooler that cannot keep prepared statements) gets pgx's own Query.
type poolQuerier struct {
	pool    *pgxpool.Pool
	prepare bool // the pool's connections prepare their statements
}

func newPoolQuerier(pool *pgxpool.Pool, cfg *pgxpool.Config) poolQuerier {
	return poolQuerier{pool: pool, prepare: cfg.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement}
}

// argBufs holds argument buffers between queries; a buffer larger than
// maxArgBuf is dropped rather than kept, so one huge append does not pin
// its memory.
var argBufs = sync.Pool{New: func() any { return new(argBuf) }}

const maxArgBuf = 4 << 20

type argBuf struct {
	buf     []byte
	ends    []int
	values  [][]byte
	formats []int16
	results []int16
}

func (q poolQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if !q.prepare {
		return q.pool.Query(ctx, sql, args...)
	}
	c, err := q.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := query(ctx, c.Conn(), sql, args)
	if err != nil {
		c.Release()
		return nil, err
	}
	return &releasingRows{Rows: rows, conn: c}, nil
}

// SendBatch is the pool's: single-event creates go as a batch of plain
// statements (see runOne), whose arguments are small.
func (q poolQuerier) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return q.pool.SendBatch(ctx, b)
}

// query prepares sql on conn (once: pgx keeps it by its text), encodes args
// into a pooled buffer and runs the statement.
func query(ctx context.Context, conn *pgx.Conn, sql string, args []any) (pgx.Rows, error) {
	sd, err := conn.Prepare(ctx, sql, sql)
	if err != nil {
		return nil, err
	}
	if len(sd.ParamOIDs) != len(args) {
		return nil, fmt.Errorf("pgstore: statement takes %d arguments, got %d", len(sd.ParamOIDs), len(args))
	}
	m := conn.TypeMap()
	b := argBufs.Get().(*argBuf)
	defer b.release()
	if err := b.encode(m, sd, args); err != nil {
		return nil, err
	}
	// ExecStatement has sent the arguments when it returns: the buffer is
	// free again.
	rr := conn.PgConn().ExecStatement(ctx, sd, b.values, b.formats, b.results)
	return pgx.RowsFromResultReader(m, rr), nil
}

// encode encodes args for sd into b.values and b.formats, and sets
// b.results to the formats of sd's result columns.
func (b *argBuf) encode(m *pgtype.Map, sd *pgconn.StatementDescription, args []any) error {
	if b.buf == nil {
		// Encode returns nil for NULL: a value that encodes to no bytes
		// (an empty string) must come back non-nil.
		b.buf = make([]byte, 0, 1024)
	}
	b.buf, b.ends, b.formats = b.buf[:0], b.ends[:0], b.formats[:0]
	for i, a := range args {
		oid := sd.ParamOIDs[i]
		f := paramFormat(m, oid, a)
		out, err := m.Encode(oid, f, a, b.buf)
		if err != nil {
			// As pgx does: a value may encode only in the other format.
			f = 1 - f
			if out, err = m.Encode(oid, f, a, b.buf); err != nil {
				return fmt.Errorf("pgstore: argument %d: %w", i+1, err)
			}
		}
		end := -1 // NULL
		if out != nil {
			b.buf, end = out, len(out)
		}
		b.ends = append(b.ends, end)
		b.formats = append(b.formats, f)
	}
	// The values are sliced only now: encoding may have moved the buffer.
	b.values = b.values[:0]
	start := 0
	for _, end := range b.ends {
		if end < 0 {
			b.values = append(b.values, nil)
			continue
		}
		b.values = append(b.values, b.buf[start:end:end])
		start = end
	}
	b.results = b.results[:0]
	for _, fd := range sd.Fields {
		b.results = append(b.results, m.FormatCodeForOID(fd.DataTypeOID))
	}
	return nil
}

// paramFormat is the format pgx would choose: text for strings, else the
// type's preferred one.
func paramFormat(m *pgtype.Map, oid uint32, arg any) int16 {
	switch arg.(type) {
	case string, *string:
		return pgtype.TextFormatCode
	}
	return m.FormatCodeForOID(oid)
}

func (b *argBuf) release() {
	if cap(b.buf) > maxArgBuf {
		return
	}
	clear(b.values) // no references into the buffer kept past its use
	argBufs.Put(b)
}

// releasingRows returns its connection to the pool once closed.
type releasingRows struct {
	pgx.Rows
	conn *pgxpool.Conn
}

func (r *releasingRows) Close() {
	r.Rows.Close()
	if r.conn != nil {
		r.conn.Release()
		r.conn = nil
	}
}

// bytesText is b as a string without the copy string(b) makes: pgx copies
// an argument into its message as it encodes it, before the query returns,
// and an appended event's bytes must not change during Append.
func bytesText(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
