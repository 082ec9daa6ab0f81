package pgstore

import (
	"context"
	"sync/atomic"
)

// versionReq is a StreamVersion call waiting for a query.
type versionReq struct {
	ctx    context.Context
	stream string
	done   chan versionOutcome // buffered 1: the reader never blocks on it
}

type versionOutcome struct {
	v   int64
	err error
}

// maxVersionBatch bounds the streams one query reads.
const maxVersionBatch = 1000

// versionsSQL reads the versions of many streams at once; a stream with no
// row has none.
const versionsSQL = `SELECT stream_id, version FROM streams WHERE stream_id = ANY($1::text[])`

// readVersions answers the pending StreamVersion calls, a query for all of
// them at a time, until none are left. Each call was pending before its
// query began, so the query sees every append that ended before the call:
// answering many together is as fresh as answering each alone.
func (s *Store) readVersions() {
	defer s.vreading.Done()
	for {
		s.vmu.Lock()
		batch := s.vpending
		if len(batch) > maxVersionBatch {
			batch = batch[:maxVersionBatch]
		}
		s.vpending = s.vpending[len(batch):]
		if len(batch) == 0 {
			s.vpending = nil
			s.vreaders--
			s.vmu.Unlock()
			return
		}
		s.vmu.Unlock()
		s.answerVersions(batch)
	}
}

// answerVersions reads the versions batch asks for and answers each call.
// The query runs on its own context, so that one caller giving up does not
// fail the others; it is cancelled when all of them have given up, so that
// a query that hangs does not hold the reader's place for the calls after.
func (s *Store) answerVersions(batch []*versionReq) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var gone atomic.Int64
	for _, r := range batch {
		stop := context.AfterFunc(r.ctx, func() {
			if gone.Add(1) == int64(len(batch)) {
				cancel()
			}
		})
		defer stop()
	}
	streams := make([]string, 0, len(batch))
	seen := make(map[string]int64, len(batch))
	for _, r := range batch {
		if _, ok := seen[r.stream]; !ok {
			seen[r.stream] = 0
			streams = append(streams, r.stream)
		}
	}
	err := func() error {
		rows, err := s.pool.Query(ctx, versionsSQL, streams)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var stream string
			var v int64
			if err := rows.Scan(&stream, &v); err != nil {
				return err
			}
			seen[stream] = v
		}
		return rows.Err()
	}()
	if len(batch) > 1 {
		s.versioned.Add(int64(len(batch)))
	}
	for _, r := range batch {
		if err != nil {
			r.done <- versionOutcome{err: s.opErr("stream version "+r.stream, err)}
			continue
		}
		r.done <- versionOutcome{v: seen[r.stream]}
	}
}
