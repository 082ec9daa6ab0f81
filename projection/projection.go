package projection

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/chronicle-es/chronicle"
)

// Projection is a read model kept from the global log. Its tables live in the
// store's database; the runner gives it their physical names (Tables), which
// differ from the logical ones while a rebuild fills shadow tables.
type Projection interface {
	// Name identifies the projection: its checkpoint, lease, status and
	// metrics. API.md names the order read models "order_summaries" and
	// "order_status_history".
	Name() string
	// Tables lists the logical names of the read model's tables.
	Tables() []string
	// Filter narrows what the runner reads (Limit is ignored). The zero value
	// reads every event.
	Filter() chronicle.ReadAllOptions
	// Create creates the tables, under the physical names in t, with their
	// indexes. Index names must derive from the physical table names so that
	// shadow tables never collide with live ones.
	Create(ctx context.Context, tx *sql.Tx, d Dialect, t Tables) error
	// Apply writes the effect of events, in log order, within tx.
	Apply(ctx context.Context, tx *Tx, d Dialect, t Tables, events []chronicle.RecordedEvent) error
	// NewReplay returns an empty in-memory fold of the same read model, for
	// Verify. It must share its logic with Apply, so that a difference
	// between the two points at persistence, not at a second implementation.
	NewReplay() Replay
	// Load reads the stored rows in the form Replay.Rows produces.
	Load(ctx context.Context, q Querier, d Dialect, t Tables) (Rows, error)
}

// Indexer is an optional interface of a Projection whose secondary indexes
// can be built after its tables are filled. A rebuild creates the shadow
// tables with CreateTables, fills them, and calls CreateIndexes before the
// swap: one sorted index build costs far less than maintaining every index
// row by row. Create must still create both.
type Indexer interface {
	// CreateTables creates the tables under the physical names in t, with
	// their primary keys but without secondary indexes.
	CreateTables(ctx context.Context, tx *sql.Tx, d Dialect, t Tables) error
	// CreateIndexes creates the secondary indexes of the tables in t.
	CreateIndexes(ctx context.Context, tx *sql.Tx, d Dialect, t Tables) error
}

// Builder is an optional interface of a Projection that a rebuild uses
// instead of Apply. A rebuild starts from empty tables and nobody reads
// them until the swap, so a Build may fold many batches in memory and write
// each row once per Flush, with set-based inserts, rather than read and
// upsert rows batch by batch.
type Builder interface {
	// NewBuild starts a rebuild into the empty tables t.
	NewBuild(d Dialect, t Tables) Build
}

// Build is one rebuild in progress; see Builder. It must produce exactly
// the rows Apply would (Verify compares them with the same replay).
type Build interface {
	// Add folds events, in log order. It may read, through q, rows that an
	// earlier write wrote.
	Add(ctx context.Context, q Querier, events []chronicle.RecordedEvent) error
	// Pending is how many rows Flush would take now: the runner flushes
	// when it grows large, to bound memory and transaction size.
	Pending() int
	// Flush takes the rows folded so far and returns the function that
	// writes them within a transaction. It may hold back rows likely to
	// change again, unless final is set: once the final write has run, the
	// tables hold the read model as of the last event added.
	//
	// The runner may Add more events before a write runs, so a write must
	// not share memory that Add changes. Writes run in the order they were
	// taken, one at a time, and a read Add makes through its Querier waits
	// for the writes taken before it.
	Flush(final bool) func(ctx context.Context, tx *Tx) error
}

// Replay is a read model folded in memory.
type Replay interface {
	// Apply folds one event (upcast, in log order).
	Apply(e chronicle.RecordedEvent) error
	// Rows returns the rows the read model's tables should hold.
	Rows() Rows
}

// Upcaster turns a stored event into its current shape. upcast.Registry is
// the one the application uses; every read path shares it.
type Upcaster interface {
	Upcast(e chronicle.RecordedEvent) (chronicle.RecordedEvent, error)
}

// UpcasterFunc adapts a function to Upcaster.
type UpcasterFunc func(e chronicle.RecordedEvent) (chronicle.RecordedEvent, error)

// Upcast calls f(e).
func (f UpcasterFunc) Upcast(e chronicle.RecordedEvent) (chronicle.RecordedEvent, error) { return f(e) }

// Querier is what Load needs: *sql.DB, *sql.Tx and *sql.Conn all have it.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Tables maps a projection's logical table names to physical ones.
type Tables map[string]string

// Of returns the physical name of the logical table name (name itself when
// unmapped).
func (t Tables) Of(name string) string {
	if p, ok := t[name]; ok {
		return p
	}
	return name
}

// Rows is a read model's content in comparable form:
// table -> row key -> column -> canonical value.
type Rows map[string]map[string]Row

// Row maps column names to canonical text values (see Null).
type Row map[string]string

// Null is the canonical value of SQL NULL in a Row.
const Null = "<null>"

// Put stores row under table and key, creating the maps as needed.
func (r Rows) Put(table, key string, row Row) {
	m := r[table]
	if m == nil {
		m = map[string]Row{}
		r[table] = m
	}
	m[key] = row
}

// Dialect is the SQL dialect of the store's database, as
// chronicle.SQLDatabase reports it.
type Dialect string

// The dialects of the two backends.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Rebind rewrites the $N placeholders of query for d. SQL in this module is
// written with $N; SQLite binds ?N by number, while its drivers treat $N as a
// name.
func (d Dialect) Rebind(query string) string {
	if d != SQLite || !strings.Contains(query, "$") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query))
	inStr := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		if c == '\'' {
			inStr = !inStr
		}
		if c == '$' && !inStr && i+1 < len(query) && query[i+1] >= '0' && query[i+1] <= '9' {
			c = '?'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Placeholders returns "($first, ..., $first+n-1)" with one placeholder per
// value, for multi-row VALUES lists. Callers Rebind the whole statement.
func Placeholders(first, n int) string {
	var b strings.Builder
	b.WriteByte('(')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(first + i))
	}
	b.WriteByte(')')
	return b.String()
}

// Errors.
var (
	// ErrUnknown: no projection of that name.
	ErrUnknown = errors.New("projection: unknown projection")
	// ErrNotFailed: Retry or Skip on a projection that has not stopped.
	ErrNotFailed = errors.New("projection: projection is not failed")
	// ErrNoSQL: the store does not implement chronicle.SQLDatabase.
	ErrNoSQL = errors.New("projection: store has no SQL database for read models")
	// errFenced: the checkpoint moved under us (another runner, a rebuild's
	// swap, an operator's skip).
	errFenced = errors.New("projection: checkpoint moved")
)
