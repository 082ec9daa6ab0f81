package bench

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/proccpu"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/relay"
)

// DefaultW10Events is the size of W10's data set.
const DefaultW10Events = 200_000

// w10 relays a stored log into a fresh JetStream stream (file storage),
// from checkpoint zero to the head, as `chronicle relay` does: events/s
// until the relay's checkpoint, moved only after JetStream's
// acknowledgement, reaches the last event.
func (r *runner) w10(ctx context.Context) error {
	if r.opts.NATS == "" {
		r.prog.line("W10 skipped: no NATS server (--nats nats://HOST:PORT)")
		return nil
	}
	p, err := r.newPlace(ctx, "w10", false, 0)
	if err != nil {
		return err
	}
	streams, perStream, err := r.loadStreams(ctx, p, r.opts.W10Events)
	if err != nil {
		return err
	}
	want := streams * perStream
	head, err := p.store.Head(ctx)
	if err != nil {
		return err
	}
	r.jobs = append(r.jobs, job{workload: "W10", place: p, run: func(ctx context.Context, round int) (Result, error) {
		return r.w10Run(ctx, p, round, head.Checkpoint, want)
	}})
	return nil
}

// w10Run relays the whole log once: into a JetStream stream of the
// round's own, from a checkpoint of the round's own.
func (r *runner) w10Run(ctx context.Context, p *place, round int, head chronicle.Checkpoint, want int) (Result, error) {
	// A stream and subjects of this run's own, deleted at the end: the
	// server may be shared.
	id := fmt.Sprintf("%s_r%d", r.t.run, round)
	name := "BENCH_" + strings.ToUpper(id)
	rl, err := relay.New(relay.Options{URL: r.opts.NATS, SubjectPrefix: "bench_" + id, Stream: name, Upcaster: order.NewRegistry()})
	if err != nil {
		return Result{}, err
	}
	defer rl.Close()
	var applied atomic.Int64
	sink := roundSink{rl, fmt.Sprintf("%s_r%d", relay.Name, round)}
	runner, err := projection.New(p.store, projection.Options{Sinks: []projection.Sink{sink}, Hooks: projection.Hooks{
		Applied: func(_ string, n int, _ chronicle.Checkpoint, _ time.Duration) { applied.Add(int64(n)) },
	}})
	if err != nil {
		return Result{}, err
	}
	if err := runner.Setup(ctx); err != nil {
		return Result{}, err
	}
	defer r.dropStream(name)
	r.checkpoint(ctx, p)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start, cpu0 := time.Now(), proccpu.Used()
	go func() {
		defer close(done)
		runner.Run(rctx)
	}()
	err = runner.WaitFor(ctx, sink.name, head)
	el, cpu := time.Since(start), proccpu.Used()-cpu0
	cancel()
	<-done
	res := Result{Workload: "W10", Clients: 1, Seconds: el.Seconds()}
	res.Events = applied.Load()
	res.Ops, res.Total = res.Events, res.Events
	res.EventsPerSec = float64(res.Events) / el.Seconds()
	res.OpsPerSec = res.EventsPerSec
	if cpu > 0 && res.Events > 0 {
		// CPU per event holds from one machine state to the next; the
		// rate does not on a shared machine.
		res.Note = fmt.Sprintf("%.1f cpu-µs/event in bench (the relay, and the NATS server when in the same process)",
			float64(cpu.Microseconds())/float64(res.Events))
	}
	if err != nil {
		res.Errors++
		res.FirstError = err.Error()
	} else if res.Events != int64(want) {
		res.Errors++
		res.FirstError = fmt.Sprintf("relayed %d events, the data set has %d", res.Events, want)
	}
	return res, nil
}

// roundSink is the relay under a checkpoint name of the round's, so that
// each round relays the log from the start.
type roundSink struct {
	*relay.Relay
	name string
}

func (s roundSink) Name() string { return s.name }

// dropStream deletes the run's JetStream stream, unless the run keeps
// what it made.
func (r *runner) dropStream(name string) {
	if r.opts.Keep {
		return
	}
	nc, err := nats.Connect(r.opts.NATS)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js.DeleteStream(ctx, name)
}
