package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
)

// Personal reveals and erases personal data; *personal.Keyring is one.
type Personal interface {
	// Reveal replaces the tokens of personal fields in a response body
	// with their plaintext, or "[erased]".
	Reveal(ctx context.Context, b []byte, asJSON bool) ([]byte, error)
	// Erase destroys the subject's data key and returns the time of its
	// latest erasure. Errors: chronicle.ErrNotFound when it had none.
	Erase(ctx context.Context, subject string) (time.Time, error)
	// CreateKey makes sure the subject has a data key.
	CreateKey(ctx context.Context, subject string) error
}

// Erasure is the answer to an erasure of a customer's personal data.
type Erasure struct {
	CustomerID string    `json:"customer_id"`
	ErasedAt   time.Time `json:"erased_at"`
	Orders     []string  `json:"orders"`
}

// Erase erases a customer's personal data and answers which orders it
// covered, from the order_summaries read model. A customer with orders but
// no personal data yet is erased all the same (a tombstone), so the answer
// is the same later. Errors: chronicle.ErrNotFound for a customer with
// neither personal data nor orders; caughtUp's error, and then nothing is
// erased.
//
// The read model lags the log, so before it reads the orders Erase calls
// caughtUp, which must return once that model reflects every event
// committed before the call: else a customer whose first order was just
// placed would be unknown (404), and the body would miss recent orders.
func Erase(ctx context.Context, p Personal, views Views, caughtUp func(context.Context) error, customer string) (Erasure, error) {
	e := Erasure{CustomerID: customer, Orders: []string{}}
	if err := caughtUp(ctx); err != nil {
		return e, err
	}
	for cursor := ""; ; {
		page, err := views.List(ctx, orderview.Filter{CustomerID: customer, Cursor: cursor, Limit: orderview.MaxLimit})
		if err != nil {
			return e, err
		}
		for _, o := range page.Items {
			e.Orders = append(e.Orders, o.OrderID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	at, err := p.Erase(ctx, customer)
	if errors.Is(err, chronicle.ErrNotFound) && len(e.Orders) > 0 {
		if err = p.CreateKey(ctx, customer); err == nil {
			at, err = p.Erase(ctx, customer)
		}
	}
	e.ErasedAt = at
	return e, err
}

func (s *Server) erasePersonalData(w http.ResponseWriter, r *http.Request) error {
	customer := r.PathValue("customer_id")
	// The ids orders are created with: any other cannot have any (400).
	if err := order.ValidID("customer_id", customer); err != nil {
		return mapDomainError(err)
	}
	if s.opts.Personal == nil {
		return newError(http.StatusNotImplemented, typeInternal, "this server keeps no personal data")
	}
	e, err := Erase(r.Context(), s.opts.Personal, s.opts.Views, s.summariesCaughtUp, customer)
	if errors.Is(err, chronicle.ErrNotFound) {
		return notFound("customer %s has no personal data or orders", customer)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

// summariesCaughtUp waits, at most MinVersionWait, until the order_summaries
// read model reflects every event committed so far (see Erase).
func (s *Server) summariesCaughtUp(ctx context.Context) error {
	head, err := s.opts.Store.Head(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, s.opts.MinVersionWait)
	defer cancel()
	err = s.opts.Projections.WaitFor(wctx, orderview.SummariesName, head.Last)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		e := newError(http.StatusServiceUnavailable, typeUnavailable,
			"the order read model did not catch up with the log within "+s.opts.MinVersionWait.String()+"; nothing was erased, try again")
		e.header = http.Header{"Retry-After": {"1"}}
		return e
	}
	return err
}
