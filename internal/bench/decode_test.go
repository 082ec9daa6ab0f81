package bench

import "testing"

// BenchmarkDecode is what W4 and W5 do per event besides reading it: the
// payload's JSON decoded into its struct. One goroutine doing only this
// bounds W5's rate, whatever the store costs (1 s / ns per op).
func BenchmarkDecode(b *testing.B) {
	data := []byte(Payload)
	b.ReportAllocs()
	for b.Loop() {
		if err := decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecodePayload(t *testing.T) {
	if err := decode([]byte(Payload)); err != nil {
		t.Fatal(err)
	}
	if err := decode([]byte(`{"total":"x"}`)); err == nil {
		t.Error("decode accepted a string total")
	}
}
