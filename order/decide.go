package order

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/chronicle-es/chronicle/internal/freetext"
)

// DefaultCurrency is the currency of an order created without one.
const DefaultCurrency = "USD"

// MaxMoney bounds every amount: 2^53-1 minor units, the largest integer a
// JSON client using doubles (JavaScript) reads exactly.
const MaxMoney = 1<<53 - 1

// MaxItems bounds an order's lines: a create with more is invalid, and
// adding a new line to a full order breaks a rule.
const MaxItems = 1000

// MaxTextLength bounds free-text fields, in bytes.
const MaxTextLength = 256

// Decide returns the events that cmd causes on an order in state s, or the
// reason it is refused. Checks run in this order: the command's input
// (*InvalidError), the order's existence (*NotFoundError, or
// *AlreadyExistsError for Create), then the rules of its current status and
// values (*RuleError). It never modifies s.
func Decide(s State, cmd Command) ([]Event, error) {
	switch c := cmd.(type) {
	case Create:
		return decideCreate(s, c)
	case AddItem:
		return decideAddItem(s, c)
	case RemoveItem:
		return decideRemoveItem(s, c)
	case ChangeShippingAddress:
		return decideChangeShippingAddress(s, c)
	case Pay:
		return decidePay(s, c)
	case Ship:
		return decideShip(s, c)
	case Deliver:
		return decideDeliver(s, c)
	case Cancel:
		return decideCancel(s, c)
	}
	return nil, &InvalidError{Field: "command", Reason: fmt.Sprintf("unknown command %T", cmd)}
}

func decideCreate(s State, c Create) ([]Event, error) {
	if err := ValidID("customer_id", c.CustomerID); err != nil {
		return nil, err
	}
	currency := c.Currency
	if currency == "" {
		currency = DefaultCurrency
	} else if !validCurrency(currency) {
		return nil, &InvalidError{Field: "currency", Reason: "must be 3 upper-case letters (ISO 4217), e.g. USD"}
	}
	if len(c.Items) > MaxItems {
		return nil, &InvalidError{Field: "items", Reason: fmt.Sprintf("%d items, more than the %d an order may hold", len(c.Items), MaxItems)}
	}
	items := make([]Item, 0, len(c.Items))
	seen := make(map[string]struct{}, len(c.Items))
	var sum int64
	for i, it := range c.Items {
		if err := validItem("items["+strconv.Itoa(i)+"].", it.SKU, it.Quantity, it.UnitPrice); err != nil {
			return nil, err
		}
		if _, dup := seen[it.SKU]; dup {
			return nil, &InvalidError{Field: "items[" + strconv.Itoa(i) + "].sku", Reason: fmt.Sprintf("SKU %q listed twice", it.SKU)}
		}
		seen[it.SKU] = struct{}{}
		sum += it.Quantity * it.UnitPrice // each line <= MaxMoney, so no overflow here
		if sum > MaxMoney {
			return nil, &InvalidError{Field: "items", Reason: fmt.Sprintf("total exceeds %d", int64(MaxMoney))}
		}
		items = append(items, it)
	}
	total := sum
	if c.Total != nil {
		total = *c.Total
		switch {
		case total < 0:
			return nil, &InvalidError{Field: "total", Reason: "must not be negative"}
		case total > MaxMoney:
			return nil, &InvalidError{Field: "total", Reason: fmt.Sprintf("exceeds %d", int64(MaxMoney))}
		case len(items) > 0 && total != sum:
			return nil, &InvalidError{Field: "total", Reason: fmt.Sprintf("%d is not the sum of the items (%d)", total, sum)}
		}
	}
	if s.Exists() {
		return nil, &AlreadyExistsError{OrderID: s.OrderID, Status: s.Status}
	}
	return []Event{OrderCreated{CustomerID: c.CustomerID, Currency: currency, Items: items, Total: total}}, nil
}

func decideAddItem(s State, c AddItem) ([]Event, error) {
	if err := validItem("", c.SKU, c.Quantity, c.UnitPrice); err != nil {
		return nil, err
	}
	if err := exists(s); err != nil {
		return nil, err
	}
	if s.Status != StatusCreated {
		return nil, refuse(c, s, "items can only change before payment")
	}
	i := s.item(c.SKU)
	if i >= 0 && s.Items[i].UnitPrice != c.UnitPrice {
		return nil, refuse(c, s, fmt.Sprintf("SKU %q is already in the order at unit price %d", c.SKU, s.Items[i].UnitPrice))
	}
	if i < 0 && len(s.Items) >= MaxItems {
		return nil, refuse(c, s, fmt.Sprintf("the order already holds the most items (%d)", MaxItems))
	}
	if s.Total > MaxMoney-c.Quantity*c.UnitPrice {
		return nil, refuse(c, s, fmt.Sprintf("the total would exceed %d", int64(MaxMoney)))
	}
	return []Event{ItemAdded(c)}, nil
}

