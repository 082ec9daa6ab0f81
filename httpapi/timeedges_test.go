package httpapi

import (
	"context"
	"net/url"
	"testing"

	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
)

// TestTimeEdges: every time parameter answers exactly across the whole
// valid range (years 0001 to 9999 in UTC) and 400 outside it, never a wrong
// number, on both backends. Times the stores' nanosecond columns cannot
// hold (before 1678, after 2262) are still before or after every event.
func TestTimeEdges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		e := newEnv(t, open())
		e.create("edge-a")
		e.create("edge-b")
		e.mustDo(req{method: "POST", path: "/orders/edge-b/payments", body: `{"method":"card","amount":2000}`}, 200)
		for id, v := range map[string]int64{"edge-a": 1, "edge-b": 2} {
			if err := e.runner.WaitForStream(context.Background(), orderview.HistoryName, "order-"+id, v); err != nil {
				t.Fatal(err)
			}
		}
		none := map[order.Status]float64{}
		now := map[order.Status]float64{order.StatusCreated: 1, order.StatusPaid: 1}

		for _, c := range []struct {
			at     string
			want   int
			counts map[order.Status]float64 // for 200
		}{
			{"0000-01-01T00:00:00+23:59", 400, nil},
			{"0000-12-31T23:59:59Z", 400, nil},
			{"0001-01-01T00:00:00+00:01", 400, nil},
			{"0001-01-01T00:00:00Z", 200, none},
			{"1000-06-01T12:00:00Z", 200, none},
			{"1677-09-21T00:12:43.145224191Z", 200, none},
			{"1969-12-31T23:59:59.999999999Z", 200, none},
			{"2262-04-11T23:47:16.854775808Z", 200, now},
			{"2263-01-01T00:00:00Z", 200, now},
			{"9999-12-31T23:59:59.999999999Z", 200, now},
			{"9999-12-31T23:59:59-00:01", 400, nil},
			// RFC 3339 exactly: lowercase t and z are allowed, a comma
			// fraction and offsets past 23:59 are not.
			{"2263-01-01t00:00:00.5z", 200, now},
			{"2263-01-01T00:00:00,5Z", 400, nil},
			{"2263-01-01T00:00:00+24:00", 400, nil},
		} {
			t.Run("at="+c.at, func(t *testing.T) {
				got := e.do(req{method: "GET", path: "/stats/order-status?at=" + url.QueryEscape(c.at)})
				if c.want != 200 {
					isProblem(t, got, c.want)
					return
				}
				if got.status != 200 {
					t.Fatalf("status %d, want 200\n%s", got.status, got.body)
				}
				counts, _ := got.json(t)["counts"].(map[string]any)
				for _, st := range order.Statuses() {
					if n, _ := counts[string(st)].(float64); n != c.counts[st] {
						t.Errorf("%s: %v, want %v (body %s)", st, counts[string(st)], c.counts[st], got.body)
					}
				}
			})
		}

		for _, c := range []struct {
			asOf    string
			want    int
			version int64 // for 200
		}{
			{"0000-01-01T00:00:00+23:59", 400, 0},
			{"0001-01-01T00:00:00Z", 404, 0},
			{"0001-01-01T00:00:00.000000001Z", 404, 0},
			{"1500-01-01T00:00:00Z", 404, 0},
			{"2300-01-01T00:00:00Z", 200, 2},
			{"9999-12-31T23:59:59.999999999Z", 200, 2},
			{"9999-12-31T23:59:59-00:01", 400, 0},
		} {
			t.Run("as_of="+c.asOf, func(t *testing.T) {
				got := e.do(req{method: "GET", path: "/orders/edge-b?as_of=" + url.QueryEscape(c.asOf)})
				if c.want != 200 {
					isProblem(t, got, c.want)
					return
				}
				if got.status != 200 {
					t.Fatalf("status %d, want 200\n%s", got.status, got.body)
				}
				if s := got.state(t); s.Version != c.version {
					t.Errorf("version %d, want %d", s.Version, c.version)
				}
			})
		}
	})
}
