// Package seal seals a store's log and checks what was sealed: a Sealer
// runs inside `chronicle serve` (one per store) and seals the log up to its
// readable end at least every Options.Interval while events arrive; Verify
// recomputes every event hash, stream chain and seal of a store (`chronicle
// verify --integrity`); Export writes an audit bundle of some or all of its
// events (`chronicle audit export`) for audit.Check.
//
// The definitions of hashes, Merkle roots, seals and signatures are package
// audit's; this package reads them from, and writes them to, a store.
package seal
