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
// subscription wants. One goroutine reads page after page, up to
// readAheadPages pages beyond the one the caller holds, so that a page that
// takes the reader longer (or the caller less) than usual does not stall
// the other. Every event comes exactly once and in order, because
// each read starts strictly after the last event of the page before it.
//
// The sequence ends after the first page shorter than the limit (the reader
// has caught up; what commits later needs a new ReadAhead from the last
// page's checkpoint, e.g. after s.Notify), or with the first error, yielded
// with a nil page. Breaking out of the loop, or ctx ending, cancels the read
// in flight and waits for it: no goroutine outlives the loop. One read runs
// at a time; it holds one of the store's connections while the caller
// works, as a ReadAll of its own would. The pages read ahead stay in memory
// until the caller takes them: up to readAheadPages*opts.Limit events.
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
		// Pages waiting for the caller; the reader's page in flight is the
		// last of readAheadPages.
		next := make(chan result, readAheadPages-1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer close(next)
			cp := from
			for {
				evs, err := s.ReadAll(ctx, cp, opts)
				select {
				case next <- result{evs, err}:
				case <-ctx.Done():
					return
				}
				if err != nil || len(evs) < opts.Limit {
					return
				}
				cp = evs[len(evs)-1].Checkpoint()
			}
		}()
		defer func() {
			cancel()
			<-done
		}()
		for r := range next {
			if r.err != nil {
				yield(nil, r.err)
				return
			}
			if len(r.events) == 0 {
				return
			}
			if !yield(r.events, nil) || len(r.events) < opts.Limit {
				return
			}
		}
		// The reader stopped with neither a last page nor an error: ctx
		// ended while it waited for the caller.
		yield(nil, context.Cause(ctx))
	}
}

// readAheadPages is how many pages ReadAhead may have read beyond the one its
// caller holds. W5 (one reader paging 1,000,000 events, decoding each) ran
// 1.2x faster with 2 than with 1 and about the same with 4 (BENCHMARKS.md,
// "Tenth pass").
const readAheadPages = 4
