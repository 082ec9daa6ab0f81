package httpapi

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// idemNamespace separates chronicle's derived event ids from any other use
// of SHA-256 over the same bytes. Changing it forgets every stored key.
const idemNamespace = "chronicle/httpapi/idempotency-key/v1"

// maxIdempotencyKey bounds the Idempotency-Key header, which is stored in
// every event's metadata.
const maxIdempotencyKey = 255

// idemMeta is what a keyed command records in its events' metadata: the key
// and a digest of the request, so a retry can be told from a reuse.
type idemMeta struct {
	CorrelationID  string `json:"correlation_id,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	RequestHash    string `json:"request_hash,omitempty"`
}

// parseIdempotencyKey returns the request's Idempotency-Key ("" when
// absent). A key must be printable ASCII or UTF-8 without control
// characters, at most 255 bytes.
func parseIdempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values("Idempotency-Key")
	if len(vals) == 0 {
		return "", nil
	}
	if len(vals) > 1 {
		return "", badField("Idempotency-Key", "given more than once")
	}
	k := vals[0]
	if k == "" {
		return "", badField("Idempotency-Key", "empty")
	}
	if len(k) > maxIdempotencyKey {
		return "", badField("Idempotency-Key", "longer than %d bytes", maxIdempotencyKey)
	}
	if !utf8.ValidString(k) {
		return "", badField("Idempotency-Key", "not valid UTF-8")
	}
	for _, c := range k {
		if c < 0x20 || c == 0x7f {
			return "", badField("Idempotency-Key", "contains a control character")
		}
	}
	return k, nil
}

// derivedEventID returns the id of the i-th event a command with key
// appends: a UUID (version 8, "custom") made of SHA-256(namespace, key, i).
// The same key always yields the same ids, so the store's idempotent append
// and its unique event ids make the key durable with the events themselves.
func derivedEventID(key string, i int) string {
	return chronicle.DerivedEventID(idemNamespace, key, strconv.Itoa(i))
}

// requestHash identifies a command request: what a retry repeats. The
// body is hashed in its canonical JSON form (RFC 8785), so a retry that
// writes the same request with other spacing, key order or escapes is the
// same request, not a different one (422). Bodies reach here decoded
// strictly, and their numbers within 2^53, which JCS keeps exact.
func requestHash(method, route, orderID, sku string, body []byte) string {
	if len(body) > 0 {
		if c, err := audit.Canonicalize(body); err == nil {
			body = c
		}
	}
	return bytesHash(method, route, orderID, sku, body)
}

// bytesHash is requestHash over the body's bytes as sent: what keys stored
// before bodies were canonicalized hold, so that their exact retries still
// match.
func bytesHash(method, route, orderID, sku string, body []byte) string {
	h := sha256.New()
	for _, part := range []string{method, route, orderID, sku} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// readIdemMeta extracts the key and hash from stored metadata.
func readIdemMeta(raw json.RawMessage) idemMeta {
	var m idemMeta
	_ = json.Unmarshal(raw, &m) // other shapes simply carry no key
	return m
}
