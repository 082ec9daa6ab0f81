package chronicle

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync"
	"time"
	"unsafe"
)

// NewEventID returns a new UUID (version 7: time-ordered, so ids of events
// appended together sort together, which keeps the id index compact).
func NewEventID() string {
	var id [1]string
	newEventIDs(id[:])
	return id[0]
}

// newEventIDs fills ids with new event ids, as NewEventID would one after
// another, reading the clock and the random source once and allocating one
// string for them all: an append of many events without ids takes them here.
func newEventIDs(ids []string) {
	n := len(ids)
	if n == 0 {
		return
	}
	now := uint64(time.Now().UnixMilli())
	// Ids stay ordered: within one millisecond they count up in 12 of the
	// random bits, and past 4,096 the count carries into the millisecond
	// (RFC 9562, 6.2), which then runs ahead of the clock for a while.
	idMu.Lock()
	ms, seq := now, uint64(0)
	if now <= idLastMS {
		ms, seq = idLastMS, idSeq+1
	}
	last := seq + uint64(n-1)
	idLastMS, idSeq = ms+last>>12, last&0xfff
	idMu.Unlock()
	random := make([]byte, 10*n)
	if _, err := rand.Read(random); err != nil {
		panic("chronicle: crypto/rand failed: " + err.Error())
	}
	text := make([]byte, 36*n)
	for i := range ids {
		var u [16]byte
		copy(u[6:], random[10*i:])
		t, c := ms+seq>>12, seq&0xfff
		u[0], u[1], u[2], u[3], u[4], u[5] = byte(t>>40), byte(t>>32), byte(t>>24), byte(t>>16), byte(t>>8), byte(t)
		u[6] = 0x70 | byte(c>>8)
		u[7] = byte(c)
		u[8] = 0x80 | u[8]&0x3f
		appendUUID(text[36*i:36*i], u)
		seq++
	}
	all := unsafe.String(unsafe.SliceData(text), len(text)) // text is not written again
	for i := range ids {
		ids[i] = all[36*i : 36*i+36]
	}
}

// The clock state of NewEventID. Process-wide by nature, like the clock.
var (
	idMu     sync.Mutex
	idLastMS uint64
	idSeq    uint64
)

// ParseEventID checks that s is a UUID (hex, in 8-4-4-4-12 form, either case)
// and returns it in canonical lower case.
func ParseEventID(s string) (string, error) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", errors.New("not a UUID (want 8-4-4-4-12 hex digits)")
	}
	// Decode the five groups at their fixed offsets: a '-' anywhere else is
	// a non-hex digit, not a separator.
	var u [16]byte
	j := 0
	for _, g := range [5][2]int{{0, 8}, {9, 13}, {14, 18}, {19, 23}, {24, 36}} {
		n, err := hex.Decode(u[j:], []byte(s[g[0]:g[1]]))
		if err != nil {
			return "", errors.New("not a UUID (non-hex digit)")
		}
		j += n
	}
	return formatUUID(u), nil
}

func formatUUID(u [16]byte) string {
	var b [36]byte
	return string(appendUUID(b[:0], u))
}

// appendUUID appends u in canonical form (36 bytes) to b.
func appendUUID(b []byte, u [16]byte) []byte {
	b = hex.AppendEncode(b, u[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[8:10])
	b = append(b, '-')
	return hex.AppendEncode(b, u[10:16])
}

// DerivedEventID returns a UUID (version 8) determined by parts: the same
// parts give the same id in every process, which is how a retried command
// finds the events its first attempt appended. Parts are length-prefixed, so
// ("ab", "c") and ("a", "bc") differ.
func DerivedEventID(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = 0x80 | u[6]&0x0f // version 8
	u[8] = 0x80 | u[8]&0x3f // RFC 9562 variant
	return formatUUID(u)
}
