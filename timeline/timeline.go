package timeline

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/freetext"
	"github.com/chronicle-es/chronicle/upcast"
)

// Reader reads one stream; every chronicle.Store is one.
type Reader interface {
	ReadStream(ctx context.Context, stream string, opts chronicle.ReadStreamOptions) ([]chronicle.RecordedEvent, error)
}

// Upcaster brings a stored event to the current shape of its type;
// *upcast.Registry is one.
type Upcaster interface {
	Upcast(e chronicle.RecordedEvent) (chronicle.RecordedEvent, error)
}

// Timeline is one order's events, upcast, in version order. Its JSON form is
// the body of GET /orders/{id}/events.
type Timeline struct {
	OrderID string  `json:"order_id"`
	Version int64   `json:"version"` // the stream version the timeline reflects
	Events  []Event `json:"events"`
}

// Event is one entry of a timeline.
type Event struct {
	Version       int64           `json:"version"`
	EventID       string          `json:"event_id"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"` // the schema of Data as shown
	Data          json.RawMessage `json:"data"`
	Metadata      json.RawMessage `json:"metadata"`
	RecordedAt    time.Time       `json:"recorded_at"`
	Position      int64           `json:"position"`
	// Hash and PrevHash are the stored event's hash chain (lowercase hex;
	// see package audit): over the event as stored, not as upcast.
	Hash     string `json:"hash"`
	PrevHash string `json:"prev_hash"`
	// StoredSchemaVersion is the schema version in the store when it differs
	// from SchemaVersion: the event was upcast for display.
	StoredSchemaVersion int `json:"stored_schema_version,omitempty"`
	// UpcastError says why a declared event type could not be upcast; Data
	// is then shown as stored. A debugging tool shows such events rather
	// than failing on them.
	UpcastError string `json:"upcast_error,omitempty"`
}

// Load reads stream (the order's event stream) and returns its timeline
// under the name orderID, upcast through up (nil: as stored). opts limits
// the events read, e.g. To for a timeline up to a version.
//
// Errors: chronicle.ErrStreamNotFound when the stream has no events (or none
// within opts); store errors otherwise. ctx cancels the read.
func Load(ctx context.Context, r Reader, up Upcaster, orderID, stream string, opts chronicle.ReadStreamOptions) (*Timeline, error) {
	events, err := r.ReadStream(ctx, stream, opts)
	if err != nil {
		return nil, fmt.Errorf("timeline %s: %w", orderID, err)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("timeline %s: %w", orderID, chronicle.ErrStreamNotFound)
	}
	return New(orderID, events, up), nil
}

// New builds the timeline of events (one stream's, in version order) under
// the name orderID, upcast through up (nil: as stored).
func New(orderID string, events []chronicle.RecordedEvent, up Upcaster) *Timeline {
	t := &Timeline{OrderID: orderID, Events: make([]Event, 0, len(events))}
	for _, re := range events {
		stored := max(re.SchemaVersion, 1)
		hash, prev := hex.EncodeToString(re.Hash[:]), hex.EncodeToString(re.PrevHash[:])
		var upErr string
		if up != nil {
			u, err := up.Upcast(re)
			switch {
			case err == nil:
				re = u
			case undeclared(err):
				// An unknown type has no current shape: show it as stored.
			default:
				upErr = upcastReason(err)
			}
		}
		e := Event{
			Version:       re.Version,
			EventID:       re.ID,
			Type:          re.Type,
			SchemaVersion: max(re.SchemaVersion, 1),
			Data:          re.Data,
			Metadata:      re.Metadata,
			RecordedAt:    re.RecordedAt.UTC(),
			Position:      re.Position,
			Hash:          hash,
			PrevHash:      prev,
			UpcastError:   upErr,
		}
		if len(e.Metadata) == 0 {
			e.Metadata = json.RawMessage("{}")
		}
		if stored != e.SchemaVersion {
			e.StoredSchemaVersion = stored
		}
		t.Events = append(t.Events, e)
		t.Version = re.Version
	}
	return t
}

// upcastReason is err without the stream and version the timeline line
// already shows.
func upcastReason(err error) string {
	var ue *upcast.Error
	if errors.As(err, &ue) {
		if ue.Err != nil {
			return ue.Reason + ": " + ue.Err.Error()
		}
		return ue.Reason
	}
	return err.Error()
}

func undeclared(err error) bool {
	var ue *upcast.Error
	return errors.As(err, &ue) && errors.Is(err, upcast.ErrUnknown) && ue.Current == 0
}

// WriteText writes the timeline in the CLI's text format: "ID:" then one
// line per event, "  vN Type {summary}".
func (t *Timeline) WriteText(w io.Writer) error {
	_, err := io.WriteString(w, t.Text())
	return err
}

// Text returns the timeline in the CLI's text format (see WriteText).
func (t *Timeline) Text() string {
	var b strings.Builder
	// Each line escaped as a whole: old events may hold controls, bidi
	// overrides or line separators anywhere (values, keys, types), which
	// would break the line or display as something else.
	b.WriteString(freetext.Escape(t.OrderID) + ":\n")
	currency := "USD"
	for _, e := range t.Events {
		if c := stringField(e.Data, "currency"); e.Type == "OrderCreated" && c != "" {
			currency = c
		}
		line := fmt.Sprintf("  v%d %s %s", e.Version, e.Type, Summary(e.Type, e.Data, currency))
		if e.UpcastError != "" {
			line += fmt.Sprintf(" (as stored at schema v%d, not upcast: %s)", e.SchemaVersion, e.UpcastError)
		}
		b.WriteString(freetext.Escape(line) + "\n")
	}
	return b.String()
}

// WriteJSON writes the timeline as indented JSON, as GET
// /orders/{id}/events answers it.
func (t *Timeline) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(t)
}
