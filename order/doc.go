// Package order is the order domain of chronicle: commands, events, state
// and the business rules of API.md. It is pure: no I/O, no clock, no store.
//
// Decide checks a command against the current State and returns the events
// it causes, or a typed error (*InvalidError, *RuleError, *NotFoundError,
// *AlreadyExistsError) that the HTTP layer maps to 400, 409, 404 and 409.
// Evolve folds one stored (already upcast) event into a State; created_at,
// updated_at and version come from the stored events, so a State is a pure
// function of the stream. Upcasters registers the schema history of the
// events with an upcast.Registry.
package order
