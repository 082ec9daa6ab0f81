package personal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/chronicle-es/chronicle"
)

// Store is an event store that encrypts the personal fields of the events
// appended through it (see Policy); everything else passes through, reads
// included: events read back hold tokens (see Keyring.Reveal).
//
// A retried append (the same events, ids included) encrypts to the same
// tokens (see seal), so the store answers it as any retry: the original
// result.
type Store struct {
	chronicle.Store
	keys   *Keyring
	policy *Policy

	mu       sync.Mutex
	subjects map[string]string // stream -> subject, for events that name none
}

// NewStore returns s encrypting, with keys, the fields policy declares.
func NewStore(s chronicle.Store, keys *Keyring, policy *Policy) *Store {
	return &Store{Store: s, keys: keys, policy: policy, subjects: map[string]string{}}
}

// Unwrap returns the store this one wraps.
func (s *Store) Unwrap() chronicle.Store { return s.Store }

// Append encrypts the personal fields of events and appends them.
// Errors: those of the wrapped store's Append; *chronicle.InvalidError
// when an event's data or metadata holds Prefix in a string (only this
// store writes tokens); ErrNoSubject; the key store's.
func (s *Store) Append(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, error) {
	evs, err := s.seal(ctx, stream, events)
	if err != nil {
		return chronicle.AppendResult{}, err
	}
	return s.Store.Append(ctx, stream, expected, evs)
}

type appendRecorder interface {
	AppendRecorded(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, []chronicle.RecordedEvent, error)
}

// AppendRecorded is Append that also returns the events as stored (with
// tokens), when the wrapped store can; otherwise it reads them back.
func (s *Store) AppendRecorded(ctx context.Context, stream string, expected chronicle.ExpectedVersion, events []chronicle.Event) (chronicle.AppendResult, []chronicle.RecordedEvent, error) {
	evs, err := s.seal(ctx, stream, events)
	if err != nil {
		return chronicle.AppendResult{}, nil, err
	}
	if ar, ok := s.Store.(appendRecorder); ok {
		return ar.AppendRecorded(ctx, stream, expected, evs)
	}
	res, err := s.Store.Append(ctx, stream, expected, evs)
	if err != nil {
		return res, nil, err
	}
	rec, err := s.Store.ReadStream(ctx, stream, chronicle.ReadStreamOptions{From: res.FirstVersion, To: res.LastVersion})
	return res, rec, err
}

// seal returns events with their personal fields as tokens; events without
// any are the same values (no copy, no parse).
func (s *Store) seal(ctx context.Context, stream string, events []chronicle.Event) ([]chronicle.Event, error) {
	for i, e := range events {
		for _, part := range []struct {
			name string
			b    []byte
		}{{"data", e.Data}, {"metadata", e.Metadata}} {
			if holdsPrefix(part.b) {
				return nil, &chronicle.InvalidError{Field: fmt.Sprintf("events[%d].%s", i, part.name),
					Reason: "holds " + Prefix + ", the stored form of personal data, which no input may"}
			}
		}
	}
	var out []chronicle.Event
	var ms []member
	for i, e := range events {
		r, ok := s.policy.rule(e.Type, e.SchemaVersion)
		if !ok || len(r.Fields) == 0 || !mentions(e.Data, r.Fields) {
			continue
		}
		ms, ok = members(e.Data, ms[:0])
		if !ok {
			continue // not an object: the store refuses it or keeps it as it is
		}
		sealed, err := s.sealMembers(ctx, stream, r, e, ms, events[:i])
		if err != nil {
			return nil, err
		}
		if sealed == nil {
			continue
		}
		if out == nil {
			out = append([]chronicle.Event(nil), events...)
		}
		out[i].Data = sealed
	}
	if out == nil {
		return events, nil
	}
	return out, nil
}

