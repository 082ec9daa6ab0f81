package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// DefaultRounds is how many times each row is measured.
const DefaultRounds = 3

// job measures one row of the report (a workload, case, system and client
// count) once per round.
type job struct {
	workload string
	// place is opened for the job (and the place open before released);
	// nil: the job opens what it needs itself.
	place *place
	run   func(ctx context.Context, round int) (Result, error)
}

// runRounds runs every job once per round, round 1 of all of them before
// round 2 of any, so that a machine whose speed drifts slows every row
// alike; the fsync probe runs before, between and after the rounds.
func (r *runner) runRounds(ctx context.Context) error {
	for round := 1; round <= r.opts.Rounds; round++ {
		if err := r.probe(); err != nil {
			return err
		}
		for _, j := range r.jobs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := r.use(ctx, j.place); err != nil {
				return fmt.Errorf("bench %s: %w", j.workload, err)
			}
			res, err := j.run(ctx, round)
			if err != nil {
				return fmt.Errorf("bench %s: %w", j.workload, err)
			}
			res.Round = round
			r.add(res)
			r.prog.line("round %d/%d: %s", round, r.opts.Rounds, r.results[len(r.results)-1].summary())
		}
	}
	return r.probe()
}

// probe measures the fsync rate of the disk under the run's files, unless
// the probe is off.
func (r *runner) probe() error {
	if r.opts.FsyncProbe <= 0 {
		return nil
	}
	rate, err := FsyncRate(r.fsyncDir, r.opts.FsyncProbe)
	if err != nil {
		return fmt.Errorf("bench: fsync probe: %w", err)
	}
	r.fsyncs = append(r.fsyncs, rate)
	return nil
}

// use opens p, releasing the place open before: one place holds
// connections at a time however many the run prepared.
func (r *runner) use(ctx context.Context, p *place) error {
	if r.cur == p {
		return nil
	}
	if r.cur != nil {
		r.cur.release()
		r.cur = nil
	}
	if p == nil {
		return nil
	}
	if err := p.open(ctx); err != nil {
		return err
	}
	r.cur = p
	return nil
}

// newPlace makes a fresh place (see target.newPlace) that lasts the run;
// it is the open one unless noOpen.
func (r *runner) newPlace(ctx context.Context, name string, noOpen bool, plainConns int) (*place, error) {
	if err := r.use(ctx, nil); err != nil {
		return nil, err
	}
	p, err := r.t.newPlace(ctx, name, noOpen, plainConns)
	if err != nil {
		return nil, err
	}
	r.places = append(r.places, p)
	if !noOpen {
		r.cur = p
	}
	return p, nil
}

// Spread is a figure over the rounds: the median (of an even count, the
// mean of the two middle values), the lowest and the highest.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func summarize(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Spread{Median: med, Min: s[0], Max: s[n-1]}
}

// Row is one line of the report: the rounds of one workload, case,
// system and client count.
type Row struct {
	Workload string `json:"workload"`
	Case     string `json:"case,omitempty"`
	System   string `json:"system"`
	Backend  string `json:"backend"`
	Clients  int    `json:"clients"`
	// Main names the row's main figure (see Result.Main); Value is it over
	// the rounds (p50 in nanoseconds).
	Main  string `json:"main"`
	Value Spread `json:"value"`
	// The medians over the rounds.
	OpsPerSec    float64       `json:"ops_per_sec"`
	EventsPerSec float64       `json:"events_per_sec"`
	P50          time.Duration `json:"p50_ns"`
	P99          time.Duration `json:"p99_ns"`
	// Sums over the rounds.
	Errors    int64 `json:"errors"`
	Conflicts int64 `json:"conflicts"`
	// Ratio is chronicle / plain of the main figure, taken in each round
	// that measured both, over those rounds; on both rows of a pair.
	Ratio *Spread `json:"ratio,omitempty"`
	// PeakRSS is the W8 server's peak resident set in bytes, over the
	// rounds (each round starts its own server).
	PeakRSS *Spread `json:"peak_rss_bytes,omitempty"`
	// The medians over the rounds of the CPU figures (see Result), and the
	// ceiling they give (Result.Ceiling) over the rounds; zero and nil
	// where CPU was not measured.
	CPUPerOp     time.Duration `json:"cpu_per_op_ns,omitempty"`
	CPUPerEvent  time.Duration `json:"cpu_per_event_ns,omitempty"`
	SelfCPUPerOp time.Duration `json:"self_cpu_per_op_ns,omitempty"`
	BusyCores    float64       `json:"busy_cores,omitempty"`
	Cores        int           `json:"cores,omitempty"`
	Ceiling      *Spread       `json:"ceiling,omitempty"`
	FirstError   string        `json:"first_error,omitempty"`
	// Note is the note of the round whose figure is the median (the
	// lower of the two middle ones); each round has its own.
	Note   string   `json:"note,omitempty"`
	Rounds []Result `json:"rounds"`
}

