package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle"
)

// Hash is a SHA-256 digest: an event's hash, a Merkle root, a seal hash. Its
// text form is 64 lowercase hex digits.
type Hash [sha256.Size]byte

// ZeroHash is the prev_hash of a stream's version 1 and the prev_seal_hash of
// seal 1.
var ZeroHash Hash

// TimeFormat is how recorded_at and sealed_at are written, in UTC, in hashes
// and in bundles: always six fractional digits.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// ErrHash: a string is not a hash in its text form.
var ErrHash = errors.New("audit: not a lowercase hex SHA-256")

// ParseHash parses 64 lowercase hex digits. It returns an error matching
// ErrHash for anything else (uppercase included: the text form is unique).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) || strings.ToLower(s) != s {
		return h, fmt.Errorf("%w: %q", ErrHash, s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: %q", ErrHash, s)
	}
	return h, nil
}

// String returns h as 64 lowercase hex digits.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText returns h's text form.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses h's text form; see ParseHash.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	*h = v
	return err
}

// Event is what an event's hash covers: one stored event's fields, in the
// stored form (before any upcasting), and the hash of the stream's previous
// event.
type Event struct {
	PrevHash      Hash // ZeroHash for version 1
	StreamID      string
	Version       int64
	EventID       string
	Type          string
	SchemaVersion int
	RecordedAt    time.Time
	Data          json.RawMessage
	Metadata      json.RawMessage // nil or JSON null: hashed as {}
}

// FromRecorded returns the hashed fields of a stored event, whose stream's
// previous event has hash prev (ZeroHash for version 1).
func FromRecorded(e chronicle.RecordedEvent, prev Hash) Event {
	return Event{
		PrevHash: prev, StreamID: e.StreamID, Version: e.Version, EventID: e.ID,
		Type: e.Type, SchemaVersion: e.SchemaVersion, RecordedAt: e.RecordedAt,
		Data: e.Data, Metadata: e.Metadata,
	}
}

// HashEvent returns e's hash: SHA-256 of these lines joined by "\n" (no
// trailing newline): prev_hash, stream_id, version, event_id, type,
// schema_version, recorded_at (UTC, TimeFormat), then the hex SHA-256 of the
// canonical (RFC 8785) data and of the canonical metadata ({} when nil or
// null).
//
// recorded_at is written truncated to the microsecond: hash the time as the
// store keeps it (PostgreSQL rounds to microseconds), not a finer one.
//
// It returns an error matching ErrJSON when data or metadata cannot be
// canonicalized (see Canonicalize).
func HashEvent(e Event) (Hash, error) {
	data, meta, err := Digests(e.Data, e.Metadata)
	if err != nil {
		return Hash{}, fmt.Errorf("hash event %s v%d: %w", e.StreamID, e.Version, err)
	}
	return HashLines(e.PrevHash, e.StreamID, e.Version, e.EventID, e.Type, e.SchemaVersion, e.RecordedAt, data, meta), nil
}

// Digests returns the SHA-256 of the canonical (RFC 8785) data and of the
// canonical metadata ({} when nil or null): the last two lines of an
// event's hash are their hex. A store computes them once per event, before
// it knows the event's version, prev_hash and recorded_at (see HashLines
// and PrepareAppend). The error matches ErrJSON.
func Digests(data, metadata json.RawMessage) (dataSum, metadataSum Hash, err error) {
	if dataSum, err = jsonHash(data, ""); err != nil {
		return Hash{}, Hash{}, fmt.Errorf("data: %w", err)
	}
	if metadataSum, err = jsonHash(metadata, "{}"); err != nil {
		return Hash{}, Hash{}, fmt.Errorf("metadata: %w", err)
	}
	return dataSum, metadataSum, nil
}

// HashLines returns an event's hash from its fields, with data and metadata
// given by their Digests; HashEvent is HashLines of Digests.
func HashLines(prev Hash, streamID string, version int64, eventID, typ string, schemaVersion int, recordedAt time.Time, dataSum, metadataSum Hash) Hash {
	var buf [512]byte
	b := hex.AppendEncode(buf[:0], prev[:])
	b = append(append(b, '\n'), streamID...)
	b = strconv.AppendInt(append(b, '\n'), version, 10)
	b = append(append(b, '\n'), eventID...)
	b = append(append(b, '\n'), typ...)
	b = strconv.AppendInt(append(b, '\n'), int64(schemaVersion), 10)
	b = appendTime(append(b, '\n'), recordedAt)
	b = hex.AppendEncode(append(b, '\n'), dataSum[:])
	b = hex.AppendEncode(append(b, '\n'), metadataSum[:])
	return sha256.Sum256(b)
}

