package upcast_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/upcast"
)

// newRegistry has a three-version type whose steps each add a field, and a
// one-version type.
func newRegistry() *upcast.Registry {
	r := upcast.NewRegistry()
	r.Declare("Thing", 3)
	r.Register("Thing", 1, upcast.AddField("b", "B"))
	r.Register("Thing", 2, upcast.AddField("c", []int{}))
	r.Declare("Plain", 1)
	return r
}

func TestUpcast(t *testing.T) {
	r := newRegistry()
	tests := []struct {
		name    string
		typ     string
		version int
		data    string
		want    string
	}{
		{"v1 runs the whole chain", "Thing", 1, `{"a":1}`, `{"a":1,"b":"B","c":[]}`},
		{"v0 means v1", "Thing", 0, `{"a":1}`, `{"a":1,"b":"B","c":[]}`},
		{"v2 runs the last step", "Thing", 2, `{"a":1,"b":"x"}`, `{"a":1,"b":"x","c":[]}`},
		{"current passes unchanged", "Thing", 3, `{"z" : 1}`, `{"z" : 1}`},
		{"single-version type", "Plain", 1, `[1,2]`, `[1,2]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := chronicle.RecordedEvent{StreamID: "s-1", Version: 7, Type: tc.typ, SchemaVersion: tc.version, Data: json.RawMessage(tc.data)}
			got, err := r.Upcast(in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Data) != tc.want {
				t.Errorf("data = %s, want %s", got.Data, tc.want)
			}
			cur, _ := r.Current(tc.typ)
			if got.SchemaVersion != cur {
				t.Errorf("schema version = %d, want %d", got.SchemaVersion, cur)
			}
			if got.StreamID != in.StreamID || got.Version != in.Version || got.Type != in.Type {
				t.Errorf("upcast changed the envelope: %+v", got)
			}
		})
	}
}

func TestUpcastErrors(t *testing.T) {
	r := newRegistry()
	r.Declare("Gappy", 3)
	r.Register("Gappy", 2, upcast.AddField("x", 1))
	r.Declare("Broken", 2)
	r.Register("Broken", 1, func(json.RawMessage) (json.RawMessage, error) { return json.RawMessage(`{"a":`), nil })
	tests := []struct {
		name    string
		typ     string
		version int
		data    string
		want    error
		mention string
	}{
		{"undeclared type", "Nope", 1, `{}`, upcast.ErrUnknown, "not declared"},
		{"newer than current", "Thing", 4, `{}`, upcast.ErrUnknown, "not in [1, 3]"},
		{"negative version", "Thing", -1, `{}`, upcast.ErrUnknown, "not in [1, 3]"},
		{"missing step", "Gappy", 1, `{}`, upcast.ErrUnknown, "no upcaster from v1 to v2"},
		{"upcaster error", "Thing", 1, `[]`, upcast.ErrFailed, "not a JSON object"},
		{"upcaster returns bad JSON", "Broken", 1, `{}`, upcast.ErrFailed, "bad data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Upcast(chronicle.RecordedEvent{StreamID: "order-o1", Version: 4, Type: tc.typ, SchemaVersion: tc.version, Data: json.RawMessage(tc.data)})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ue *upcast.Error
			if !errors.As(err, &ue) {
				t.Fatalf("err %T is not *upcast.Error", err)
			}
			// The message must let an operator find the event.
			for _, s := range []string{`"order-o1"`, "version 4", tc.typ, tc.mention} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestRegistryPanicsOnWiringMistakes(t *testing.T) {
	tests := []struct {
		name string
		f    func(r *upcast.Registry)
	}{
		{"version 0", func(r *upcast.Registry) { r.Declare("A", 0) }},
		{"redeclared with another version", func(r *upcast.Registry) { r.Declare("Thing", 2) }},
		{"register undeclared", func(r *upcast.Registry) { r.Register("Nope", 1, upcast.AddField("a", 1)) }},
		{"register from current", func(r *upcast.Registry) { r.Register("Thing", 3, upcast.AddField("a", 1)) }},
		{"register twice", func(r *upcast.Registry) { r.Register("Thing", 1, upcast.AddField("a", 1)) }},
		{"register nil", func(r *upcast.Registry) { r.Declare("N", 2); r.Register("N", 1, nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.f(newRegistry())
		})
	}
	r := newRegistry()
	r.Declare("Thing", 3) // same version again is fine
	if got, want := strings.Join(r.Types(), ","), "Plain,Thing"; got != want {
		t.Errorf("Types() = %s, want %s", got, want)
	}
}

func TestUpcastAll(t *testing.T) {
	r := newRegistry()
	events := []chronicle.RecordedEvent{
		{Type: "Thing", SchemaVersion: 1, Data: json.RawMessage(`{}`)},
		{Type: "Plain", SchemaVersion: 1, Data: json.RawMessage(`1`)},
	}
	got, err := r.UpcastAll(events)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].SchemaVersion != 3 || string(got[0].Data) != `{"b":"B","c":[]}` {
		t.Errorf("first = %+v", got[0])
	}
	if _, err := r.UpcastAll([]chronicle.RecordedEvent{{Type: "Nope"}}); !errors.Is(err, upcast.ErrUnknown) {
		t.Errorf("err = %v, want ErrUnknown", err)
	}
}

// FuzzUpcast runs arbitrary data at every version through a chain: no panic,
// and a success is valid JSON at the current version.
func FuzzUpcast(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `null`, `[]`, `"x"`, `{"b":null}`, `{"a":{"b":[1,2,{}]}}`, `{`, ``, "{\"a\":\"\\u0000\"}"} {
		f.Add([]byte(s), 1)
		f.Add([]byte(s), 2)
	}
	r := newRegistry()
	f.Fuzz(func(t *testing.T, data []byte, version int) {
		got, err := r.Upcast(chronicle.RecordedEvent{Type: "Thing", SchemaVersion: version, Data: data})
		if err != nil {
			if !errors.Is(err, upcast.ErrUnknown) && !errors.Is(err, upcast.ErrFailed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if got.SchemaVersion != 3 {
			t.Fatalf("schema version %d", got.SchemaVersion)
		}
		if (version == 1 || version == 2 || version == 0) && chronicle.ValidateJSON(got.Data) != nil {
			t.Fatalf("upcast produced invalid JSON %q", got.Data)
		}
	})
}