// sealMembers returns e's data with the values of r's fields (members ms
// of it) replaced by their tokens, in place: the rest of the data stays as
// written. Nil: no field to seal.
func (s *Store) sealMembers(ctx context.Context, stream string, r Rule, e chronicle.Event, ms []member, before []chronicle.Event) ([]byte, error) {
	var sl *sealer
	var out []byte
	last := 0 // e.Data[:last] is in out
	for _, m := range ms {
		v := e.Data[m.valueStart:m.valueEnd]
		f, ok := r.field(e.Data, m)
		if !ok || string(v) == "null" {
			continue
		}
		if !json.Valid(v) {
			return nil, nil // the store refuses the data
		}
		if out == nil {
			subject, err := s.subject(ctx, stream, r, e.Data, ms, before)
			if err != nil {
				return nil, err
			}
			dk, err := s.keys.subjectKey(ctx, subject)
			if err != nil {
				return nil, fmt.Errorf("append %s: %w", stream, err)
			}
			sl = newSealer(dk, e.ID)
			out = make([]byte, 0, len(e.Data)+len(r.Fields)*96)
		}
		out = append(out, e.Data[last:m.valueStart]...)
		out = append(out, '"')
		var err error
		if out, err = sl.appendToken(out, f, v); err != nil { // a token needs no escaping
			return nil, fmt.Errorf("append %s: %w", stream, err)
		}
		out = append(out, '"')
		last = m.valueEnd
	}
	if out == nil {
		return nil, nil
	}
	return append(out, e.Data[last:]...), nil
}

// holdsPrefix reports whether a string of JSON data b (a key or a value)
// holds Prefix. Responses reveal every token they hold, so a token copied
// from the store (an audit export shows them) into a free-text field would
// be decrypted for whoever can read that field: only seal may write one.
// Invalid JSON is left to the store to refuse.
func holdsPrefix(b []byte) bool {
	if bytes.Contains(b, []byte(Prefix)) {
		return true // outside strings, JSON has no letters but true, false, null
	}
	if !bytes.Contains(b, []byte(`\u`)) {
		return false
	}
	// Escapes may spell it: look at the strings as they decode.
	d := json.NewDecoder(bytes.NewReader(b))
	for {
		t, err := d.Token()
		if err != nil {
			return false
		}
		if s, ok := t.(string); ok && strings.Contains(s, Prefix) {
			return true
		}
	}
}

// mentions reports whether data may hold one of fields: a cheap test that
// spares parsing events that carry none. A key may be spelled with \u
// escapes: such data is always parsed.
func mentions(data []byte, fields []string) bool {
	if bytes.Contains(data, []byte(`\u`)) {
		return true
	}
	for _, f := range fields {
		if bytes.Contains(data, []byte(`"`+f+`"`)) {
			return true
		}
	}
	return false
}

// subject returns whose data an event holds: its subject field (a
// member of ms, the members of data), or the stream's subject (from the
// same append, a cache, or the stream).
func (s *Store) subject(ctx context.Context, stream string, r Rule, data []byte, ms []member, before []chronicle.Event) (string, error) {
	if r.Subject != "" {
		if sub := stringField(lookup(data, ms, r.Subject)); sub != "" {
			return sub, nil
		}
		return "", fmt.Errorf("append %s: %w: %s has no %s", stream, ErrNoSubject, r.Type, r.Subject)
	}
	for i := len(before) - 1; i >= 0; i-- {
		if sub := s.namedSubject(before[i].Type, before[i].SchemaVersion, before[i].Data); sub != "" {
			return sub, nil
		}
	}
	s.mu.Lock()
	sub, ok := s.subjects[stream]
	s.mu.Unlock()
	if ok {
		return sub, nil
	}
	for from := int64(1); ; {
		page, err := s.Store.ReadStream(ctx, stream, chronicle.ReadStreamOptions{From: from, Limit: 100})
		if err != nil && !errors.Is(err, chronicle.ErrStreamNotFound) {
			return "", fmt.Errorf("append %s: subject: %w", stream, err)
		}
		for _, e := range page {
			if sub := s.namedSubject(e.Type, e.SchemaVersion, e.Data); sub != "" {
				s.mu.Lock()
				if len(s.subjects) >= maxCachedKeys {
					clear(s.subjects)
				}
				s.subjects[stream] = sub
				s.mu.Unlock()
				return sub, nil
			}
		}
		if len(page) < 100 {
			return "", fmt.Errorf("append %s: %w: no event of the stream names one", stream, ErrNoSubject)
		}
		from = page[len(page)-1].Version + 1
	}
}

// namedSubject returns the subject an event names, if its rule has a
// subject field.
func (s *Store) namedSubject(typ string, version int, data []byte) string {
	r, ok := s.policy.rule(typ, version)
	if !ok || r.Subject == "" || !bytes.Contains(data, []byte(`"`+r.Subject+`"`)) {
		return ""
	}
	var buf [16]member
	ms, ok := members(data, buf[:0])
	if !ok {
		return ""
	}
	return stringField(lookup(data, ms, r.Subject))
}

// stringField returns the JSON string v decoded, or "" when v is not one.
func stringField(v []byte) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1])
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}
