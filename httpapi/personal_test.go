package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/personal"
	"github.com/chronicle-es/chronicle/projection"
)

// waitSpy tells when a caller starts waiting for a projection.
type waitSpy struct {
	*projection.Runner
	waiting chan<- struct{}
}

func (s waitSpy) WaitFor(ctx context.Context, name string, at chronicle.Checkpoint) error {
	select {
	case s.waiting <- struct{}{}:
	default:
	}
	return s.Runner.WaitFor(ctx, name, at)
}

// newKeyring returns a keyring of store with a new master key.
func newKeyring(t *testing.T, store backend) *personal.Keyring {
	t.Helper()
	master, err := personal.ParseMasterKey(personal.NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := personal.NewKeyring(context.Background(), store.(chronicle.KeyStore), master)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// An erasure answers from the order read model, which lags the log: it
// must wait for that model to hold every order placed before it. Else a
// customer whose first order was just placed is "unknown" (404, nothing
// erased), and the body misses recent orders.
func TestEraseWaitsForTheReadModel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		store := open()
		keys := newKeyring(t, store)
		// The read models apply nothing until gate closes.
		gate := make(chan struct{})
		held := projection.UpcasterFunc(func(e chronicle.RecordedEvent) (chronicle.RecordedEvent, error) {
			<-gate
			return e, nil
		})
		waiting := make(chan struct{}, 1)
		e := newEnvRunner(t, store, projection.Options{Upcaster: held}, func(o *Options) {
			o.Personal = keys
			o.Projections = waitSpy{o.Projections.(*projection.Runner), waiting}
			// The read model catches up once released: on a slow, loaded
			// machine that may take more than the default 5 s.
			o.MinVersionWait = time.Minute
		})
		defer func() {
			select {
			case <-gate:
			default:
				close(gate)
			}
		}()
		for _, id := range []string{"er_a", "er_b"} {
			e.mustDo(req{method: "POST", path: "/orders", body: `{"order_id":"` + id + `","customer_id":"cust_new"}`}, http.StatusCreated)
		}
		answer := make(chan resp, 1)
		go func() {
			r, err := tryHTTP(e.ts.URL, req{method: "DELETE", path: "/customers/cust_new/personal-data"})
			if err != nil {
				t.Error(err)
			}
			answer <- r
		}()
		select {
		case <-waiting:
			close(gate)
		case r := <-answer:
			t.Fatalf("answered before the read model held the orders: %d %s", r.status, r.body)
		}
		r := <-answer
		var got Erasure
		if err := json.Unmarshal(r.body, &got); r.status != http.StatusOK || err != nil {
			t.Fatalf("DELETE personal-data: %d %s", r.status, r.body)
		}
		if fmt.Sprint(got.Orders) != "[er_b er_a]" {
			t.Errorf("orders = %v, want both, newest first", got.Orders)
		}
		again := e.mustDo(req{method: "DELETE", path: "/customers/cust_new/personal-data"}, http.StatusOK)
		if string(again.body) != string(r.body) {
			t.Errorf("again: %s, want the same body %s", again.body, r.body)
		}
	})
}

// A customer id that no order can have is bad input, not an unknown customer.
func TestEraseRefusesBadCustomerIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		store := open()
		keys := newKeyring(t, store)
		e := newEnv(t, store, func(o *Options) { o.Personal = keys })
		for _, id := range []string{"bad%20id", "a%2Fb", "c%C3%A9", "x" + fmt.Sprintf("%065d", 0)} {
			r := e.do(req{method: "DELETE", path: "/customers/" + id + "/personal-data"})
			if r.status != http.StatusBadRequest || r.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("DELETE /customers/%s/personal-data: %d %s, want 400", id, r.status, r.body)
			}
		}
		if r := e.do(req{method: "DELETE", path: "/customers/cust_nobody/personal-data"}); r.status != http.StatusNotFound {
			t.Errorf("unknown customer: %d %s, want 404", r.status, r.body)
		}
	})
}
