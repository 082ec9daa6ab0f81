package order

import (
	"strings"
	"time"
	"unsafe"
)

// Status is where an order is in its life.
type Status string

// The statuses of API.md.
const (
	StatusCreated   Status = "created"
	StatusPaid      Status = "paid"
	StatusShipped   Status = "shipped"
	StatusDelivered Status = "delivered"
	StatusCancelled Status = "cancelled"
)

// Statuses lists every status, in life-cycle order.
func Statuses() []Status {
	return []Status{StatusCreated, StatusPaid, StatusShipped, StatusDelivered, StatusCancelled}
}

// Item is one line of an order: a SKU appears at most once.
type Item struct {
	SKU       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"` // minor units of the order's currency
}

// Address is a shipping address.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// State is an order as the HTTP API serves it: its JSON encoding is the
// order state body of API.md. The zero State is an order that does not
// exist. Money is in minor units.
type State struct {
	OrderID         string    `json:"order_id"`
	CustomerID      string    `json:"customer_id"`
	Status          Status    `json:"status"`
	Currency        string    `json:"currency"`
	Items           []Item    `json:"items"`
	Total           int64     `json:"total"`
	PaidAmount      int64     `json:"paid_amount"`
	PaymentMethod   string    `json:"payment_method"`
	Carrier         string    `json:"carrier"`
	Tracking        string    `json:"tracking"`
	ShippingAddress *Address  `json:"shipping_address"`
	CancelReason    string    `json:"cancel_reason"`
	SignedBy        string    `json:"signed_by"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	Version         int64     `json:"version"` // the stream version the state reflects
}

// Size approximates the bytes s holds in memory, shared parts included:
// what a cache of states bounded by size counts.
func (s State) Size() int {
	n := int(unsafe.Sizeof(s)) + len(s.OrderID) + len(s.CustomerID) + len(s.Status) + len(s.Currency) +
		len(s.PaymentMethod) + len(s.Carrier) + len(s.Tracking) + len(s.CancelReason) + len(s.SignedBy)
	n += cap(s.Items) * int(unsafe.Sizeof(Item{}))
	for _, it := range s.Items {
		n += len(it.SKU)
	}
	if a := s.ShippingAddress; a != nil {
		n += int(unsafe.Sizeof(*a)) + len(a.Name) + len(a.Line1) + len(a.City) + len(a.PostalCode) + len(a.Country)
	}
	return n
}

// Exists reports whether the order has been created.
func (s State) Exists() bool { return s.Version > 0 }

// StreamType is the category of order streams.
const StreamType = "order"

// StreamID returns the stream of an order: "order-" + id.
// Errors: *InvalidError (field "order_id") when id is not a valid order id.
func StreamID(id string) (string, error) {
	if err := ValidID("order_id", id); err != nil {
		return "", err
	}
	return StreamType + "-" + id, nil
}

// IDFromStream returns the order id of an order stream id.
func IDFromStream(stream string) (string, bool) {
	return strings.CutPrefix(stream, StreamType+"-")
}

// MaxIDLength bounds order, customer ids and SKUs.
const MaxIDLength = 64

// ValidID checks an id: 1 to 64 characters of [A-Za-z0-9_-].
// Errors: *InvalidError naming field.
func ValidID(field, id string) error {
	if id == "" {
		return &InvalidError{Field: field, Reason: "required"}
	}
	if len(id) > MaxIDLength {
		return &InvalidError{Field: field, Reason: "longer than 64 characters"}
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return &InvalidError{Field: field, Reason: "may only contain A-Z, a-z, 0-9, '_' and '-'"}
		}
	}
	return nil
}

// SnapshotSchema is the version of State's JSON encoding in snapshots. Bump
// it whenever State changes shape, so that older snapshots are ignored.
const SnapshotSchema = 1
