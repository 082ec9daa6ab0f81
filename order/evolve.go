package order

import (
	"fmt"
	"slices"

	"github.com/chronicle-es/chronicle"
)

// Evolve returns the state after the stored event e, which must be the
// stream's next event (version s.Version+1) at its current schema version.
// It never modifies s: states may be shared (snapshots, retries).
// Errors: e cannot be decoded (see Decode), is out of order, or is not an
// OrderCreated first.
func Evolve(s State, e chronicle.RecordedEvent) (State, error) {
	ev, err := Decode(e)
	if err != nil {
		return s, err
	}
	if e.Version != s.Version+1 {
		return s, fmt.Errorf("order: stream %q: event version %d follows version %d", e.StreamID, e.Version, s.Version)
	}
	if _, created := ev.(OrderCreated); created != (s.Version == 0) {
		return s, fmt.Errorf("order: stream %q version %d: %s must come first and only first", e.StreamID, e.Version, TypeOrderCreated)
	}
	s = apply(s, ev)
	if s.Version == 0 {
		id, ok := IDFromStream(e.StreamID)
		if !ok {
			return s, fmt.Errorf("order: stream %q is not an order stream", e.StreamID)
		}
		s.OrderID = id
		s.CreatedAt = e.RecordedAt.UTC()
	}
	s.Version = e.Version
	s.UpdatedAt = e.RecordedAt.UTC()
	return s, nil
}

// apply folds a typed event. Slices and pointers are replaced, never
// written through, so the caller's state is untouched.
func apply(s State, ev Event) State {
	switch ev := ev.(type) {
	case OrderCreated:
		s.CustomerID = ev.CustomerID
		s.Currency = ev.Currency
		s.Items = append(make([]Item, 0, len(ev.Items)), ev.Items...)
		s.Total = ev.Total
		s.Status = StatusCreated
	case ItemAdded:
		i := s.item(ev.SKU)
		if i < 0 {
			s.Items = append(slices.Clip(s.Items), Item(ev))
		} else {
			s.Items = slices.Clone(s.Items)
			s.Items[i].Quantity += ev.Quantity
		}
		s.Total += ev.Quantity * ev.UnitPrice
	case ItemRemoved:
		if i := s.item(ev.SKU); i >= 0 {
			s.Total -= s.Items[i].Quantity * s.Items[i].UnitPrice
			s.Items = slices.Delete(slices.Clone(s.Items), i, i+1)
		}
	case ShippingAddressChanged:
		a := ev.Address
		s.ShippingAddress = &a
	case PaymentReceived:
		s.Status = StatusPaid
		s.PaidAmount = ev.Amount
		s.PaymentMethod = ev.Method
	case OrderShipped:
		s.Status = StatusShipped
		s.Carrier = ev.Carrier
		s.Tracking = ev.Tracking
	case OrderDelivered:
		s.Status = StatusDelivered
		s.SignedBy = ev.SignedBy
	case OrderCancelled:
		s.Status = StatusCancelled
		s.CancelReason = ev.Reason
	}
	return s
}
