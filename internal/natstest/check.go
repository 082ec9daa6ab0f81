package natstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/feed"
	"github.com/chronicle-es/chronicle/internal/eventjson"
	"github.com/chronicle-es/chronicle/timeline"
)

// CheckRelayed compares what a consumer of the relay's stream got (msgs, in
// stream order) with the store's log: every stored event exactly once (by
// Nats-Msg-Id), each stream's events in version order, and each message's
// subject, headers and body (the JSON of GET /events) right. prefix is the
// relay's subject prefix.
func CheckRelayed(ctx context.Context, s chronicle.Store, up timeline.Upcaster, prefix string, msgs []Message) error {
	return CheckRelayedRevealed(ctx, s, up, prefix, msgs, nil)
}

// CheckRelayedRevealed is CheckRelayed for a relay that reveals personal
// fields: reveal turns each expected body (stored data, as encrypted) into
// what the relay publishes, as the relay's Options.Reveal does.
func CheckRelayedRevealed(ctx context.Context, s chronicle.Store, up timeline.Upcaster, prefix string, msgs []Message,
	reveal func(context.Context, [][]byte) ([][]byte, error)) error {
	var stored []chronicle.RecordedEvent
	var from chronicle.Checkpoint
	for {
		page, err := s.ReadAll(ctx, from, chronicle.ReadAllOptions{Limit: 1000})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		stored = append(stored, page...)
		from = page[len(page)-1].Checkpoint()
	}
	want := map[string]int{} // event id -> index in stored
	for i, e := range stored {
		want[e.ID] = i
	}
	seen := map[string]uint64{}
	last := map[string]int64{}
	var errs []error
	for _, m := range msgs {
		id := m.Header.Get("Nats-Msg-Id")
		if seq, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("event %s delivered twice: messages %d and %d", id, seq, m.Seq))
			continue
		}
		seen[id] = m.Seq
		i, ok := want[id]
		if !ok {
			errs = append(errs, fmt.Errorf("message %d: event %s not in the store", m.Seq, id))
			continue
		}
		e := stored[i]
		if v := last[e.StreamID]; e.Version != v+1 {
			errs = append(errs, fmt.Errorf("message %d: %s v%d after v%d", m.Seq, e.StreamID, e.Version, v))
		}
		last[e.StreamID] = e.Version
		body, _ := json.Marshal(eventjson.Events([]chronicle.RecordedEvent{e}, up)[0])
		if reveal != nil {
			bodies, err := reveal(ctx, [][]byte{body})
			if err != nil {
				return fmt.Errorf("reveal %s v%d: %w", e.StreamID, e.Version, err)
			}
			body = bodies[0]
		}
		if !bytes.Equal(body, m.Data) {
			errs = append(errs, fmt.Errorf("message %d: body\n%s\nwant\n%s", m.Seq, m.Data, body))
		}
		subject := prefix + "." + chronicle.StreamType(e.StreamID) + "." + e.Type
		if m.Subject != subject || m.Header.Get("Chronicle-Stream") != e.StreamID ||
			m.Header.Get("Chronicle-Version") != strconv.FormatInt(e.Version, 10) ||
			m.Header.Get("Chronicle-Checkpoint") != feed.EncodeCheckpoint(e.Checkpoint()) {
			errs = append(errs, fmt.Errorf("message %d: subject %s, headers %v; want %s for %s v%d", m.Seq, m.Subject, m.Header, subject, e.StreamID, e.Version))
		}
		if len(errs) > 10 {
			break
		}
	}
	for _, e := range stored {
		if _, ok := seen[e.ID]; !ok && len(errs) <= 10 {
			errs = append(errs, fmt.Errorf("%s v%d (position %d) never delivered", e.StreamID, e.Version, e.Position))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d messages for %d stored events: %v", len(msgs), len(stored), errs)
	}
	return nil
}
