package storeurl

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// DefaultPath is the SQLite file used when no URL is given, relative to the
// working directory.
const DefaultPath = "chronicle-data/chronicle.db"

// Env is the environment variable that sets the URL when no flag does.
const Env = "CHRONICLE_STORE"

// Store is what both backends provide.
type Store interface {
	chronicle.Store
	chronicle.SnapshotStore
	chronicle.SQLDatabase
	chronicle.KeyStore
	chronicle.Exporter
	chronicle.Importer
	chronicle.SealStore
}

var (
	_ Store = (*sqlitestore.Store)(nil)
	_ Store = (*pgstore.Store)(nil)
)

// ErrBadURL: the URL names no store this binary can open. The error is
// wrapped with the reason.
var ErrBadURL = errors.New("storeurl: bad store URL")

// Kinds of store.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Location is a parsed store URL.
type Location struct {
	Kind string // SQLite or Postgres
	// Path is the SQLite file, or ":memory:".
	Path string
	// Synchronous is SQLite's synchronous level from ?synchronous=, if any.
	Synchronous string
	// MmapSize is ?mmap_size= in bytes as sqlitestore.Options.MmapSize
	// takes it: 0 when absent (the store's default), -1 for mmap_size=0
	// (reads without mapping the file).
	MmapSize int64
	// URL is the PostgreSQL connection URL, without the schema parameter.
	URL string
	// Schema is the PostgreSQL schema from ?schema=, if any (pgstore's
	// default otherwise). It lets several stores share one database.
	Schema string
}

// keywordValue matches the start of a libpq keyword/value connection string,
// which would otherwise be taken for a SQLite file name.
var keywordValue = regexp.MustCompile(`^\s*(host|hostaddr|port|dbname|user|password|sslmode|service|application_name|connect_timeout)\s*=`)

// Parse reads a store URL. The empty string means the default SQLite file.
// Accepted: sqlite:///abs/path.db, sqlite://rel/path.db, sqlite:path.db,
// sqlite::memory:, a bare file path, and postgres:// or postgresql:// URLs
// (libpq style; an extra schema=NAME parameter picks the schema).
//
// Errors: ErrBadURL, wrapped with the reason.
func Parse(raw string) (Location, error) {
	bad := func(format string, a ...any) (Location, error) {
		return Location{}, fmt.Errorf("%w %q: %s", ErrBadURL, Redact(raw), fmt.Sprintf(format, a...))
	}
	switch {
	case raw == "":
		return Location{Kind: SQLite, Path: DefaultPath}, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		u, err := url.Parse(raw)
		if err != nil {
			// Not err itself: it quotes the URL, and maybe the password.
			return bad("not a valid URL (want postgres://user:pass@host:5432/db?sslmode=...; %s)", unparsable)
		}
		q, err := query(u.RawQuery)
		if err != nil {
			return bad("%v", err)
		}
		schema := q.Get("schema")
		if q.Has("schema") && schema == "" {
			return bad("parameter \"schema\" is empty (omit it for the default schema, chronicle)")
		}
		q.Del("schema")
		u.RawQuery = q.Encode()
		return Location{Kind: Postgres, URL: u.String(), Schema: schema}, nil
	case strings.HasPrefix(raw, "sqlite:"):
		rest := strings.TrimPrefix(raw, "sqlite:")
		rest = strings.TrimPrefix(rest, "//") // sqlite:///abs keeps its leading slash
		path, rawQuery, _ := strings.Cut(rest, "?")
		if path == "" {
			return bad("no file path (want sqlite:///path/to/file.db or sqlite::memory:)")
		}
		loc := Location{Kind: SQLite, Path: path}
		if rawQuery != "" {
			q, err := query(rawQuery)
			if err != nil {
				return bad("%v", err)
			}
			for k := range q {
				if k != "synchronous" && k != "mmap_size" {
					return bad("unknown parameter %q (known: synchronous, mmap_size)", k)
				}
			}
			loc.Synchronous = q.Get("synchronous")
			if v := q.Get("mmap_size"); q.Has("mmap_size") {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 {
					return bad("mmap_size %q: want a number of bytes, 0 to read without mapping the file", v)
				}
				loc.MmapSize = cmp.Or(n, -1)
			}
		}
		return loc, nil
	case strings.Contains(raw, "://"):
		scheme, _, _ := strings.Cut(raw, "://")
		return bad("unknown scheme %q (want sqlite or postgres)", scheme)
	case keywordValue.MatchString(raw):
		return bad("a PostgreSQL keyword/value string, not a URL (write it as postgres://user:pass@host:5432/db?sslmode=...)")
	}
	return Location{Kind: SQLite, Path: raw}, nil
}

// query parses a URL's query strictly. url.Values silently drops a pair
// holding ';' (so "schema=x;y" would lose the schema) and keeps the first
// of a repeated parameter: either way the store opened would not be the
// one written, so each is refused, naming the parameter (never its value,
// which may be a password).
func query(raw string) (url.Values, error) {
	q := url.Values{}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: bad percent-encoding", k)
		}
		if strings.Contains(key, ";") || strings.Contains(v, ";") {
			return nil, fmt.Errorf("parameter %q holds ';' (separate parameters with '&'; write a ';' in a value as %%3B)", key)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: bad percent-encoding in its value", key)
		}
		if q.Has(key) {
			return nil, fmt.Errorf("parameter %q given twice", key)
		}
		q.Set(key, val)
	}
	return q, nil
}

