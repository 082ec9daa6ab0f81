package chronicle

import (
	"context"
	"iter"
)

// ReadAhead returns the pages of the global log after from, each exactly as
// s.ReadAll(ctx, checkpoint after the previous page, opts) returns it (commit
// order, opts applied, at most opts.Limit events), while the next page is
// already being read: fetching overlaps with whatever the caller does with
// the current page (decoding, folding, writing read models), as a catch-up
// subscription wants. Every event comes exactly once and in order, because
// each read starts strictly after the last event of the page before it.
//
// The sequence ends after the first page shorter than the limit (the reader
// has caught up; what commits later needs a new ReadAhead from the last
// page's checkpoint, e.g. after s.Notify), or with the first error, yielded
// with a nil page. Breaking out of the loop, or ctx ending, cancels the read
// in flight and waits for it: no goroutine outlives the loop. At most one
// page is read ahead; that read holds one of the store's connections while
// the caller works, as a ReadAll of its own would.
//
//	for page, err := range chronicle.ReadAhead(ctx, store, cp, opts) {
//		if err != nil {
//			return err
//		}
//		handle(page)
//		cp = page[len(page)-1].Checkpoint()
//	}
func ReadAhead(ctx context.Context, s Store, from Checkpoint, opts ReadAllOptions) iter.Seq2[[]RecordedEvent, error] {
	if opts.Limit <= 0 {
		opts.Limit = DefaultReadAllLimit
	}
	type result struct {
		events []RecordedEvent
		err    error
	}
	return func(yield func([]RecordedEvent, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		next := make(chan result, 1)
		inFlight := false
		fetch := func(cp Checkpoint) {
			inFlight = true
			go func() {
				evs, err := s.ReadAll(ctx, cp, opts)
				next <- result{evs, err}
			}()
		}
		defer func() {
			cancel()
			if inFlight {
				<-next
			}
		}()
		fetch(from)
		for {
			r := <-next
			inFlight = false
			if r.err != nil {
				yield(nil, r.err)
				return
			}
			if len(r.events) == 0 {
				return
			}
			full := len(r.events) >= opts.Limit
			if full {
				fetch(r.events[len(r.events)-1].Checkpoint())
			}
			if !yield(r.events, nil) || !full {
				return
			}
		}
	}
}
