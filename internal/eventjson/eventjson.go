// Package eventjson turns stored events into the feed's wire form
// (feed.Event): the JSON of GET /events, of its Server-Sent Events, and of
// the messages the relay publishes. One encoder for all three, so they can
// never differ.
package eventjson

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/feed"
	"github.com/chronicle-es/chronicle/timeline"
)

// Events turns stored events into the feed's, upcast as timelines are
// (through the same code, so the two never differ). An event that cannot be
// upcast keeps its stored data and says why in UpcastError.
func Events(page []chronicle.RecordedEvent, up timeline.Upcaster) []feed.Event {
	tl := timeline.New("", page, up)
	out := make([]feed.Event, len(page))
	for i, e := range tl.Events {
		re := page[i]
		out[i] = feed.Event{
			Checkpoint:          feed.EncodeCheckpoint(re.Checkpoint()),
			Position:            re.Position,
			StreamID:            re.StreamID,
			Version:             re.Version,
			EventID:             re.ID,
			Type:                e.Type,
			SchemaVersion:       e.SchemaVersion,
			Data:                e.Data,
			Metadata:            e.Metadata,
			RecordedAt:          e.RecordedAt,
			StoredSchemaVersion: e.StoredSchemaVersion,
			UpcastError:         e.UpcastError,
			Hash:                e.Hash,
			PrevHash:            e.PrevHash,
		}
	}
	return out
}

// Append appends the JSON of e to dst: byte for byte what json.Marshal(e)
// gives, without its reflection and without validating Data and Metadata
// again, which are valid JSON (the store and the upcasters check them). The
// relay encodes every event of the log with it.
func Append(dst []byte, e feed.Event) ([]byte, error) {
	dst = append(dst, `{"checkpoint":`...)
	dst = appendString(dst, e.Checkpoint)
	dst = append(dst, `,"position":`...)
	dst = strconv.AppendInt(dst, e.Position, 10)
	dst = append(dst, `,"stream_id":`...)
	dst = appendString(dst, e.StreamID)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, e.Version, 10)
	dst = append(dst, `,"event_id":`...)
	dst = appendString(dst, e.EventID)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, e.Type)
	dst = append(dst, `,"schema_version":`...)
	dst = strconv.AppendInt(dst, int64(e.SchemaVersion), 10)
	dst = append(dst, `,"data":`...)
	dst = appendRaw(dst, e.Data)
	dst = append(dst, `,"metadata":`...)
	dst = appendRaw(dst, e.Metadata)
	dst = append(dst, `,"recorded_at":"`...)
	dst, err := e.RecordedAt.AppendText(dst) // what Time.MarshalJSON quotes
	if err != nil {
		return nil, fmt.Errorf("encode recorded_at: %w", err)
	}
	dst = append(dst, `","hash":`...)
	dst = appendString(dst, e.Hash)
	dst = append(dst, `,"prev_hash":`...)
	dst = appendString(dst, e.PrevHash)
	if e.StoredSchemaVersion != 0 {
		dst = append(dst, `,"stored_schema_version":`...)
		dst = strconv.AppendInt(dst, int64(e.StoredSchemaVersion), 10)
	}
	if e.UpcastError != "" {
		dst = append(dst, `,"upcast_error":`...)
		dst = appendString(dst, e.UpcastError)
	}
	return append(dst, '}'), nil
}

// appendString appends s as encoding/json quotes it; a string of plain
// ASCII, the usual case, as it is.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendRaw appends the valid JSON b as json.Marshal writes a
// json.RawMessage: compacted (white space outside strings dropped), with
// '<', '>', '&', U+2028 and U+2029 escaped; none as null.
func appendRaw(dst, b []byte) []byte {
	if len(b) == 0 {
		return append(dst, "null"...)
	}
	start, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString && c == '\\':
			i++ // the escaped byte, maybe '"', stays in the string
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			dst = append(dst, b[start:i]...)
			start = i + 1
		case c == '<' || c == '>' || c == '&':
			dst = append(dst, b[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && b[i+2]&^1 == 0xA8:
			dst = append(dst, b[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[b[i+2]&0xF])
			i += 2
			start = i + 1
		}
	}
	return append(dst, b[start:]...)
}

const hex = "0123456789abcdef"