// SQLiteParams renders a SQLite location's parameters as a URL query, ""
// or starting with "?": for the URL of another file with the same settings.
func (l Location) SQLiteParams() string {
	q := url.Values{}
	if l.Synchronous != "" {
		q.Set("synchronous", l.Synchronous)
	}
	if l.MmapSize != 0 {
		q.Set("mmap_size", strconv.FormatInt(max(l.MmapSize, 0), 10))
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// String returns the location for logs, without any password.
func (l Location) String() string {
	if l.Kind == Postgres {
		s := Redact(l.URL)
		if l.Schema != "" {
			s += " (schema " + l.Schema + ")"
		}
		return s
	}
	if l.Path == ":memory:" {
		return "sqlite::memory:"
	}
	// A keyword/value connection string given as a URL lands here.
	return "sqlite:" + maskSecrets(l.Path)
}

// unparsable says what may be wrong with a URL that does not parse.
const unparsable = "characters such as / ? # @ : % in the password must be percent-encoded"

// Redact returns raw with its passwords masked: the userinfo's, and the
// values of password= and sslpassword= parameters. Anything else (a URL
// that does not parse, a keyword/value string) is masked by Secrets, more
// broadly.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err == nil {
		// A query that url.Values reads only in part (a ';') could hide
		// a password from it.
		_, err = url.ParseQuery(u.RawQuery)
	}
	if err != nil || u.Scheme == "" {
		return maskSecrets(raw)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), mask)
	}
	if q := u.Query(); len(q) > 0 {
		masked := false
		for k := range q {
			if isPasswordParam(k) {
				q[k] = []string{mask}
				masked = true
			}
		}
		if masked {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

const mask = "xxxxx"

func maskSecrets(s string) string {
	for _, secret := range Secrets(s) {
		s = strings.ReplaceAll(s, secret, mask)
	}
	return s
}

func isPasswordParam(k string) bool {
	return strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword")
}

// passwordParam finds password= and sslpassword= values, also in a
// keyword/value string or a URL that does not parse.
var passwordParam = regexp.MustCompile(`(?i)(?:^|[?&\s])(?:ssl)?password=([^&#\s]*)`)

// Secrets returns the passwords raw holds, as written and decoded, so that
// a caller can mask them in anything that may echo the URL (driver errors
// included).
func Secrets(raw string) []string {
	var out []string
	add := func(s string) {
		if s == "" {
			return
		}
		out = append(out, s)
		if d, err := url.QueryUnescape(s); err == nil && d != s && d != "" {
			out = append(out, d)
		}
	}
	u, err := url.Parse(raw)
	if err == nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
		for k, vs := range u.Query() {
			if isPasswordParam(k) {
				for _, v := range vs {
					add(v)
				}
			}
		}
	}
	// The userinfo's password as written: in a URL that parses, the
	// authority ends at the path or query; in one that does not, the
	// password may be what broke it (an unescaped / or ?), so it runs to
	// the last '@'.
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		if err == nil {
			if i := strings.IndexAny(rest, "/?#"); i >= 0 {
				rest = rest[:i]
			}
		}
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				add(pw)
			}
		}
	}
	for _, m := range passwordParam.FindAllStringSubmatch(raw, -1) {
		add(m[1])
	}
	// Longest first, so that masking one never leaves part of another.
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(out)
}

// Options configure Open.
type Options struct {
	Logger *slog.Logger // backend diagnostics; nil discards them
	// MigrateProgress follows the hashing of a store made before hashing
	// existed, while Open migrates it; nil: not reported.
	MigrateProgress func(done, total int64)
}

// Open opens the store at loc, creating the SQLite file's directory when
// missing, and creates or migrates its schema. ctx bounds the opening only.
func Open(ctx context.Context, loc Location, opts Options) (Store, error) {
	switch loc.Kind {
	case SQLite:
		if loc.Path != ":memory:" {
			if err := os.MkdirAll(filepath.Dir(loc.Path), 0o755); err != nil {
				return nil, fmt.Errorf("open store %s: %w", loc, err)
			}
		}
		s, err := sqlitestore.Open(ctx, loc.Path, sqlitestore.Options{Synchronous: loc.Synchronous, MmapSize: loc.MmapSize, MigrateProgress: opts.MigrateProgress})
		if err != nil {
			return nil, err
		}
		return s, nil
	case Postgres:
		s, err := pgstore.Open(ctx, loc.URL, pgstore.Options{Schema: loc.Schema, Logger: opts.Logger, MigrateProgress: opts.MigrateProgress})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w: unknown kind %q", ErrBadURL, loc.Kind)
}

// OpenURL parses raw and opens the store it names (see Parse and Open).
func OpenURL(ctx context.Context, raw string, opts Options) (Store, error) {
	loc, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	return Open(ctx, loc, opts)
}
