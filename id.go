package chronicle

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// NewEventID returns a new UUID (version 7: time-ordered, so ids of events
// appended together sort together, which keeps the id index compact).
func NewEventID() string {
	var u [16]byte
	ms := uint64(time.Now().UnixMilli())
	idMu.Lock()
	// Within one millisecond, count up in the random bits so ids stay ordered.
	if ms <= idLastMS {
		ms = idLastMS
		idSeq++
	} else {
		idLastMS, idSeq = ms, 0
	}
	seq := idSeq
	idMu.Unlock()
	if _, err := rand.Read(u[6:]); err != nil {
		panic("chronicle: crypto/rand failed: " + err.Error())
	}
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(seq>>8)&0x0f
	u[7] = byte(seq)
	u[8] = 0x80 | u[8]&0x3f
	return formatUUID(u)
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
