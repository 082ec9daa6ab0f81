package audit

import (
	"crypto/sha256"
	"fmt"

	"github.com/chronicle-es/chronicle"
)

// emptyMetadata is the metadata digest of an event without metadata: the
// SHA-256 of {}.
var emptyMetadata = Hash(sha256.Sum256([]byte("{}")))

// PrepareAppend is chronicle.PrepareAppend for a store that hashes: it also
// returns each event's Digests (data, then metadata), canonicalizing each
// event's JSON in the pass that validates it: an append checks and hashes
// every event, and one parse is cheaper than two.
//
// Errors: those of chronicle.PrepareAppend, the same for the same input;
// else an *chronicle.InvalidError naming events[i] for the first JSON
// without a canonical form (see Canonicalize), its reason prefixed with
// "data: " or "metadata: ".
func PrepareAppend(stream string, expected chronicle.ExpectedVersion, events []chronicle.Event, lim chronicle.Limits) ([]chronicle.Event, [][2]Hash, error) {
	sums := make([][2]Hash, len(events))
	var canonErr error // reported after PrepareAppend's own errors
	p := parsers.Get().(*parser)
	defer p.release()
	evs, err := chronicle.PrepareAppendWith(stream, expected, events, lim, func(i int, metadata bool, b []byte) error {
		c, err := p.canonicalize(b)
		if err != nil || p.unsure {
			// ValidateJSON's verdict and message, which the
			// canonicalizer's do not always match.
			if verr := chronicle.ValidateJSON(b); verr != nil {
				return verr
			}
		}
		k, field := 0, "data"
		if metadata {
			k, field = 1, "metadata"
		}
		if err != nil {
			if canonErr == nil {
				canonErr = &chronicle.InvalidError{Field: fmt.Sprintf("events[%d]", i), Reason: fmt.Sprintf("%s: %v", field, err)}
			}
			return nil
		}
		sums[i][k] = sha256.Sum256(c)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if canonErr != nil {
		return nil, nil, canonErr
	}
	for i, e := range evs {
		if len(e.Metadata) == 0 {
			sums[i][1] = emptyMetadata
		}
	}
	return evs, sums, nil
}
