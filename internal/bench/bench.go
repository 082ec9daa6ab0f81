package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chronicle-es/chronicle"
)

// The payload and metadata of BENCHMARKS.md, exactly.
const (
	Payload  = `{"customer_id":"cust_456","total":9999,"currency":"USD","items":[{"sku":"SKU-1001","name":"Widget","qty":2,"price":2500},{"sku":"SKU-2002","name":"Gadget","qty":1,"price":4999}],"shipping":"standard"}`
	Metadata = `{"correlation_id":"corr-00000000","source":"bench"}`
)

// Workloads are the names Run accepts, in the order "all" runs them.
var Workloads = []string{"W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10"}

// Defaults of BENCHMARKS.md.
const (
	DefaultEvents  = 1_000_000 // W4, W5, W7 data sets
	DefaultStreams = 10_000    // W2 set-up
	DefaultW5Limit = 60 * time.Second
	streamLen      = 1_000 // events per load-* stream (W4 reads one)
	orderLen       = 1_000 // events of the W6 order
)

// Options configure Run.
type Options struct {
	// Store names where to run: a postgres:// URL (fresh schemas in its
	// database; a schema= parameter is ignored), a sqlite URL (fresh files
	// in a temporary directory next to the named file, which is never
	// opened; ?synchronous= is kept), or "" (a temporary directory).
	Store string
	// Workloads to run, "W1".."W10"; empty means all.
	Workloads []string
	// Clients is the list of client counts for W1, W2, W8 and W9; nil means
	// BENCHMARKS.md's (W1: 1, 8, 32; W2: 8, 32; W8: 32; W9: 8). The other
	// workloads have one client by definition.
	Clients          []int
	Warmup, Duration time.Duration
	// Events is the size of the W4/W5 and W7 data sets; 0 means 1,000,000.
	Events int
	// Streams is the number of W2 streams; 0 means 10,000.
	Streams int
	// W5Limit stops the W5 reader early; 0 means 60 s.
	W5Limit time.Duration
	// Baseline runs the seed's plain table beside chronicle for W1-W5.
	Baseline bool
	// Keep leaves the schemas or files in place for inspection.
	Keep bool
	// Serve starts the HTTP service for W8 and W9; nil skips them with a
	// note.
	Serve ServeFunc
	// NATS is the nats:// URL of the server W10 relays to; "" skips W10
	// with a note.
	NATS string
	// W10Events is the size of W10's data set; 0 means DefaultW10Events.
	W10Events int
	// Rounds is how many times each row is measured, interleaved (round 1
	// of every row, then round 2, ...); 0 means DefaultRounds.
	Rounds int
	// FsyncProbe is how long each fsync probe runs (before, between and
	// after the rounds); 0 skips the probe.
	FsyncProbe time.Duration
	// FsyncDir is where the probe writes; "" means the run's SQLite
	// directory, or the system's temporary directory on PostgreSQL (give
	// the server's data directory when it is on this machine).
	FsyncDir string
	// Progress receives progress lines of data set loads and rebuilds,
	// and a line per row and round as it is measured; TTY redraws them in
	// place. Nil: none.
	Progress io.Writer
	TTY      bool
}

