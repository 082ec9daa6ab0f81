package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestParseIfMatch: the If-Match grammar of RFC 9110 section 13.1.1, "*" /
// #entity-tag, with the versions the strong tags name.
func TestParseIfMatch(t *testing.T) {
	for _, c := range []struct {
		lines    []string
		any      bool
		versions []int64
		bad      bool
	}{
		{lines: []string{`"3"`}, versions: []int64{3}},
		{lines: []string{`*`}, any: true},
		{lines: []string{` * `}, any: true},
		{lines: []string{`"1", "2"`}, versions: []int64{1, 2}},
		{lines: []string{`"1","2"`}, versions: []int64{1, 2}},
		{lines: []string{`"1"`, `"2"`}, versions: []int64{1, 2}}, // two field lines are one list
		{lines: []string{`, "1" ,, "2",`}, versions: []int64{1, 2}},
		{lines: []string{`W/"3"`}}, // well-formed, matches nothing
		{lines: []string{`W/"3", "4"`}, versions: []int64{4}},
		{lines: []string{`"02"`}}, // not the ETag of version 2
		{lines: []string{`"+2"`}},
		{lines: []string{`"0"`}}, // no order has version 0
		{lines: []string{`"abc"`}},
		{lines: []string{`""`}},
		{lines: []string{`"9223372036854775808"`}},
		{lines: []string{`1`}, bad: true},
		{lines: []string{`"1`}, bad: true},
		{lines: []string{`"1"2`}, bad: true},
		{lines: []string{`"1" "2"`}, bad: true},
		{lines: []string{`"a b"`}, bad: true},
		{lines: []string{`w/"1"`}, bad: true},
		{lines: []string{`W/ "1"`}, bad: true},
		{lines: []string{`*, "1"`}, bad: true},
		{lines: []string{`*`, `"1"`}, bad: true},
		{lines: []string{`*`, `*`}, bad: true},
		{lines: []string{``}, bad: true},
		{lines: []string{` , `}, bad: true},
	} {
		r, _ := http.NewRequest("POST", "/orders", nil)
		for _, l := range c.lines {
			r.Header.Add("If-Match", l)
		}
		got, err := parseIfMatch(r)
		switch {
		case c.bad:
			if err == nil {
				t.Errorf("%q: %+v, want 400", c.lines, got)
			}
		case err != nil:
			t.Errorf("%q: %v", c.lines, err)
		case got.any != c.any || !slices.Equal(got.versions, c.versions):
			t.Errorf("%q: any %v, versions %v; want %v, %v", c.lines, got.any, got.versions, c.any, c.versions)
		}
	}
}

// TestIfMatch: API.md, "`If-Match: "N"` on any command makes it
// conditional on the current version (`412` if not N). It is checked before
// the business rules". As RFC 9110 has it: a list matches when any listed
// strong tag is the order's ETag, a weak tag never does, "02" is not "2",
// * matches any version of an order that exists, and nothing matches an
// order that does not; a malformed header is 400. On both backends.
func TestIfMatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("im")
		e.create("im-paid")
		e.mustDo(req{method: "POST", path: "/orders/im-paid/payments", body: `{"method":"card","amount":2000}`}, http.StatusOK)
		add := func(id string, ifMatch ...string) resp {
			t.Helper()
			hr, err := http.NewRequest("POST", e.ts.URL+"/orders/"+id+"/items", strings.NewReader(`{"sku":"X","quantity":1,"unit_price":1}`))
			if err != nil {
				t.Fatal(err)
			}
			hr.Header.Set("Content-Type", "application/json")
			for _, v := range ifMatch {
				hr.Header.Add("If-Match", v)
			}
			res, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return resp{status: res.StatusCode, header: res.Header, body: b}
		}
		create := func(id, ifMatch string) resp {
			t.Helper()
			return e.do(req{method: "POST", path: "/orders", body: `{"order_id":"` + id + `","customer_id":"c"}`, header: map[string]string{"If-Match": ifMatch}})
		}
		for _, c := range []struct {
			name string
			do   func() resp
			want int
			at   int64 // the order's version after, when it exists
		}{
			{"list naming the version", func() resp { return add("im", `"1", "2"`) }, 200, 2},
			{"list naming the version, two lines", func() resp { return add("im", `"7"`, `"2"`) }, 200, 3},
			{"list naming others", func() resp { return add("im", `"1", "2"`) }, 412, 3},
			{"weak tag of the version", func() resp { return add("im", `W/"3"`) }, 412, 3},
			{"weak and strong tag of the version", func() resp { return add("im", `W/"3", "3"`) }, 200, 4},
			{"leading zero", func() resp { return add("im", `"04"`) }, 412, 4},
			{"not a version", func() resp { return add("im", `"abc"`) }, 412, 4},
			{"unquoted", func() resp { return add("im", `4`) }, 400, 4},
			{"unterminated", func() resp { return add("im", `"4`) }, 400, 4},
			{"star and a tag", func() resp { return add("im", `*, "4"`) }, 400, 4},
			{"empty", func() resp { return add("im", ``) }, 400, 4},
			{"star", func() resp { return add("im", `*`) }, 200, 5},
			{"star on a missing order", func() resp { return add("im-missing", `*`) }, 412, 0},
			{"star on a create", func() resp { return create("im-new", `*`) }, 412, 0},
			{"version 0 on a create", func() resp { return create("im-new", `"0"`) }, 412, 0},
			{"star on a create of an existing order", func() resp { return create("im", `*`) }, 409, 5},
			{"list beats the rule", func() resp { return add("im-paid", `"1", "3"`) }, 412, 2},
			{"list meets the rule", func() resp { return add("im-paid", `"1", "2"`) }, 409, 2},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := e.logSize()
				got := c.do()
				if c.want >= 400 {
					isProblem(t, got, c.want)
					if after := e.logSize(); after != before {
						t.Errorf("a failed command wrote: %v events, was %v", after, before)
					}
				} else if got.status != c.want {
					t.Fatalf("status %d, want %d\n%s", got.status, c.want, got.body)
				}
				if c.want == 412 {
					if m := got.json(t); m["current_version"] != float64(c.at) {
						t.Errorf("current_version %v, want %d", m["current_version"], c.at)
					}
				}
				if c.want != 400 && c.at > 0 {
					if v := got.header.Get("X-Event-Version"); v != fmt.Sprint(c.at) {
						t.Errorf("X-Event-Version %q, want %d", v, c.at)
					}
				}
			})
		}
	})
}

// TestConcurrentIfMatchList: 20 commands at once whose If-Match lists the
// current version among others: one wins, the rest are 412 (a race lost
// after the check is 412 too, as with one version).
func TestConcurrentIfMatchList(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("race")
		codes := race(e, 20, func(i int) req {
			return req{method: "POST", path: "/orders/race/items", header: map[string]string{"If-Match": `"7", "1"`},
				body: fmt.Sprintf(`{"sku":"S%d","quantity":1,"unit_price":100}`, i)}
		})
		if codes[http.StatusOK] != 1 || codes[http.StatusPreconditionFailed] != 19 {
			t.Errorf("status codes %v, want one 200 and nineteen 412", codes)
		}
		if v := streamVersion(t, e, "race"); v != 2 {
			t.Errorf("version %d, want 2", v)
		}
	})
}
