package storeurl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		raw  string
		want Location
	}{
		{"", Location{Kind: SQLite, Path: DefaultPath}},
		{"sqlite:///abs/path.db", Location{Kind: SQLite, Path: "/abs/path.db"}},
		{"sqlite://rel/path.db", Location{Kind: SQLite, Path: "rel/path.db"}},
		{"sqlite:rel.db", Location{Kind: SQLite, Path: "rel.db"}},
		{"sqlite::memory:", Location{Kind: SQLite, Path: ":memory:"}},
		{"sqlite:///x.db?synchronous=NORMAL", Location{Kind: SQLite, Path: "/x.db", Synchronous: "NORMAL"}},
		{"sqlite:///x.db?mmap_size=268435456", Location{Kind: SQLite, Path: "/x.db", MmapSize: 268435456}},
		{"sqlite:///x.db?mmap_size=0&synchronous=NORMAL", Location{Kind: SQLite, Path: "/x.db", Synchronous: "NORMAL", MmapSize: -1}},
		{"./data/x.db", Location{Kind: SQLite, Path: "./data/x.db"}},
		{"postgres://u:p@h:5432/db?sslmode=disable", Location{Kind: Postgres, URL: "postgres://u:p@h:5432/db?sslmode=disable"}},
		{"postgresql://h/db?schema=t1&sslmode=disable", Location{Kind: Postgres, URL: "postgresql://h/db?sslmode=disable", Schema: "t1"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.raw)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.raw, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.raw, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, raw := range []string{"mysql://h/db", "sqlite://", "sqlite:///x.db?cache=shared", "sqlite:",
		"sqlite:///x.db?mmap_size=-1", "sqlite:///x.db?mmap_size=1GiB", "sqlite:///x.db?mmap_size=",
		// PostgreSQL keyword/value strings must not become SQLite file names.
		"host=127.0.0.1 dbname=orders", "dbname=orders", " user=app password=secret"} {
		if _, err := Parse(raw); !errors.Is(err, ErrBadURL) {
			t.Errorf("Parse(%q) = %v, want ErrBadURL", raw, err)
		}
	}
}

// TestParseAmbiguousParams: a parameter that url.Values would drop (a
// ';') or pick one of (given twice), or an empty schema, is refused with
// the parameter named, never its value; on every kind of store.
func TestParseAmbiguousParams(t *testing.T) {
	for _, tt := range []struct{ raw, param string }{
		{"postgres://h/db?sslmode=disable&schema=tiny;x", `"schema" holds ';'`},
		{"postgres://h/db?sslmode=disable;schema=tiny", `"sslmode" holds ';'`},
		{"postgres://h/db?schema=a&schema=b", `"schema" given twice`},
		{"postgres://h/db?sslmode=disable&sslmode=require", `"sslmode" given twice`},
		{"postgres://h/db?schema=", `"schema" is empty`},
		{"postgres://h/db?sslmode=disable&schema=", `"schema" is empty`},
		{"postgres://u@h/db?password=se;cret", `"password" holds ';'`},
		{"sqlite:///x.db?synchronous=NORMAL;mmap_size=0", `"synchronous" holds ';'`},
		{"sqlite:///x.db?synchronous=OFF&synchronous=FULL", `"synchronous" given twice`},
	} {
		_, err := Parse(tt.raw)
		if !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), "parameter "+tt.param) {
			t.Errorf("Parse(%q) = %v, want ErrBadURL naming parameter %s", tt.raw, err, tt.param)
		}
		if err != nil && strings.Contains(err.Error(), "cret") {
			t.Errorf("Parse(%q): the error shows the password: %v", tt.raw, err)
		}
	}
	// Percent-encoded, a ';' is a value's.
	loc, err := Parse("postgres://h/db?application_name=a%3Bb&schema=s")
	if err != nil || loc.Schema != "s" || loc.URL != "postgres://h/db?application_name=a%3Bb" {
		t.Errorf("Parse with an encoded ';' = %+v, %v", loc, err)
	}
}

// A SQLite location's parameters, rendered onto another file's URL, parse
// back to the same settings (chronicle bench opens its files so).
func TestSQLiteParams(t *testing.T) {
	for _, raw := range []string{"sqlite:///x.db", "sqlite:///x.db?synchronous=NORMAL",
		"sqlite:///x.db?mmap_size=0", "sqlite:///x.db?mmap_size=4096&synchronous=OFF"} {
		loc, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse("sqlite:///y.db" + loc.SQLiteParams())
		if err != nil {
			t.Fatalf("%s: %v", loc.SQLiteParams(), err)
		}
		again.Path = loc.Path
		if again != loc {
			t.Errorf("%s: parsed back as %+v, want %+v", raw, again, loc)
		}
	}
}

func TestStringRedactsPassword(t *testing.T) {
	loc, err := Parse("postgres://user:secret@h/db")
	if err != nil {
		t.Fatal(err)
	}
	if s := loc.String(); s != "postgres://user:xxxxx@h/db" {
		t.Errorf("String() = %q", s)
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "chronicle.db")
	s, err := OpenURL(context.Background(), "sqlite://"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Dialect() != "sqlite" {
		t.Errorf("Dialect() = %q", s.Dialect())
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("store file not created: %v", err)
	}
}

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgres://u@h/db?password=secret&sslmode=disable", "postgres://u@h/db?password=xxxxx&sslmode=disable"},
		{"postgres://u@h/db?sslpassword=secret", "postgres://u@h/db?sslpassword=xxxxx"},
		{"postgres://u@h/db?sslmode=disable", "postgres://u@h/db?sslmode=disable"},
		{"postgres://u:secret@h:badport/db", "postgres://u:xxxxx@h:badport/db"},
		{"postgres://u:pw/secret@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:secret%zz@h/db", "postgres://u:xxxxx@h/db"},
		{"host=h password=secret dbname=db", "host=h password=xxxxx dbname=db"},
	} {
		if got := Redact(tt.raw); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestParseErrorsHideThePassword(t *testing.T) {
	for _, raw := range []string{
		"postgres://u:secret@h:badport/db",
		"postgres://u:secret%zz@h/db",
		"postgres://u:secret@[::1/db",
		"postgres://u:pw/secret@h:x/db",
	} {
		_, err := Parse(raw)
		if err == nil {
			t.Errorf("Parse(%q): no error", raw)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Parse(%q): %v", raw, err)
		}
	}
	loc, err := Parse("postgres://u@h/db?password=secret&schema=s")
	if err != nil {
		t.Fatal(err)
	}
	if s := loc.String(); strings.Contains(s, "secret") {
		t.Errorf("String() = %q", s)
	}
}

func TestSecrets(t *testing.T) {
	for _, tt := range []struct {
		raw  string
		want []string
	}{
		{"postgres://u:p%40ss@h/db?options=a:b@c", []string{"p%40ss", "p@ss"}},
		{"postgres://u@h/db?password=x%26y&sslmode=disable", []string{"x%26y", "x&y"}},
		{"postgres://u:pw/secret@h/db", []string{"pw/secret"}},
		{"postgres://u@h/db", nil},
		{"sqlite:///tmp/x.db", nil},
	} {
		got := Secrets(tt.raw)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Secrets(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}
