package arena

import (
	"bytes"
	"strings"
	"testing"
)

func TestCopy(t *testing.T) {
	var a Arena
	if got := Copy(&a, []byte(nil)); got != nil {
		t.Fatalf("Copy(nil) = %q, want nil", got)
	}
	if got := Copy(&a, []byte{}); got == nil || len(got) != 0 {
		t.Fatalf("Copy(empty) = %#v, want empty, not nil", got)
	}
	var copies [][]byte
	var want []string
	for i := range 2000 { // several chunks, growing
		s := strings.Repeat(string(rune('a'+i%26)), 1+i%300)
		src := []byte(s)
		c := Copy(&a, src)
		src[0] = '!' // the copy is independent of its source
		if cap(c) != len(c) {
			t.Fatalf("copy %d: cap %d, len %d: appending would overwrite a neighbour", i, cap(c), len(c))
		}
		copies, want = append(copies, c), append(want, s)
	}
	big := strings.Repeat("x", maxChunk)
	copies, want = append(copies, Copy(&a, big)), append(want, big)
	copies[0] = append(copies[0], "zzz"...) // must not touch copies[1]
	want[0] += "zzz"
	for i, c := range copies {
		if !bytes.Equal(c, []byte(want[i])) {
			t.Fatalf("copy %d = %q, want %q", i, c, want[i])
		}
	}
}
