package httpapi

import "testing"

func TestCheckListenAddr(t *testing.T) {
	for _, c := range []struct {
		addr string
		auth bool
		ok   bool
	}{
		{"127.0.0.1:8080", false, true},
		{"127.1.2.3:8080", false, true},
		{"[::1]:8080", false, true},
		{"localhost:8080", false, true},
		{"0.0.0.0:8080", false, false},
		{":8080", false, false},
		{"[::]:8080", false, false},
		{"192.168.1.5:8080", false, false},
		{"example.com:8080", false, false},
		{"0.0.0.0:8080", true, true},
		{"no-port", false, false},
	} {
		err := CheckListenAddr(c.addr, c.auth)
		if (err == nil) != c.ok {
			t.Errorf("CheckListenAddr(%q, auth %v) = %v, want ok %v", c.addr, c.auth, err, c.ok)
		}
	}
}
