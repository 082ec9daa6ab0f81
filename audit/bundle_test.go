package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/audit"
)

const goodVector = "testdata/vectors/audit-bundle.json"

// rawBundle is the good vector as plain JSON values, to edit.
func rawBundle(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(goodVector)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func items(m map[string]any, key string) []map[string]any {
	var out []map[string]any
	for _, v := range m[key].([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

// checkRaw encodes m, decodes it as a bundle, and checks it.
func checkRaw(t *testing.T, m map[string]any, opts audit.Options) error {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := audit.DecodeBundle(b)
	if err != nil {
		t.Fatalf("DecodeBundle of an edited bundle: %v", err)
	}
	return audit.Check(bundle, opts)
}

// changed returns v edited so that it differs and keeps its type and form.
func changed(t *testing.T, field string, v any) any {
	switch v := v.(type) {
	case json.Number:
		n, _ := v.Int64()
		return json.Number(fmt.Sprint(n + 1))
	case map[string]any:
		w := map[string]any{"x": json.Number("1")}
		for k, x := range v {
			w[k] = x
		}
		return w
	case nil:
		return map[string]any{"x": json.Number("1")}
	case string:
		if strings.HasSuffix(field, "_at") {
			at, err := time.Parse(audit.TimeFormat, v)
			if err != nil {
				t.Fatal(err)
			}
			return at.Add(time.Microsecond).Format(audit.TimeFormat)
		}
		if strings.Contains(field, "hash") || field == "root" {
			if v[0] == '0' {
				return "1" + v[1:]
			}
			return "0" + v[1:]
		}
		return v + "x"
	}
	t.Fatalf("%s: cannot edit %T", field, v)
	return nil
}

// Every field that the definitions cover, edited in any event or seal, makes
// Check fail, naming that event or seal.
func TestCheckFailsOnEveryEditedField(t *testing.T) {
	good := rawBundle(t)
	sealEnds := map[string]bool{}
	for _, s := range items(good, "seals") {
		sealEnds[s["last_checkpoint"].(string)] = true
	}
	for i, e := range items(good, "events") {
		pos, _ := e["position"].(json.Number).Int64()
		for field, v := range e {
			switch {
			case field == "position":
				continue // see TestCheckFailsOnRepeatedPosition
			case field == "checkpoint" && !sealEnds[v.(string)]:
				continue // only a seal's last event's checkpoint is sealed
			}
			t.Run(fmt.Sprintf("event %d %s", pos, field), func(t *testing.T) {
				m := rawBundle(t)
				items(m, "events")[i][field] = changed(t, field, v)
				err := checkRaw(t, m, audit.Options{})
				var ie *audit.IntegrityError
				if !errors.As(err, &ie) {
					t.Fatalf("Check = %v, want an *IntegrityError", err)
				}
				if field != "checkpoint" && ie.Position != pos {
					t.Errorf("Check = %v, want it to name position %d", err, pos)
				}
			})
		}
	}
	for i, s := range items(good, "seals") {
		for field, v := range s {
			t.Run(fmt.Sprintf("seal %d %s", i+1, field), func(t *testing.T) {
				m := rawBundle(t)
				if field == "signature" {
					// Another seal's: valid base64 of a valid signature.
					v = items(m, "seals")[(i+1)%5]["signature"]
				} else {
					v = changed(t, field, v)
				}
				items(m, "seals")[i][field] = v
				err := checkRaw(t, m, audit.Options{})
				var ie *audit.IntegrityError
				if !errors.As(err, &ie) || ie.Seal == 0 {
					t.Fatalf("Check = %v, want an *IntegrityError naming a seal", err)
				}
			})
		}
	}
}

func TestCheckFailsOnRepeatedPosition(t *testing.T) {
	m := rawBundle(t)
	events := items(m, "events")
	events[7]["position"] = events[6]["position"]
	if err := checkRaw(t, m, audit.Options{}); !errors.Is(err, audit.ErrIntegrity) {
		t.Fatalf("Check = %v, want ErrIntegrity", err)
	}
}

func TestCheckFailsOnEditedPublicKey(t *testing.T) {
	other, _, _ := ed25519.GenerateKey(nil)
	for name, edit := range map[string]func(pk map[string]any){
		"key": func(pk map[string]any) { pk["public_key"] = audit.EncodePublicKey(other) },
		"key and keyid": func(pk map[string]any) {
			pk["public_key"], pk["key_id"] = audit.EncodePublicKey(other), audit.KeyID(other)
		},
		"key_id":     func(pk map[string]any) { pk["key_id"] = "0123456789abcdef" },
		"not base64": func(pk map[string]any) { pk["public_key"] = "kJp8sM6dlnd+XvrvrYpxxBJ9luhul3jddA3mcfXbjI" },
	} {
		t.Run(name, func(t *testing.T) {
			m := rawBundle(t)
			edit(items(m, "public_keys")[0])
			if err := checkRaw(t, m, audit.Options{}); !errors.Is(err, audit.ErrIntegrity) {
				t.Fatalf("Check = %v, want ErrIntegrity", err)
			}
		})
	}
}

func TestCheckFailsOnDroppedOrSwappedEvents(t *testing.T) {
	n := len(items(rawBundle(t), "events"))
	for i := range n {
		t.Run(fmt.Sprintf("drop %d", i), func(t *testing.T) {
			m := rawBundle(t)
			events := m["events"].([]any)
			m["events"] = append(events[:i:i], events[i+1:]...)
			if err := checkRaw(t, m, audit.Options{}); !errors.Is(err, audit.ErrIntegrity) {
				t.Fatalf("Check = %v, want ErrIntegrity", err)
			}
		})
	}
	for i := range n {
		for _, j := range []int{i + 1, n - 1 - i} {
			if j <= i || j >= n {
				continue
			}
			t.Run(fmt.Sprintf("swap %d %d", i, j), func(t *testing.T) {
				m := rawBundle(t)
				events := m["events"].([]any)
				events[i], events[j] = events[j], events[i]
				if err := checkRaw(t, m, audit.Options{}); !errors.Is(err, audit.ErrIntegrity) {
					t.Fatalf("Check = %v, want ErrIntegrity", err)
				}
			})
		}
	}
	t.Run("drop a seal", func(t *testing.T) {
		m := rawBundle(t)
		seals := m["seals"].([]any)
		m["seals"] = append(seals[:1:1], seals[2:]...)
		if err := checkRaw(t, m, audit.Options{}); !errors.Is(err, audit.ErrIntegrity) {
			t.Fatalf("Check = %v, want ErrIntegrity", err)
		}
	})
}

// With the signer's public key given, the bundle's own keys are not
// trusted: a seal must be signed by that key.
func TestCheckWithPublicKey(t *testing.T) {
	m := rawBundle(t)
	signer, err := audit.DecodePublicKey(items(m, "public_keys")[0]["public_key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRaw(t, m, audit.Options{PublicKey: signer}); err != nil {
		t.Fatalf("Check with the signer's key = %v, want nil", err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if err := checkRaw(t, m, audit.Options{PublicKey: other}); !errors.Is(err, audit.ErrIntegrity) {
		t.Fatalf("Check with another key = %v, want ErrIntegrity", err)
	}
	// Signatures stripped: consistent, but not signed by the given key.
	for _, s := range items(m, "seals") {
		delete(s, "key_id")
		delete(s, "signature")
	}
	m["public_keys"] = []any{}
	if err := checkRaw(t, m, audit.Options{}); err != nil {
		t.Fatalf("Check of an unsigned bundle = %v, want nil", err)
	}
	if err := checkRaw(t, m, audit.Options{PublicKey: signer}); !errors.Is(err, audit.ErrIntegrity) {
		t.Fatalf("Check of an unsigned bundle with a key = %v, want ErrIntegrity", err)
	}
}

func TestDecodeBundleIsStrict(t *testing.T) {
	good, err := os.ReadFile(goodVector)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{
		"unknown field":       strings.Replace(string(good), `"position": 1,`, `"position": 1, "extra": 1,`, 1),
		"duplicate key":       strings.Replace(string(good), `"position": 1,`, `"position": 1, "position": 1,`, 1),
		"name in other case":  strings.Replace(string(good), `"position": 1,`, `"Position": 1,`, 1),
		"missing field":       strings.Replace(string(good), `"event_id": "0190d1a2-0000-7000-8000-000000000000",`, ``, 1),
		"missing proofs":      strings.Replace(string(good), `"proofs": [],`, ``, 1),
		"two values":          string(good) + "{}",
		"lone surrogate":      strings.Replace(string(good), `"type": "OrderCreated"`, `"type": "\ud800"`, 1),
		"version not integer": strings.Replace(string(good), `"version": 1,`, `"version": 1.5,`, 1),
	} {
		if b == string(good) {
			t.Fatalf("%s: edit did not apply", name)
		}
		if _, err := audit.DecodeBundle([]byte(b)); !errors.Is(err, audit.ErrBundle) {
			t.Errorf("%s: DecodeBundle = %v, want ErrBundle", name, err)
		}
	}
}
