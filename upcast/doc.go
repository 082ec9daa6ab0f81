// Package upcast turns stored events of an older schema version into the
// current shape of their type, so that old events are never rewritten and
// code reading them only ever sees one shape per type.
//
// A Registry is built explicitly at start-up (NewRegistry, then Declare and
// Register) and passed to every read path: aggregate loads, the global log
// readers of projections, rebuilds and the timeline. There is no global
// registry.
package upcast
