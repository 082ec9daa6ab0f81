package order

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched by the typed errors below with errors.Is.
var (
	// ErrInvalid: the command's input is malformed (HTTP 400).
	ErrInvalid = errors.New("order: invalid input")
	// ErrRuleViolation: the command is not allowed in the order's current
	// state (HTTP 409, with the current status).
	ErrRuleViolation = errors.New("order: not allowed")
	// ErrNotFound: the order, or the item the command names, does not
	// exist (HTTP 404).
	ErrNotFound = errors.New("order: not found")
	// ErrAlreadyExists: Create on an existing order (HTTP 409).
	ErrAlreadyExists = errors.New("order: already exists")
)

// InvalidError names the input field that is wrong. It matches ErrInvalid.
type InvalidError struct {
	Field  string // the JSON name, e.g. "quantity", "items[1].sku"
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("order: invalid %s: %s", e.Field, e.Reason)
}

// Is matches ErrInvalid, and an *InvalidError target whose non-empty Field
// equals e's (so tests can say which field they expect).
func (e *InvalidError) Is(target error) bool {
	if t, ok := target.(*InvalidError); ok {
		return t.Field == "" || t.Field == e.Field
	}
	return target == ErrInvalid
}

// RuleError says a command is not allowed in the order's current state.
// It matches ErrRuleViolation.
type RuleError struct {
	Command string // e.g. "pay"
	Status  Status // the order's current status
	Reason  string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("order: cannot %s an order that is %s: %s", e.Command, e.Status, e.Reason)
}

// Is matches ErrRuleViolation, and a *RuleError target whose non-empty
// fields (Command, Status) equal e's.
func (e *RuleError) Is(target error) bool {
	if t, ok := target.(*RuleError); ok {
		return (t.Command == "" || t.Command == e.Command) && (t.Status == "" || t.Status == e.Status)
	}
	return target == ErrRuleViolation
}

// NotFoundError says the order, or an item of it, does not exist.
// It matches ErrNotFound.
type NotFoundError struct {
	OrderID string // empty when the order itself is missing and unnamed
	SKU     string // set when the order exists but the item does not
}

func (e *NotFoundError) Error() string {
	if e.SKU != "" {
		return fmt.Sprintf("order: item %q not in order %s", e.SKU, e.OrderID)
	}
	if e.OrderID != "" {
		return fmt.Sprintf("order: order %s not found", e.OrderID)
	}
	return "order: order not found"
}

// Is matches ErrNotFound, and a *NotFoundError target whose non-empty SKU
// equals e's.
func (e *NotFoundError) Is(target error) bool {
	if t, ok := target.(*NotFoundError); ok {
		return t.SKU == "" || t.SKU == e.SKU
	}
	return target == ErrNotFound
}

// AlreadyExistsError says Create named an existing order.
// It matches ErrAlreadyExists.
type AlreadyExistsError struct {
	OrderID string
	Status  Status
}

func (e *AlreadyExistsError) Error() string {
	return fmt.Sprintf("order: order %s already exists", e.OrderID)
}

// Is matches ErrAlreadyExists.
func (e *AlreadyExistsError) Is(target error) bool { return target == ErrAlreadyExists }
