package order

// Command is one of the order commands below. Their JSON names are the
// request bodies of API.md.
type Command interface {
	// Name is the command's verb in error messages, e.g. "pay".
	Name() string
}

// Create creates an order. Currency defaults to DefaultCurrency; Total, when
// nil, to the sum of the items.
type Create struct {
	CustomerID string `json:"customer_id"`
	Currency   string `json:"currency,omitempty"`
	Items      []Item `json:"items,omitempty"`
	Total      *int64 `json:"total,omitempty"`
}

// AddItem adds an item (only before payment).
type AddItem struct {
	SKU       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"`
}

// RemoveItem removes a SKU's line (only before payment).
type RemoveItem struct {
	SKU string `json:"sku"`
}

// ChangeShippingAddress sets the shipping address (before shipment).
type ChangeShippingAddress struct {
	Address
}

// Pay pays the order; Amount must equal its total.
type Pay struct {
	Method string `json:"method"`
	Amount int64  `json:"amount"`
}

// Ship ships a paid order.
type Ship struct {
	Carrier  string `json:"carrier"`
	Tracking string `json:"tracking"`
}

// Deliver records the delivery of a shipped order.
type Deliver struct {
	SignedBy string `json:"signed_by"`
}

// Cancel cancels an order that has not been shipped.
type Cancel struct {
	Reason string `json:"reason"`
}

func (Create) Name() string                { return "create" }
func (AddItem) Name() string               { return "add an item to" }
func (RemoveItem) Name() string            { return "remove an item from" }
func (ChangeShippingAddress) Name() string { return "change the shipping address of" }
func (Pay) Name() string                   { return "pay" }
func (Ship) Name() string                  { return "ship" }
func (Deliver) Name() string               { return "deliver" }
func (Cancel) Name() string                { return "cancel" }