func decideRemoveItem(s State, c RemoveItem) ([]Event, error) {
	if err := ValidID("sku", c.SKU); err != nil {
		return nil, err
	}
	if err := exists(s); err != nil {
		return nil, err
	}
	if s.Status != StatusCreated {
		return nil, refuse(c, s, "items can only change before payment")
	}
	if s.item(c.SKU) < 0 {
		return nil, &NotFoundError{OrderID: s.OrderID, SKU: c.SKU}
	}
	return []Event{ItemRemoved(c)}, nil
}

func decideChangeShippingAddress(s State, c ChangeShippingAddress) ([]Event, error) {
	a := c.Address
	for _, f := range []struct{ name, value string }{
		{"name", a.Name}, {"line1", a.Line1}, {"city", a.City}, {"postal_code", a.PostalCode}, {"country", a.Country},
	} {
		if err := validText(f.name, f.value, true); err != nil {
			return nil, err
		}
	}
	if err := exists(s); err != nil {
		return nil, err
	}
	if s.Status != StatusCreated && s.Status != StatusPaid {
		return nil, refuse(c, s, "the address can only change before shipment")
	}
	return []Event{ShippingAddressChanged(c)}, nil
}

func decidePay(s State, c Pay) ([]Event, error) {
	if err := validText("method", c.Method, true); err != nil {
		return nil, err
	}
	if c.Amount <= 0 {
		return nil, &InvalidError{Field: "amount", Reason: "must be positive"}
	}
	if err := exists(s); err != nil {
		return nil, err
	}
	if s.Status != StatusCreated {
		return nil, refuse(c, s, "only an order awaiting payment can be paid")
	}
	if c.Amount != s.Total {
		return nil, refuse(c, s, fmt.Sprintf("amount %d is not the total %d", c.Amount, s.Total))
	}
	return []Event{PaymentReceived(c)}, nil
}

func decideShip(s State, c Ship) ([]Event, error) {
	if err := validText("carrier", c.Carrier, true); err != nil {
		return nil, err
	}
	if err := validText("tracking", c.Tracking, true); err != nil {
		return nil, err
	}
	if err := exists(s); err != nil {
		return nil, err
	}
	if s.Status != StatusPaid {
		return nil, refuse(c, s, "only a paid order can be shipped")
	}
	return []Event{OrderShipped(c)}, nil
}

func decideDeliver(s State, c Deliver) ([]Event, error) {
	if err := validText("signed_by", c.SignedBy, false); err != nil {
		return nil, err
	}
	if err := exists(s); err != nil {
		return nil, err
	}
	if s.Status != StatusShipped {
		return nil, refuse(c, s, "only a shipped order can be delivered")
	}
	return []Event{OrderDelivered(c)}, nil
}

func decideCancel(s State, c Cancel) ([]Event, error) {
	if err := validText("reason", c.Reason, false); err != nil {
		return nil, err
	}
	if err := exists(s); err != nil {
		return nil, err
	}
	if s.Status != StatusCreated && s.Status != StatusPaid {
		return nil, refuse(c, s, "only an order that has not been shipped or cancelled can be cancelled")
	}
	return []Event{OrderCancelled(c)}, nil
}

func exists(s State) error {
	if !s.Exists() {
		return &NotFoundError{}
	}
	return nil
}

func refuse(c Command, s State, reason string) error {
	return &RuleError{Command: c.Name(), Status: s.Status, Reason: reason}
}

// item returns the index of sku's line, or -1.
func (s State) item(sku string) int {
	return slices.IndexFunc(s.Items, func(it Item) bool { return it.SKU == sku })
}

func validItem(prefix, sku string, quantity, unitPrice int64) error {
	if err := ValidID(prefix+"sku", sku); err != nil {
		return err
	}
	if quantity <= 0 {
		return &InvalidError{Field: prefix + "quantity", Reason: "must be positive"}
	}
	if unitPrice <= 0 {
		return &InvalidError{Field: prefix + "unit_price", Reason: "must be positive"}
	}
	if unitPrice > MaxMoney/quantity {
		return &InvalidError{Field: prefix + "quantity", Reason: fmt.Sprintf("quantity × unit_price exceeds %d", int64(MaxMoney))}
	}
	return nil
}

func validCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// validText checks free text: valid UTF-8, none of the characters
// freetext.Forbidden names (controls, NUL included: PostgreSQL cannot store
// it; bidi overrides; line separators), at most MaxTextLength bytes, and not
// blank when required.
func validText(field, s string, required bool) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return &InvalidError{Field: field, Reason: "required"}
	case len(s) > MaxTextLength:
		return &InvalidError{Field: field, Reason: fmt.Sprintf("longer than %d bytes", MaxTextLength)}
	case !utf8.ValidString(s):
		return &InvalidError{Field: field, Reason: "not valid UTF-8"}
	}
	for _, r := range s {
		if freetext.Forbidden(r) || r == utf8.RuneError {
			return &InvalidError{Field: field, Reason: fmt.Sprintf("contains %U: no control characters, bidirectional overrides or line separators", r)}
		}
	}
	return nil
}
