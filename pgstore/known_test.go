package pgstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/google/go-cmp/cmp"
)

// TestAppendKnownHead: an append of one event to a stream whose head the
// store knows runs appendOneSQL; when one of its checks fails (another
// store moved the stream on, the expected version is wrong, the event is
// stored already) it writes nothing and oneSQL answers. The same steps run
// with oneSQL alone must give the same answers and the same stream, whose
// versions and hash chain are checked.
func TestAppendKnownHead(t *testing.T) {
	ctx := context.Background()
	dupID := chronicle.NewEventID()
	run := func(t *testing.T, oneSQLOnly bool) ([]string, int64) {
		s := openTest(t, Options{})
		other := openTest(t, Options{Schema: s.schema}) // another process
		s.oneSQLOnly, other.oneSQLOnly = oneSQLOnly, oneSQLOnly
		const stream = "order-known"
		if _, err := s.Append(ctx, stream, chronicle.NoStream, []chronicle.Event{ev("A", `{"n":1}`)}); err != nil {
			t.Fatal(err)
		}
		dup := chronicle.Event{ID: dupID, Type: "D", Data: []byte(`{"dup":true}`)}
		steps := []struct {
			st       *Store
			expected chronicle.ExpectedVersion
			e        chronicle.Event
		}{
			{s, chronicle.Exact(1), ev("B", `{"n":2}`)},
			{s, chronicle.Any, ev("B", `{"n":3}`)},
			{s, chronicle.StreamExists, ev("B", `{"n":4}`)},
			{other, chronicle.Exact(4), ev("C", `{"n":5}`)}, // other reads the head
			{s, chronicle.Any, ev("B", `{"n":6}`)},          // s's head is stale
			{s, chronicle.Exact(5), ev("B", `{"n":7}`)},     // stale again, and a conflict
			{s, chronicle.Exact(3), ev("B", `{"n":8}`)},     // a conflict on a known head
			{s, chronicle.Exact(6), dup},
			{s, chronicle.Any, dup}, // the same event again
			{other, chronicle.Any, ev("C", `{"n":9}`)},
		}
		var answers []string
		for i, st := range steps {
			res, err := st.st.Append(ctx, stream, st.expected, []chronicle.Event{st.e})
			var conflict *chronicle.ConflictError
			switch {
			case err == nil:
				answers = append(answers, fmt.Sprintf("step %d: versions %d-%d", i, res.FirstVersion, res.LastVersion))
			case errors.As(err, &conflict):
				answers = append(answers, fmt.Sprintf("step %d: conflict, actual %d", i, conflict.Actual))
			default:
				answers = append(answers, fmt.Sprintf("step %d: %v", i, err))
			}
		}
		stored, err := s.ReadStream(ctx, stream, chronicle.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		events := make([]audit.Event, len(stored))
		hashes := make([]audit.Hash, len(stored))
		for j, e := range stored {
			if e.Version != int64(j+1) || (j > 0 && e.Position <= stored[j-1].Position) {
				t.Errorf("event %d stored as version %d at position %d", j, e.Version, e.Position)
			}
			events[j], hashes[j] = audit.FromRecorded(e, e.PrevHash), e.Hash
			answers = append(answers, fmt.Sprintf("stored %d: %s %s", e.Version, e.Type, e.Data))
		}
		if err := audit.CheckStream(events, hashes); err != nil {
			t.Error(err)
		}
		return answers, s.known.Load() + other.known.Load()
	}
	fast, fastKnown := run(t, false)
	if fastKnown == 0 {
		t.Fatal("no append ran appendOneSQL")
	}
	slow, known := run(t, true)
	if known != 0 {
		t.Fatalf("%d appends ran appendOneSQL with oneSQL alone", known)
	}
	if diff := cmp.Diff(slow, fast); diff != "" {
		t.Errorf("appendOneSQL answered otherwise than oneSQL (-oneSQL +appendOneSQL):\n%s", diff)
	}
	t.Logf("%d appends ran appendOneSQL", fastKnown)
}
