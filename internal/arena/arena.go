// Package arena copies the payloads of one read into shared chunks: one
// allocation for many events instead of one each, which was a large share
// of a reader's CPU on pages of 1,000 events.
package arena

// maxChunk bounds a chunk; the first is small (a read of one stream's few
// events should not pay for 64 KiB) and each next one twice the last.
const (
	minChunk = 4 << 10
	maxChunk = 64 << 10
)

// Arena hands out copies carved from its chunks. A copy's capacity ends at
// its length, so appending to one copy reallocates rather than overwriting
// the next. A chunk lives as long as any copy cut from it. The zero value
// is ready to use; an Arena is for one goroutine.
type Arena struct{ buf []byte }

// Copy returns a copy of b's bytes; nil when b is a nil []byte (NULL).
func Copy[T string | []byte](a *Arena, b T) []byte {
	if bs, ok := any(b).([]byte); ok && bs == nil {
		return nil
	}
	if len(b) == 0 {
		return []byte{}
	}
	if len(b) > maxChunk/4 { // large: its own allocation, no chunk wasted
		return append([]byte(nil), b...)
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		n := min(max(2*cap(a.buf), minChunk), maxChunk)
		for n < len(b) {
			n *= 2
		}
		a.buf = make([]byte, 0, n)
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}
