package order

import (
	"encoding/json"
	"fmt"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/upcast"
)

// Event is one of the order events below.
type Event interface {
	// EventType is the stored event type, e.g. "OrderCreated".
	EventType() string
	orderEvent()
}

// OrderCreated starts an order. Schema history: v1 {customer_id, total};
// v2 adds currency (v1 reads as "USD"); v3 adds items (older read as none).
type OrderCreated struct {
	CustomerID string `json:"customer_id"`
	Currency   string `json:"currency"`
	Items      []Item `json:"items"`
	Total      int64  `json:"total"`
}

// ItemAdded adds Quantity of a SKU; an existing line of it grows.
type ItemAdded struct {
	SKU       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"`
}

// ItemRemoved removes a SKU's line.
type ItemRemoved struct {
	SKU string `json:"sku"`
}

// ShippingAddressChanged sets the shipping address.
type ShippingAddressChanged struct {
	Address
}

// PaymentReceived pays the order in full.
type PaymentReceived struct {
	Method string `json:"method"`
	Amount int64  `json:"amount"`
}

// OrderShipped hands the order to a carrier.
type OrderShipped struct {
	Carrier  string `json:"carrier"`
	Tracking string `json:"tracking"`
}

// OrderDelivered ends a shipped order.
type OrderDelivered struct {
	SignedBy string `json:"signed_by"`
}

// OrderCancelled ends an order before shipment.
type OrderCancelled struct {
	Reason string `json:"reason"`
}

// Event type names, as stored.
const (
	TypeOrderCreated           = "OrderCreated"
	TypeItemAdded              = "ItemAdded"
	TypeItemRemoved            = "ItemRemoved"
	TypeShippingAddressChanged = "ShippingAddressChanged"
	TypePaymentReceived        = "PaymentReceived"
	TypeOrderShipped           = "OrderShipped"
	TypeOrderDelivered         = "OrderDelivered"
	TypeOrderCancelled         = "OrderCancelled"
)

func (OrderCreated) EventType() string           { return TypeOrderCreated }
func (ItemAdded) EventType() string              { return TypeItemAdded }
func (ItemRemoved) EventType() string            { return TypeItemRemoved }
func (ShippingAddressChanged) EventType() string { return TypeShippingAddressChanged }
func (PaymentReceived) EventType() string        { return TypePaymentReceived }
func (OrderShipped) EventType() string           { return TypeOrderShipped }
func (OrderDelivered) EventType() string         { return TypeOrderDelivered }
func (OrderCancelled) EventType() string         { return TypeOrderCancelled }

func (OrderCreated) orderEvent()           {}
func (ItemAdded) orderEvent()              {}
func (ItemRemoved) orderEvent()            {}
func (ShippingAddressChanged) orderEvent() {}
func (PaymentReceived) orderEvent()        {}
func (OrderShipped) orderEvent()           {}
func (OrderDelivered) orderEvent()         {}
func (OrderCancelled) orderEvent()         {}

// SchemaVersion returns the current schema version of an order event type:
// the version Decide's events are written at and the only one Decode
// accepts.
func SchemaVersion(eventType string) (int, bool) {
	switch eventType {
	case TypeOrderCreated:
		return 3, true
	case TypeItemAdded, TypeItemRemoved, TypeShippingAddressChanged, TypePaymentReceived,
		TypeOrderShipped, TypeOrderDelivered, TypeOrderCancelled:
		return 1, true
	}
	return 0, false
}

// EventTypes returns the order event types.
func EventTypes() []string {
	return []string{TypeOrderCreated, TypeItemAdded, TypeItemRemoved, TypeShippingAddressChanged,
		TypePaymentReceived, TypeOrderShipped, TypeOrderDelivered, TypeOrderCancelled}
}

// Upcasters declares the order event types at their current schema
// versions in reg and registers the upcasters of their history.
func Upcasters(reg *upcast.Registry) {
	for _, t := range EventTypes() {
		v, _ := SchemaVersion(t)
		reg.Declare(t, v)
	}
	// v1 predates multi-currency: every order was in dollars.
	reg.Register(TypeOrderCreated, 1, upcast.AddField("currency", DefaultCurrency))
	// v2 predates items at creation.
	reg.Register(TypeOrderCreated, 2, upcast.AddField("items", []Item{}))
}

// NewRegistry returns a registry with just the order events (Upcasters).
func NewRegistry() *upcast.Registry {
	reg := upcast.NewRegistry()
	Upcasters(reg)
	return reg
}

// Decode returns the typed event of a stored event, which must be at its
// type's current schema version (run it through the upcast registry first).
// Errors: unknown type, another schema version, or data that does not
// decode.
func Decode(e chronicle.RecordedEvent) (Event, error) {
	want, ok := SchemaVersion(e.Type)
	if !ok {
		return nil, fmt.Errorf("order: stream %q version %d: unknown event type %q", e.StreamID, e.Version, e.Type)
	}
	if e.SchemaVersion != want {
		return nil, fmt.Errorf("order: stream %q version %d: %s at schema v%d, want v%d (not upcast?)", e.StreamID, e.Version, e.Type, e.SchemaVersion, want)
	}
	var ev Event
	var err error
	switch e.Type {
	case TypeOrderCreated:
		ev, err = decode[OrderCreated](e.Data)
	case TypeItemAdded:
		ev, err = decode[ItemAdded](e.Data)
	case TypeItemRemoved:
		ev, err = decode[ItemRemoved](e.Data)
	case TypeShippingAddressChanged:
		ev, err = decode[ShippingAddressChanged](e.Data)
	case TypePaymentReceived:
		ev, err = decode[PaymentReceived](e.Data)
	case TypeOrderShipped:
		ev, err = decode[OrderShipped](e.Data)
	case TypeOrderDelivered:
		ev, err = decode[OrderDelivered](e.Data)
	case TypeOrderCancelled:
		ev, err = decode[OrderCancelled](e.Data)
	}
	if err != nil {
		return nil, fmt.Errorf("order: stream %q version %d: decode %s: %w", e.StreamID, e.Version, e.Type, err)
	}
	return ev, nil
}

func decode[T Event](data json.RawMessage) (Event, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return v, nil
}