// Disk is what the fsync probe measured: an 8 KiB write and fdatasync of
// one block, repeated, in a temporary file in Dir.
type Disk struct {
	Dir string `json:"dir"`
	// Samples are the probes' rates, in fsyncs per second, before the
	// first round, between rounds and after the last.
	Samples     []float64 `json:"samples"`
	FsyncPerSec Spread    `json:"fsync_per_sec"`
	Regime      string    `json:"regime"`
}

// Report is what Run measured.
type Report struct {
	Backend string `json:"backend"`
	Rounds  int    `json:"rounds"`
	// Disk is nil when the probe was off.
	Disk *Disk `json:"disk,omitempty"`
	// PlainCommits is W1's plain INSERT from one client (commits/s) over
	// the rounds, when the baseline ran it: the backend's own rate of
	// serial durable commits (PostgreSQL's on its disk, which the probe on
	// this machine's may not see; SQLite's at the run's synchronous level).
	PlainCommits *Spread `json:"plain_commits_per_sec,omitempty"`
	Rows         []Row   `json:"rows"`
}

// report groups the rounds measured so far into rows, in the order of
// their first round.
func (r *runner) report() *Report {
	rep := &Report{Backend: r.t.kind, Rounds: r.opts.Rounds}
	if len(r.fsyncs) > 0 {
		s := summarize(r.fsyncs)
		rep.Disk = &Disk{Dir: r.fsyncDir, Samples: r.fsyncs, FsyncPerSec: s, Regime: Regime(s.Median)}
	}
	type key struct {
		workload, cas, system string
		clients               int
	}
	index := map[key]int{}
	for _, res := range r.results {
		k := key{res.Workload, res.Case, res.System, res.Clients}
		i, ok := index[k]
		if !ok {
			i = len(rep.Rows)
			index[k] = i
			rep.Rows = append(rep.Rows, Row{Workload: res.Workload, Case: res.Case, System: res.System,
				Backend: res.Backend, Clients: res.Clients, Main: res.Main()})
		}
		rep.Rows[i].Rounds = append(rep.Rows[i].Rounds, res)
	}
	for i := range rep.Rows {
		row := &rep.Rows[i]
		var main, ops, evs, p50, p99, ratio, rss []float64
		var cpuOp, cpuEv, selfOp, busy, ceil []float64
		for _, res := range row.Rounds {
			if c := res.Ceiling(); c > 0 || (res.Main() == "p50" && res.CPUPerOp > 0) {
				cpuOp, cpuEv = append(cpuOp, float64(res.CPUPerOp)), append(cpuEv, float64(res.CPUPerEvent))
				selfOp, busy = append(selfOp, float64(res.SelfCPUPerOp)), append(busy, res.BusyCores)
				row.Cores = res.Cores
				if c > 0 {
					ceil = append(ceil, c)
				}
			}
			main = append(main, res.mainValue())
			ops, evs = append(ops, res.OpsPerSec), append(evs, res.EventsPerSec)
			p50, p99 = append(p50, float64(res.P50)), append(p99, float64(res.P99))
			if res.Ratio > 0 {
				ratio = append(ratio, res.Ratio)
			}
			if res.PeakRSS > 0 {
				rss = append(rss, float64(res.PeakRSS))
			}
			row.Errors += res.Errors
			row.Conflicts += res.Conflicts
			if row.FirstError == "" {
				row.FirstError = res.FirstError
			}
		}
		row.Value = summarize(main)
		row.OpsPerSec, row.EventsPerSec = summarize(ops).Median, summarize(evs).Median
		row.P50, row.P99 = time.Duration(summarize(p50).Median), time.Duration(summarize(p99).Median)
		if len(ratio) > 0 {
			s := summarize(ratio)
			row.Ratio = &s
		}
		if len(rss) > 0 {
			s := summarize(rss)
			row.PeakRSS = &s
		}
		if len(cpuOp) > 0 {
			row.CPUPerOp, row.CPUPerEvent = time.Duration(summarize(cpuOp).Median), time.Duration(summarize(cpuEv).Median)
			row.SelfCPUPerOp, row.BusyCores = time.Duration(summarize(selfOp).Median), summarize(busy).Median
		}
		if len(ceil) > 0 {
			s := summarize(ceil)
			row.Ceiling = &s
		}
		byValue := slices.Clone(row.Rounds)
		slices.SortStableFunc(byValue, func(a, b Result) int { return cmp.Compare(a.mainValue(), b.mainValue()) })
		row.Note = byValue[(len(byValue)-1)/2].Note
		if row.Workload == "W1" && row.System == "plain" && row.Clients == 1 {
			s := row.Value
			rep.PlainCommits = &s
		}
	}
	return rep
}
