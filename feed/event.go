package feed

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/chronicle-es/chronicle/audit"
	"time"

	"github.com/chronicle-es/chronicle"
)

// Event is one event of the feed: the JSON of GET /events and the data of
// each Server-Sent Event.
type Event struct {
	// Checkpoint is where the event is in the global log; pass it back
	// (after=, Last-Event-ID, Subscribe's from) to read what follows it.
	Checkpoint    string          `json:"checkpoint"`
	Position      int64           `json:"position"`
	StreamID      string          `json:"stream_id"`
	Version       int64           `json:"version"`
	EventID       string          `json:"event_id"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"` // the schema of Data as sent
	Data          json.RawMessage `json:"data"`           // upcast to the current schema
	Metadata      json.RawMessage `json:"metadata"`       // a JSON object, {} when none
	RecordedAt    time.Time       `json:"recorded_at"`
	// Hash and PrevHash are the stored event's hash chain (lowercase hex
	// SHA-256; docs/audit.md says how to recompute them).
	Hash     string `json:"hash"`
	PrevHash string `json:"prev_hash"`

	// StoredSchemaVersion is the schema version in the store when the
	// event was upcast (it differs from SchemaVersion).
	StoredSchemaVersion int `json:"stored_schema_version,omitempty"`
	// UpcastError says why an event of a known type could not be upcast;
	// Data is then as stored, at SchemaVersion.
	UpcastError string `json:"upcast_error,omitempty"`
}

// ErrBadCheckpoint is returned by ParseCheckpoint for a string that no
// feed produced.
var ErrBadCheckpoint = errors.New("feed: bad checkpoint")

// checkpointEncoding is URL-safe and canonical (Strict: one string per
// checkpoint), so a checkpoint can be compared and stored as a string.
var checkpointEncoding = base64.RawURLEncoding.Strict()

// EncodeCheckpoint returns cp as the opaque, URL-safe string the feed
// uses: 22 characters, the zero checkpoint (the start of the log)
// included.
func EncodeCheckpoint(cp chronicle.Checkpoint) string {
	// The same string seals hold (last_checkpoint): one encoding.
	return audit.CheckpointString(cp)
}

// ParseCheckpoint decodes a string of EncodeCheckpoint.
// Errors: ErrBadCheckpoint.
func ParseCheckpoint(s string) (chronicle.Checkpoint, error) {
	bad := fmt.Errorf("%w: %.40q", ErrBadCheckpoint, s)
	if len(s) != 22 {
		return chronicle.Checkpoint{}, bad
	}
	b, err := checkpointEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return chronicle.Checkpoint{}, bad
	}
	cp := chronicle.Checkpoint{TxID: binary.BigEndian.Uint64(b[:8]), Position: int64(binary.BigEndian.Uint64(b[8:]))}
	// Positions start at 1; only the start of the log has no TxID.
	if cp.Position < 0 || (cp.TxID == 0) != (cp.Position == 0) {
		return chronicle.Checkpoint{}, bad
	}
	return cp, nil
}
