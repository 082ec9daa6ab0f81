package personal

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
	"strings"
)

// Prefix starts every token: the stored form of one personal field.
const Prefix = "chronicle:pd1:"

// erasedJSON is what an erased field reveals as.
var erasedJSON = []byte(`"` + Erased + `"`)

// sealer makes the tokens of one event's fields under one data key; its
// buffers serve each field in turn.
type sealer struct {
	dk      dataKey
	eventID string
	mac     hash.Hash // nil for an event without an id
	ad      []byte
	buf     []byte
}

func newSealer(dk dataKey, eventID string) *sealer {
	s := &sealer{dk: dk, eventID: strings.ToLower(eventID), ad: []byte(Prefix + dk.id)}
	if eventID != "" {
		s.mac = hmac.New(sha256.New, dk.nonceKey)
	}
	return s
}

// appendToken appends to dst the token of a field's JSON value.
//
// Its nonce is synthetic (as in SIV): the first 12 bytes of an HMAC-SHA256,
// under a key derived from the data key, of the key id, the event id, the
// field and the value. The same field of the same event with the same value
// is so the same token, which is what makes a retried append the same
// content to the store (an idempotent retry, not a duplicate). It is safe
// with GCM: a nonce repeats only for the same value under the same key and
// authenticated data, which gives the same ciphertext and reveals only that
// the same field was written twice alike; two different values share a
// nonce only by a collision of the 96-bit HMAC truncation, as unlikely as
// for random nonces. An event without an id cannot be retried: its fields
// get random nonces, so that equal values in different events look apart.
func (s *sealer) appendToken(dst []byte, field string, value []byte) ([]byte, error) {
	ns := s.dk.aead.NonceSize()
	if s.mac == nil {
		s.buf = append(s.buf[:0], make([]byte, ns)...)
		if _, err := rand.Read(s.buf); err != nil {
			return dst, err
		}
	} else {
		// Length-prefixed parts, so that no two inputs read alike.
		in := s.buf[:0]
		for _, part := range [...]string{s.dk.id, s.eventID, field} {
			in = binary.BigEndian.AppendUint64(in, uint64(len(part)))
			in = append(in, part...)
		}
		in = binary.BigEndian.AppendUint64(in, uint64(len(value)))
		in = append(in, value...)
		s.mac.Reset()
		s.mac.Write(in)
		s.buf = s.mac.Sum(in[:0])[:ns]
	}
	s.buf = s.dk.aead.Seal(s.buf, s.buf[:ns], value, s.ad)
	dst = append(dst, s.ad...)
	dst = append(dst, ':')
	return base64.RawURLEncoding.AppendEncode(dst, s.buf), nil
}

// open decrypts a token's payload with its key.
func open(aead cipher.AEAD, id, payload string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(payload)
	ns := aead.NonceSize()
	if err != nil || len(b) < ns {
		return nil, fmt.Errorf("personal: malformed token of key %s", id)
	}
	v, err := aead.Open(nil, b[:ns], b[ns:], []byte(Prefix+id))
	if err != nil {
		return nil, fmt.Errorf("personal: token of key %s does not decrypt: %w", id, err)
	}
	return v, nil
}

// token is one token found in a text: b[start:end].
type token struct {
	start, end  int
	id, payload string
}

func tokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == ':'
}

// findTokens returns the tokens in b, in order.
func findTokens(b []byte) []token {
	var out []token
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(Prefix))
		if j < 0 {
			return out
		}
		start := i + j
		end := start + len(Prefix)
		for end < len(b) && tokenChar(b[end]) {
			end++
		}
		i = end
		rest := string(b[start+len(Prefix) : end])
		id, payload, ok := strings.Cut(rest, ":")
		if !ok || id == "" || payload == "" || strings.Contains(payload, ":") {
			continue // not a token: leave it as it is
		}
		out = append(out, token{start: start, end: end, id: id, payload: payload})
	}
}

// Reveal returns b with every token replaced by the value it encrypts, or
// by "[erased]" when its key is gone. It asks the KeyStore, once for all the
// tokens of b, which keys are live: an erasure by any process is seen at
// once. b is JSON when asJSON (a token that is a whole JSON string becomes
// the JSON value it encrypts; one inside a longer string becomes its text,
// escaped), else text (a token becomes the string it encrypts, or the JSON
// of another value). b comes back unchanged, without a query, when it holds
// no token.
func (k *Keyring) Reveal(ctx context.Context, b []byte, asJSON bool) ([]byte, error) {
	out, err := k.RevealEach(ctx, [][]byte{b}, asJSON)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// RevealEach is Reveal of every b of bs, with one question to the KeyStore
// for all of them (the relay reveals a window of messages at once).
func (k *Keyring) RevealEach(ctx context.Context, bs [][]byte, asJSON bool) ([][]byte, error) {
	toks := make([][]token, len(bs))
	var ids []string
	seen := map[string]bool{}
	for i, b := range bs {
		if !bytes.Contains(b, []byte(Prefix)) {
			continue
		}
		toks[i] = findTokens(b)
		for _, t := range toks[i] {
			if !seen[t.id] {
				seen[t.id] = true
				ids = append(ids, t.id)
			}
		}
	}
	out := slices.Clone(bs)
	if len(ids) == 0 {
		return out, nil
	}
	live, err := k.liveKeys(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, b := range bs {
		if len(toks[i]) > 0 {
			if out[i], err = replaceTokens(b, toks[i], live, asJSON); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// replaceTokens returns b with each of its tokens toks replaced as Reveal
// says, live holding the keys that are not erased.
func replaceTokens(b []byte, toks []token, live map[string]cipher.AEAD, asJSON bool) ([]byte, error) {
	var err error
	out := make([]byte, 0, len(b))
	last := 0
	for _, t := range toks {
		value := erasedJSON
		if aead, ok := live[t.id]; ok {
			if value, err = open(aead, t.id, t.payload); err != nil {
				return nil, err
			}
			if !json.Valid(value) {
				return nil, fmt.Errorf("personal: token of key %s holds no JSON value", t.id)
			}
		}
		start, end := t.start, t.end
		quoted := start > 0 && end < len(b) && b[start-1] == '"' && b[end] == '"'
		switch {
		case asJSON && quoted:
			start, end = start-1, end+1
		case asJSON && value[0] == '"':
			value = value[1 : len(value)-1] // the string's escaped text
		case asJSON:
			// Another value inside a string: its JSON text, escaped.
			q, _ := json.Marshal(string(value))
			value = q[1 : len(q)-1]
		case value[0] == '"':
			var s string
			if err := json.Unmarshal(value, &s); err == nil {
				value = []byte(s)
			}
		}
		out = append(out, b[last:start]...)
		out = append(out, value...)
		last = end
	}
	return append(out, b[last:]...), nil
}
