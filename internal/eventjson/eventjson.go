// Package eventjson turns stored events into the feed's wire form
// (feed.Event): the JSON of GET /events, of its Server-Sent Events, and of
// the messages the relay publishes. One encoder for all three, so they can
// never differ.
package eventjson

import (
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
