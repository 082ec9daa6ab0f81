package httpapi

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"unicode/utf8"
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
	h := sha256.New()
	h.Write([]byte(idemNamespace))
	h.Write([]byte{0})
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(key)))
	h.Write(n[:])
	h.Write([]byte(key))
	binary.BigEndian.PutUint64(n[:], uint64(i))
	h.Write(n[:])
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = 0x80 | u[6]&0x0f // version 8
	u[8] = 0x80 | u[8]&0x3f // RFC 9562 variant
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// requestHash identifies a command request: what a retry repeats exactly.
// The body is hashed as sent; clients retry with the same bytes.
func requestHash(method, route, orderID, sku string, body []byte) string {
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