// appendTime appends t.UTC().Format(TimeFormat), several times faster (an
// append hashes every event).
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeFormat)
	}
	b = appendDigits(b, year, 4)
	b = appendDigits(append(b, '-'), int(month), 2)
	b = appendDigits(append(b, '-'), day, 2)
	b = appendDigits(append(b, 'T'), hour, 2)
	b = appendDigits(append(b, ':'), minute, 2)
	b = appendDigits(append(b, ':'), sec, 2)
	b = appendDigits(append(b, '.'), t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends n (>= 0) in exactly width decimal digits.
func appendDigits(b []byte, n, width int) []byte {
	for i := width - 1; i >= 0; i-- {
		b = append(b, 0)
	}
	for i := len(b) - 1; i >= len(b)-width; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
}

// jsonHash is the SHA-256 of b's canonical form; b empty or null is
// replaced by null, when it is "" (data: the value as stored).
func jsonHash(b json.RawMessage, null string) (Hash, error) {
	if null != "" && (len(b) == 0 || string(b) == "null") {
		b = json.RawMessage(null)
	}
	p := parsers.Get().(*parser)
	defer p.release()
	c, err := p.canonicalize(b)
	if err != nil {
		return Hash{}, err
	}
	return sha256.Sum256(c), nil
}

// CheckStream checks one stream's chain: events are that stream's events in
// version order, each with the hash stored with it in hashes. Versions must
// be contiguous; the first event's link is checked only when it is version 1
// (whose prev_hash must be ZeroHash).
//
// It returns nil, or an *IntegrityError (matching ErrIntegrity) naming the
// first event whose stored hash is not its recomputed hash, or whose
// prev_hash is not the previous event's hash.
func CheckStream(events []Event, hashes []Hash) error {
	if len(events) != len(hashes) {
		return fmt.Errorf("check stream: %d events but %d hashes", len(events), len(hashes))
	}
	for i, e := range events {
		fail := func(format string, a ...any) error {
			return &IntegrityError{StreamID: e.StreamID, Version: e.Version, Reason: fmt.Sprintf(format, a...)}
		}
		switch {
		case i > 0 && e.StreamID != events[0].StreamID:
			return fail("not in stream %s", events[0].StreamID)
		case i > 0 && e.Version != events[i-1].Version+1:
			return fail("follows version %d", events[i-1].Version)
		case e.Version == 1 && e.PrevHash != ZeroHash:
			return fail("prev_hash of version 1 is not 64 zeros")
		case i > 0 && e.PrevHash != hashes[i-1]:
			return fail("prev_hash is not the hash of version %d", events[i-1].Version)
		}
		h, err := HashEvent(e)
		if err != nil {
			return fail("cannot hash: %v", err)
		}
		if h != hashes[i] {
			return fail("hash does not match the event's contents")
		}
	}
	return nil
}

// ErrIntegrity: something hashed, chained, sealed or signed does not hold.
// The error is an *IntegrityError.
var ErrIntegrity = errors.New("audit: integrity check failed")

// IntegrityError names what broke: an event (by position when known, stream
// and version) or a seal (by seq), and how.
type IntegrityError struct {
	Position int64  // the event's global position; 0 when unknown or a seal broke
	StreamID string // the event's stream; "" when a seal broke
	Version  int64
	Seal     int64 // the seal's seq when a seal broke
	Reason   string
}

func (e *IntegrityError) Error() string {
	var where string
	switch {
	case e.StreamID != "" && e.Position != 0:
		where = fmt.Sprintf("position %d (%s v%d)", e.Position, e.StreamID, e.Version)
	case e.StreamID != "":
		where = fmt.Sprintf("%s v%d", e.StreamID, e.Version)
	case e.Seal != 0:
		where = fmt.Sprintf("seal %d", e.Seal)
	case e.Position != 0:
		where = fmt.Sprintf("position %d", e.Position)
	default:
		where = "bundle"
	}
	return fmt.Sprintf("audit: %s: %s", where, e.Reason)
}

// Is makes errors.Is(err, ErrIntegrity) true.
func (e *IntegrityError) Is(target error) bool { return target == ErrIntegrity }
