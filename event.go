package chronicle

import (
	"encoding/json"
	"strings"
	"time"
)

// Event is an event to append to a stream.
type Event struct {
	// ID identifies the event globally; it is what makes a retried append
	// idempotent. It must be a UUID in canonical form; when empty the store
	// assigns a new one (see NewEventID).
	ID string
	// Type names the event, e.g. "OrderCreated". Required.
	Type string
	// SchemaVersion is the version of Data's shape for Type. 0 means 1.
	SchemaVersion int
	// Data is the payload: any JSON value, usually an object.
	Data json.RawMessage
	// Metadata is an optional JSON object. By convention it carries
	// "correlation_id" and "causation_id" (see Metadata).
	Metadata json.RawMessage
}

// RecordedEvent is an event as stored: the appended event plus where and when
// it landed.
type RecordedEvent struct {
	StreamID      string
	StreamType    string // see StreamType
	Version       int64  // 1-based, contiguous within the stream
	Position      int64  // global position; unique, increasing in insert order
	TxID          uint64 // commit-order key; see Checkpoint
	RecordedAt    time.Time
	ID            string
	Type          string
	SchemaVersion int
	Data          json.RawMessage
	Metadata      json.RawMessage
	// Hash is the event's SHA-256 over its stored form, chained to the
	// stream's previous event by PrevHash (all zeros for version 1); the
	// definition is in package audit.
	Hash     [32]byte
	PrevHash [32]byte
}

// Checkpoint returns the point in the global log just after e.
func (e RecordedEvent) Checkpoint() Checkpoint {
	return Checkpoint{TxID: e.TxID, Position: e.Position}
}

// Checkpoint is a place in the global log. Readers of the log get events in
// (TxID, Position) order, which is commit order on every backend: on
// PostgreSQL TxID is the writing transaction's id, on SQLite (one writer at a
// time) it equals Position. The zero Checkpoint is the start of the log.
type Checkpoint struct {
	TxID     uint64
	Position int64
}

// Before reports whether c comes before d in the global log.
func (c Checkpoint) Before(d Checkpoint) bool {
	if c.TxID != d.TxID {
		return c.TxID < d.TxID
	}
	return c.Position < d.Position
}

// IsZero reports whether c is the start of the log.
func (c Checkpoint) IsZero() bool { return c == Checkpoint{} }

// StreamType returns the category of a stream id: the part before the first
// '-' ("order" for "order-ord_123"), or the whole id when it has none.
func StreamType(streamID string) string {
	if i := strings.IndexByte(streamID, '-'); i >= 0 {
		return streamID[:i]
	}
	return streamID
}

// Metadata is the conventional shape of Event.Metadata.
type Metadata struct {
	CorrelationID string `json:"correlation_id,omitempty"`
	CausationID   string `json:"causation_id,omitempty"`
	// Actor names who appended the event: a token's name, a JWT's
	// subject, "anonymous", or "cli:" and the OS user.
	Actor string `json:"actor,omitempty"`
	// RequestID is the id of the request (or CLI run) that appended it.
	RequestID string `json:"request_id,omitempty"`
}

// JSON returns m encoded as a JSON object, or nil when m is empty.
func (m Metadata) JSON() json.RawMessage {
	if m == (Metadata{}) {
		return nil
	}
	b, _ := json.Marshal(m) // cannot fail: strings only
	return b
}
