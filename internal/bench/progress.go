package bench

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints progress lines: redrawn in place on a terminal, else
// at most one every two seconds.
type progress struct {
	w    io.Writer
	tty  bool
	mu   sync.Mutex
	last time.Time
	open bool // a line is drawn without its newline
}

// update shows a progress line, throttled.
func (p *progress) update(format string, a ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	every := 2 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K"+format, a...)
		p.open = true
		return
	}
	fmt.Fprintf(p.w, format+"\n", a...)
}

// line prints a line that stays.
func (p *progress) line(format string, a ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprint(p.w, "\r\033[K")
		p.open = false
	}
	fmt.Fprintf(p.w, format+"\n", a...)
	p.last = time.Time{}
}
