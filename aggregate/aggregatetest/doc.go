// Package aggregatetest tests the pure part of an aggregate.Definition with
// given/when/then cases: given these events, when this command, then these
// events or this error. The given events are encoded, recorded and upcast
// the way a store would hand them to Evolve.
package aggregatetest