// Result is one row: a workload, a case of it, a system and a client count.
type Result struct {
	Round    int    `json:"round,omitempty"`
	Workload string `json:"workload"`
	// Case distinguishes rows of one workload: "snapshots-50", a read
	// model's name, ... Empty when the workload has one.
	Case    string `json:"case,omitempty"`
	System  string `json:"system"` // "chronicle" or "plain"
	Backend string `json:"backend"`
	Clients int    `json:"clients"`
	// Ops counts the operations that succeeded inside the window; Events
	// the events they wrote or read.
	Ops          int64         `json:"ops"`
	Events       int64         `json:"events"`
	Seconds      float64       `json:"seconds"`
	OpsPerSec    float64       `json:"ops_per_sec"`
	EventsPerSec float64       `json:"events_per_sec"`
	P50          time.Duration `json:"p50_ns"`
	P99          time.Duration `json:"p99_ns"`
	Errors       int64         `json:"errors"`
	Conflicts    int64         `json:"conflicts"`
	// Total counts every operation that succeeded, warm-up and window
	// edges included: what the run wrote or read in all.
	Total int64 `json:"total_ops"`
	// PeakRSS is the W8 server's peak resident set (VmHWM), in bytes.
	PeakRSS int64 `json:"peak_rss_bytes,omitempty"`
	// CPU the whole machine spent in the window (every process: the
	// database server's too when it runs here, and anything else running),
	// per operation and per event; SelfCPUPerOp is this process's share
	// (clients, and the store itself for SQLite). BusyCores is the
	// machine's average of busy cores out of Cores. Zero where the system
	// does not tell (Linux does).
	CPUPerOp     time.Duration `json:"cpu_per_op_ns,omitempty"`
	CPUPerEvent  time.Duration `json:"cpu_per_event_ns,omitempty"`
	SelfCPUPerOp time.Duration `json:"self_cpu_per_op_ns,omitempty"`
	BusyCores    float64       `json:"busy_cores,omitempty"`
	Cores        int           `json:"cores,omitempty"`
	// Ratio is chronicle / plain for the row's main figure (see Main) in
	// the same round, set on both rows of a pair when the baseline ran.
	Ratio      float64 `json:"ratio,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
	Note       string  `json:"note,omitempty"`
}

// Main names the row's main figure: "p50" for W4 and W6 (lower is
// better), "events/s" for W3, W5 and W7, "ops/s" otherwise.
func (r Result) Main() string {
	switch r.Workload {
	case "W4", "W6":
		return "p50"
	case "W3", "W5", "W7", "W10":
		return "events/s"
	}
	return "ops/s"
}

func (r Result) mainValue() float64 {
	switch r.Main() {
	case "p50":
		return float64(r.P50)
	case "events/s":
		return r.EventsPerSec
	}
	return r.OpsPerSec
}

// Run prepares the selected workloads (their places and data sets), then
// measures every row once per round, interleaved, and reports the rows
// with their rounds. Errors: a bad option, or a failure that stops a
// workload (set-up, a store that cannot be opened, a server that does not
// start), with the report of what was measured until then; failing
// operations are counted in the rows instead.
func Run(ctx context.Context, opts Options) (*Report, error) {
	sel, err := selectWorkloads(opts.Workloads)
	if err != nil {
		return nil, err
	}
	if opts.Duration <= 0 || opts.Warmup < 0 {
		return nil, errors.New("bench: the duration must be positive and the warm-up not negative")
	}
	for _, n := range opts.Clients {
		if n < 1 {
			return nil, errors.New("bench: client counts must be at least 1")
		}
	}
	if opts.Rounds < 0 {
		return nil, errors.New("bench: the number of rounds must be at least 1")
	}
	opts.Rounds = cmp.Or(opts.Rounds, DefaultRounds)
	opts.Events = cmp.Or(opts.Events, DefaultEvents)
	opts.Streams = cmp.Or(opts.Streams, DefaultStreams)
	opts.W5Limit = cmp.Or(opts.W5Limit, DefaultW5Limit)
	opts.W10Events = cmp.Or(opts.W10Events, DefaultW10Events)
	if opts.Events < 1 || opts.Streams < 1 {
		return nil, errors.New("bench: --events and the W2 stream count must be positive")
	}
	t, err := newTarget(opts)
	if err != nil {
		return nil, err
	}
	defer t.close()
	r := &runner{opts: opts, t: t, prog: &progress{w: opts.Progress, tty: opts.TTY}}
	r.fsyncDir = cmp.Or(opts.FsyncDir, t.dir, os.TempDir())
	if opts.FsyncProbe > 0 {
		// Before the data sets are loaded, not after.
		fi, err := os.Stat(r.fsyncDir)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s: not a directory", r.fsyncDir)
		}
		if err != nil {
			return nil, fmt.Errorf("bench: fsync probe: %w", err)
		}
	}
	defer r.closePlaces()
	if err := r.prepare(ctx, sel); err != nil {
		return r.report(), err
	}
	err = r.runRounds(ctx)
	return r.report(), err
}

// prepare makes each workload's places and data sets and queues its jobs.
func (r *runner) prepare(ctx context.Context, sel []string) error {
	for _, w := range sel {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch w {
		case "W1":
			err = r.w1(ctx)
		case "W2":
			err = r.w2(ctx)
		case "W3":
			err = r.w3(ctx)
		case "W4":
			err = r.w4w5(ctx, slices.Contains(sel, "W4"), slices.Contains(sel, "W5"))
		case "W5":
			if !slices.Contains(sel, "W4") { // else run with W4, on its data set
				err = r.w4w5(ctx, false, true)
			}
		case "W6":
			err = r.w6(ctx)
		case "W7":
			err = r.w7(ctx)
		case "W8":
			r.w8()
		case "W9":
			r.w9()
		case "W10":
			err = r.w10(ctx)
		}
		if err != nil {
			return fmt.Errorf("bench %s: %w", w, err)
		}
	}
	return r.use(ctx, nil)
}

// closePlaces closes every place of the run, dropping it unless kept.
func (r *runner) closePlaces() {
	r.cur = nil
	for _, p := range r.places {
		p.close()
	}
}

func selectWorkloads(names []string) ([]string, error) {
	if len(names) == 0 {
		return Workloads, nil
	}
	var out []string
	for _, n := range names {
		n = strings.ToUpper(strings.TrimSpace(n))
		if n == "ALL" {
			return Workloads, nil
		}
		if !slices.Contains(Workloads, n) {
			return nil, fmt.Errorf("bench: unknown workload %q (want W1..W10 or all)", n)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(Workloads, a) - slices.Index(Workloads, b) })
	return out, nil
}

type runner struct {
	opts    Options
	t       *target
	prog    *progress
	jobs    []job
	places  []*place // prepared, closed at the end
	cur     *place   // the open one
	results []Result
	// fsyncDir is where the probe writes; fsyncs its rates so far.
	fsyncDir string
	fsyncs   []float64
}

func (r *runner) clients(def ...int) []int {
	if r.opts.Clients != nil {
		return r.opts.Clients
	}
	return def
}

// add records a round of a row; a plain row completes the ratio of the
// chronicle row of the same round, workload, case and clients.
func (r *runner) add(res Result) {
	res.Backend = r.t.kind
	if res.System == "" {
		res.System = "chronicle"
	}
	if res.System == "plain" {
		for i := len(r.results) - 1; i >= 0; i-- {
			c := &r.results[i]
			if c.System == "chronicle" && c.Round == res.Round && c.Workload == res.Workload && c.Case == res.Case && c.Clients == res.Clients {
				if pv := res.mainValue(); pv > 0 {
					c.Ratio = c.mainValue() / pv
					res.Ratio = c.Ratio
				}
				break
			}
		}
	}
	r.results = append(r.results, res)
}

// summary is a round's row in one line, for the progress lines.
func (r Result) summary() string {
	s := r.Workload
	if r.Case != "" {
		s += " " + r.Case
	}
	s += fmt.Sprintf(" %s, %d client", r.System, r.Clients)
	if r.Clients != 1 {
		s += "s"
	}
	s += ": "
	if r.Main() == "p50" {
		s += "p50 " + FormatDuration(r.P50)
	} else {
		s += formatFigure(r.mainValue()) + " " + r.Main()
	}
	if r.Ratio > 0 && r.System == "plain" {
		s += fmt.Sprintf(", chronicle/plain %.2fx", r.Ratio)
	}
	if r.Errors > 0 {
		s += fmt.Sprintf(", %d errors", r.Errors)
	}
	return s
}

// worker is one client's state during a measured run.
type worker struct {
	id  int
	rng *rand.Rand
	// sub collects latencies of the steps of one operation (W8's
	// requests); they count when the operation does.
	sub []time.Duration
}

// op is one operation: it returns the events it wrote or read.
type op func(ctx context.Context, w *worker) (int, error)

// measure runs op from n clients for the warm-up and the window.
// conflict tells conflicts from other errors (nil: none are conflicts).
func measure(ctx context.Context, n int, warmup, window time.Duration, f op, conflict func(error) bool) Result {
	start := time.Now()
	from, to := start.Add(warmup), start.Add(warmup+window)
	type tally struct {
		lat, sub                      []time.Duration
		ops, events, errs, confl, tot int64
		firstErr                      error
	}
	tallies := make([]tally, n)
	cpu := make(chan cpuWindow, 1)
	go func() { cpu <- sampleCPU(ctx, from, to) }()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			t := &tallies[i]
			w := &worker{id: i, rng: rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(i)))}
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(to) {
					return
				}
				w.sub = w.sub[:0]
				k, err := f(ctx, w)
				t1 := time.Now()
				if err == nil {
					t.tot++
				}
				if t0.Before(from) || t1.After(to) {
					continue
				}
				switch {
				case err == nil:
					t.ops++
					t.events += int64(k)
					t.lat = append(t.lat, t1.Sub(t0))
					t.sub = append(t.sub, w.sub...)
				case conflict != nil && conflict(err):
					t.confl++
				case ctx.Err() != nil:
					return
				default:
					t.errs++
					if t.firstErr == nil {
						t.firstErr = err
					}
				}
			}
		})
	}
	wg.Wait()
	res := Result{Clients: n, Seconds: window.Seconds()}
	var lat, sub []time.Duration
	for _, t := range tallies {
		lat = append(lat, t.lat...)
		sub = append(sub, t.sub...)
		res.Ops += t.ops
		res.Events += t.events
		res.Errors += t.errs
		res.Conflicts += t.confl
		res.Total += t.tot
		if t.firstErr != nil && res.FirstError == "" {
			res.FirstError = t.firstErr.Error()
		}
	}
	if len(sub) > 0 {
		lat = sub // latency per step
	}
	res.P50, res.P99 = percentiles(lat)
	res.OpsPerSec = float64(res.Ops) / window.Seconds()
	res.EventsPerSec = float64(res.Events) / window.Seconds()
	res.setCPU(<-cpu)
	return res
}

// sampleCPU returns what the machine and this process spent from from to
// to, or nothing when ctx ends first or the system does not tell.
func sampleCPU(ctx context.Context, from, to time.Time) cpuWindow {
	var a cpuSample
	for i, at := range []time.Time{from, to} {
		t := time.NewTimer(time.Until(at))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return cpuWindow{}
		}
		if i == 0 {
			a = readCPU()
			continue
		}
		w, _ := a.until(readCPU())
		return w
	}
	return cpuWindow{}
}

// percentiles returns the p50 and p99 of d (nearest rank); it sorts d.
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	rank := func(p int) time.Duration {
		i := (len(d)*p + 99) / 100 // ceil(n*p/100), 1-based
		return d[max(i, 1)-1]
	}
	return rank(50), rank(99)
}

func isConflict(err error) bool { return errors.Is(err, chronicle.ErrWrongVersion) }

func benchEvent(typ string) chronicle.Event {
	return chronicle.Event{Type: typ, Data: json.RawMessage(Payload), Metadata: json.RawMessage(Metadata)}
}

// payload is Payload's shape, every field of it: what a consumer of these
// events declares and decodes into (as order.Decode does for the domain's
// events), rather than a map[string]any, which costs about 1.5x as much
// (55 allocations an event instead of 17) and which no typed consumer uses.
type payload struct {
	CustomerID string        `json:"customer_id"`
	Total      int64         `json:"total"`
	Currency   string        `json:"currency"`
	Items      []payloadItem `json:"items"`
	Shipping   string        `json:"shipping"`
}

type payloadItem struct {
	SKU   string `json:"sku"`
	Name  string `json:"name"`
	Qty   int64  `json:"qty"`
	Price int64  `json:"price"`
}

// decode parses an event's JSON, as a reader that uses it would. W4 and W5
// decode every event with it, chronicle's and the plain table's alike.
func decode(data []byte) error {
	var v payload
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if v.CustomerID == "" || len(v.Items) == 0 {
		return fmt.Errorf("decode: not the bench payload: %.40s", data)
	}
	return nil
}
