package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/seal"
)

func copier(t *testing.T, b Backend) interface {
	Backend
	chronicle.Exporter
	chronicle.Importer
	chronicle.KeyStore
} {
	t.Helper()
	c, ok := untracked(b).(interface {
		Backend
		chronicle.Exporter
		chronicle.Importer
		chronicle.KeyStore
	})
	if !ok {
		t.Fatalf("%T does not implement chronicle.Exporter, chronicle.Importer and chronicle.KeyStore", untracked(b))
	}
	return c
}

// waitCount waits until ReadAll shows n events (PostgreSQL holds committed
// events back while another transaction of the cluster is open).
func waitCount(t *testing.T, s Backend, n int) []chronicle.RecordedEvent {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		evs := readAllPaged(t, s, 1000, chronicle.ReadAllOptions{})
		if len(evs) >= n || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testImport: events imported into another store read back exactly as the
// source recorded them (bytes, times, ids, versions), in the source's
// order; the streams go on from there with ordinary appends; the
// immutability guards still hold; snapshots and data keys (tombstones
// too) copy as stored.
func testImport(t *testing.T, h Harness) {
	ctx := context.Background()
	sb, db := h.Open(t, Options{}), h.Open(t, Options{})
	src, dst := copier(t, sb), copier(t, db)

	// Bytes an encoder would change: key order, spaces, escapes.
	odd := chronicle.Event{Type: "Odd", SchemaVersion: 1, Data: json.RawMessage(`{"z": 1,  "a":"\u00e9", "n":1.50}`),
		Metadata: json.RawMessage(`{"actor":"x",  "request_id":"r"}`)}
	mustAppend(t, sb, "order-a", chronicle.NoStream, append(newEvents(3, "A"), odd))
	mustAppend(t, sb, "order-b", chronicle.NoStream, []chronicle.Event{{Type: "Old", SchemaVersion: 2, Data: json.RawMessage(`[1,2]`)}})
	mustAppend(t, sb, "cart-a", chronicle.NoStream, newEvents(3, "C"))
	mustAppend(t, sb, "order-a", 4, newEvents(2, "A"))
	want := waitCount(t, src, 10)
	if len(want) != 10 {
		t.Fatalf("source shows %d events, want 10", len(want))
	}
	if n, err := src.CountEvents(ctx); err != nil || n != 10 {
		t.Fatalf("CountEvents = %d, %v; want 10", n, err)
	}
	for _, n := range []int64{1, 7, 10} {
		e, err := src.EventAt(ctx, n)
		if err != nil || !sameRecorded(e, want[n-1]) {
			t.Fatalf("EventAt(%d) = %+v, %v; want %+v", n, e, err, want[n-1])
		}
	}
	if _, err := src.EventAt(ctx, 11); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("EventAt past the end: error %v, want ErrNotFound", err)
	}

	// Not the stream's next version: refused, nothing written.
	if err := dst.ImportEvents(ctx, want[1:3]); !errors.As(err, new(*chronicle.InvalidError)) {
		t.Fatalf("ImportEvents from version 2 of a new stream: error %v, want *InvalidError", err)
	}
	if err := dst.ImportEvents(ctx, []chronicle.RecordedEvent{want[0], want[0]}); err == nil {
		t.Fatal("ImportEvents of one event twice: no error")
	}
	// A chain link that does not hold: refused.
	broken := append([]chronicle.RecordedEvent(nil), want[:2]...)
	broken[1].PrevHash[0] ^= 1
	if err := dst.ImportEvents(ctx, broken); !errors.As(err, new(*chronicle.InvalidError)) {
		t.Fatalf("ImportEvents with a broken chain: error %v, want *InvalidError", err)
	}
	checkEmpty(t, dst, "order-a")

	for _, chunk := range [][]chronicle.RecordedEvent{want[:3], want[3:7], want[7:]} {
		if err := dst.ImportEvents(ctx, chunk); err != nil {
			t.Fatalf("ImportEvents: %v", err)
		}
	}
	got := waitCount(t, dst, 10)
	if len(got) != len(want) {
		t.Fatalf("target shows %d events, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.StreamID != w.StreamID || g.StreamType != w.StreamType || g.Version != w.Version ||
			g.Type != w.Type || g.SchemaVersion != w.SchemaVersion || !g.RecordedAt.Equal(w.RecordedAt) ||
			!bytes.Equal(g.Data, w.Data) || !bytes.Equal(g.Metadata, w.Metadata) ||
			g.Hash != w.Hash || g.PrevHash != w.PrevHash {
			t.Fatalf("imported event %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	checkOrdered(t, got, chronicle.Checkpoint{})
	if string(got[3].Data) != string(odd.Data) {
		t.Fatalf("imported data %s, want the bytes %s", got[3].Data, odd.Data)
	}
	if n, err := dst.CountEvents(ctx); err != nil || n != 10 {
		t.Fatalf("target CountEvents = %d, %v; want 10", n, err)
	}
	if err := dst.ImportEvents(ctx, want[9:]); !errors.As(err, new(*chronicle.InvalidError)) && !errors.As(err, new(*chronicle.DuplicateEventError)) {
		t.Fatalf("ImportEvents again: error %v, want *InvalidError or *DuplicateEventError", err)
	}
	for stream, v := range map[string]int64{"order-a": 6, "order-b": 1, "cart-a": 3} {
		if got := mustVersion(t, dst, stream); got != v {
			t.Fatalf("StreamVersion(%s) = %d, want %d", stream, got, v)
		}
	}
	// Appends go on from the imported versions.
	checkConflict(t, appendErr(dst, "order-a", 5), "order-a", 5, 6)
	if res := mustAppend(t, db, "order-a", 6, newEvents(1, "A")); res.LastVersion != 7 {
		t.Fatalf("append after import: version %d, want 7", res.LastVersion)
	}
	if err := h.Exec(t, dst, "UPDATE events SET event_type = 'X'"); err == nil {
		t.Fatal("UPDATE of imported events succeeded: the immutability guard is gone")
	}

	// Snapshots, TakenAt as stored.
	for i, stream := range []string{"order-b", "order-a", "cart-a"} {
		if err := src.SaveSnapshot(ctx, chronicle.Snapshot{StreamID: stream, Version: int64(i + 1), SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := src.ListSnapshots(ctx, "", 2)
	if err != nil || len(snaps) != 2 || snaps[0].StreamID != "cart-a" || snaps[1].StreamID != "order-a" {
		t.Fatalf("ListSnapshots page 1 = %+v, %v", snaps, err)
	}
	rest, err := src.ListSnapshots(ctx, snaps[1].StreamID, 2)
	if err != nil || len(rest) != 1 || rest[0].StreamID != "order-b" {
		t.Fatalf("ListSnapshots page 2 = %+v, %v", rest, err)
	}
	snaps = append(snaps, rest...)
	if err := dst.ImportSnapshots(ctx, snaps); err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		g, err := dst.LoadSnapshot(ctx, s.StreamID)
		if err != nil || g.Version != s.Version || g.SchemaVersion != s.SchemaVersion || string(g.Data) != string(s.Data) || !g.TakenAt.Equal(s.TakenAt) {
			t.Fatalf("imported snapshot %s = %+v, %v; want %+v", s.StreamID, g, err, s)
		}
	}

	// Data keys: live and erased, the erasure kept.
	for _, subj := range []string{"cust_1", "cust_2", "cust_3"} {
		if _, err := src.CreateDataKey(ctx, chronicle.DataKey{ID: "k-" + subj, Subject: subj, Wrapped: []byte("w-" + subj)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.EraseSubject(ctx, "cust_2"); err != nil {
		t.Fatal(err)
	}
	keys, err := src.ListDataKeys(ctx, "", 2)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListDataKeys = %+v, %v", keys, err)
	}
	more, err := src.ListDataKeys(ctx, keys[1].ID, 10)
	if err != nil || len(more) != 1 {
		t.Fatalf("ListDataKeys page 2 = %+v, %v", more, err)
	}
	keys = append(keys, more...)
	if keys[1].ID != "k-cust_2" || keys[1].Wrapped != nil || keys[1].ErasedAt.IsZero() || keys[0].ErasedAt != (time.Time{}) {
		t.Fatalf("ListDataKeys = %+v: want cust_2's tombstone second", keys)
	}
	for range 2 { // again: a resumed copy imports them again
		if err := dst.ImportDataKeys(ctx, keys); err != nil {
			t.Fatal(err)
		}
	}
	got2, err := dst.ListDataKeys(ctx, "", 10)
	if err != nil || len(got2) != 3 {
		t.Fatalf("target ListDataKeys = %+v, %v", got2, err)
	}
	for i := range keys {
		g, w := got2[i], keys[i]
		if g.ID != w.ID || g.Subject != w.Subject || !bytes.Equal(g.Wrapped, w.Wrapped) || !g.CreatedAt.Equal(w.CreatedAt) || !g.ErasedAt.Equal(w.ErasedAt) {
			t.Fatalf("imported key %d = %+v, want %+v", i, g, w)
		}
	}
	if _, err := dst.SubjectKey(ctx, "cust_2"); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("erased subject's key on the target: error %v, want ErrNotFound", err)
	}
	if k, err := dst.SubjectKey(ctx, "cust_1"); err != nil || string(k.Wrapped) != "w-cust_1" {
		t.Fatalf("SubjectKey(cust_1) on the target = %+v, %v", k, err)
	}
	// A tombstone is never revived.
	revived := keys[1]
	revived.Wrapped, revived.ErasedAt = []byte("back"), time.Time{}
	if err := dst.ImportDataKeys(ctx, []chronicle.DataKey{revived}); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.SubjectKey(ctx, "cust_2"); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("a tombstone imported over came back to life: error %v", err)
	}
	// A stored key is never rewritten: another one under its id, or
	// another live key of its subject, is refused, and it stays as it was.
	other := keys[0]
	other.Wrapped = []byte("another")
	later := keys[2]
	later.CreatedAt = later.CreatedAt.Add(time.Second)
	second := chronicle.DataKey{ID: "k-second", Subject: keys[0].Subject, Wrapped: []byte("w2"), CreatedAt: keys[0].CreatedAt}
	for _, k := range []chronicle.DataKey{other, later, second} {
		var invalid *chronicle.InvalidError
		if err := dst.ImportDataKeys(ctx, []chronicle.DataKey{k}); !errors.As(err, &invalid) {
			t.Fatalf("ImportDataKeys(%+v) over another stored key: error %v, want *InvalidError", k, err)
		}
	}
	if k, err := dst.SubjectKey(ctx, "cust_1"); err != nil || k.ID != keys[0].ID || string(k.Wrapped) != "w-cust_1" {
		t.Fatalf("SubjectKey(cust_1) after refused imports = %+v, %v", k, err)
	}
	// Erased in the source since: the stored live key is erased too.
	gone := keys[0]
	gone.Wrapped, gone.ErasedAt = nil, time.Now().UTC().Truncate(time.Microsecond)
	if err := dst.ImportDataKeys(ctx, []chronicle.DataKey{gone}); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.SubjectKey(ctx, "cust_1"); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("a live key imported as erased: SubjectKey error %v, want ErrNotFound", err)
	}
}

func appendErr(s Backend, stream string, exp chronicle.ExpectedVersion) error {
	_, err := s.Append(context.Background(), stream, exp, newEvents(1, "A"))
	return err
}

// testImportSeals: seals imported from another store keep every field (so
// their hashes and signatures hold) and carry where they end in this store;
// Verify, Export and the sealer go by that end, the sealer chaining its
// next seal to the last imported one. Imported keys are listed.
func testImportSeals(t *testing.T, h Harness) {
	ctx := context.Background()
	sb, db := h.Open(t, Options{}), h.Open(t, Options{})
	src, dst := copier(t, sb), copier(t, db)
	ss, ds := sealStore(t, sb), sealStore(t, db)

	for i := range 7 {
		mustAppend(t, sb, fmt.Sprintf("order-%d", i), chronicle.NoStream, newEvents(3, "A"))
	}
	evs := waitCount(t, src, 21)
	key := newKey(t)
	sealAll(t, seal.New(ss, seal.Options{MaxEvents: 5, Key: key}))
	want, err := ss.Seals(ctx, 0, 0)
	if err != nil || len(want) != 5 {
		t.Fatalf("source seals: %d, %v; want 5", len(want), err)
	}
	for _, s := range want {
		if s.End != (chronicle.Checkpoint{}) {
			t.Fatalf("the source's own seal %d has an End %+v", s.Seq, s.End)
		}
	}
	keys, err := ss.SealKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("source seal keys: %v, %v", keys, err)
	}
	if err := dst.ImportEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got := waitCount(t, dst, 21)

	imported := append([]chronicle.Seal(nil), want...)
	n := 0
	for i := range imported {
		n += int(imported[i].Count)
		imported[i].End = got[n-1].Checkpoint()
	}
	if err := dst.ImportSeals(ctx, imported[1:2], keys); !errors.Is(err, chronicle.ErrSealConflict) {
		t.Fatalf("ImportSeals from seal 2: error %v, want ErrSealConflict", err)
	}
	noEnd := append([]chronicle.Seal(nil), imported[:2]...)
	noEnd[1].End = chronicle.Checkpoint{}
	if err := dst.ImportSeals(ctx, noEnd, keys); !errors.As(err, new(*chronicle.InvalidError)) {
		t.Fatalf("ImportSeals of a seal without its End: error %v, want *InvalidError", err)
	}
	for _, chunk := range [][]chronicle.Seal{imported[:2], imported[2:]} {
		if err := dst.ImportSeals(ctx, chunk, keys); err != nil {
			t.Fatalf("ImportSeals: %v", err)
		}
	}
	if err := dst.ImportSeals(ctx, imported[4:], keys); !errors.Is(err, chronicle.ErrSealConflict) {
		t.Fatalf("ImportSeals again: error %v, want ErrSealConflict", err)
	}
	have, err := ds.Seals(ctx, 0, 0)
	if err != nil || fmt.Sprint(have) != fmt.Sprint(imported) {
		t.Fatalf("imported seals read back (%v):\n%+v\nwant\n%+v", err, have, imported)
	}
	if latest, err := ds.LatestSeal(ctx); err != nil || latest != imported[4] {
		t.Fatalf("LatestSeal = %+v, %v; want %+v", latest, err, imported[4])
	}
	if k, err := ds.SealKeys(ctx); err != nil || fmt.Sprint(k) != fmt.Sprint(keys) {
		t.Fatalf("imported seal keys %v, %v; want %v", k, err, keys)
	}
	anchor := audit.Hash(want[4].SealHash).String()
	if _, err := seal.Verify(ctx, ds, seal.VerifyOptions{Anchor: anchor}); err != nil {
		t.Fatalf("Verify after the import: %v", err)
	}

	// The target seals on after the last imported seal's end.
	mustAppend(t, db, "order-new", chronicle.NoStream, newEvents(2, "N"))
	waitCount(t, dst, 23)
	next, ok, err := seal.New(ds, seal.Options{Key: key}).SealOnce(ctx)
	if err != nil || !ok || next.Seq != 6 || next.PrevSealHash != want[4].SealHash || next.Count != 2 {
		t.Fatalf("the target's first seal %+v (%v, %v): want seq 6 of the 2 new events, chained to seal 5", next, ok, err)
	}
	rep, err := seal.Verify(ctx, ds, seal.VerifyOptions{Anchor: anchor})
	if err != nil || rep.Seals != 6 || rep.Unsealed != 0 {
		t.Fatalf("Verify after the target's seal: %+v, %v", rep, err)
	}
	b, err := seal.Export(ctx, ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Check(b, audit.Options{PublicKey: key.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatalf("a bundle of the target does not check: %v", err)
	}
}

// testImportSealKeys: seals imported in batches, with every source key
// given each time, list each key with the first seal it signed, as the
// source does: a key rotated in later is not listed from the first batch.
func testImportSealKeys(t *testing.T, h Harness) {
	ctx := context.Background()
	sb, db := h.Open(t, Options{}), h.Open(t, Options{})
	src, dst := copier(t, sb), copier(t, db)
	ss, ds := sealStore(t, sb), sealStore(t, db)
	for i, key := range []ed25519.PrivateKey{newKey(t), newKey(t)} {
		for j := range 2 {
			mustAppend(t, sb, fmt.Sprintf("order-%d-%d", i, j), chronicle.NoStream, newEvents(2, "A"))
		}
		waitCount(t, src, 4*(i+1))
		sealAll(t, seal.New(ss, seal.Options{MaxEvents: 2, Key: key}))
	}
	seals, err := ss.Seals(ctx, 0, 0)
	if err != nil || len(seals) != 4 {
		t.Fatalf("source seals: %d, %v; want 4", len(seals), err)
	}
	keys, err := ss.SealKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("source seal keys: %+v, %v; want 2", keys, err)
	}
	if err := dst.ImportEvents(ctx, waitCount(t, src, 8)); err != nil {
		t.Fatal(err)
	}
	got := waitCount(t, dst, 8)
	for i := range seals {
		seals[i].End = got[2*i+1].Checkpoint()
	}
	for _, batch := range [][]chronicle.Seal{seals[:2], seals[2:]} {
		if err := dst.ImportSeals(ctx, batch, keys); err != nil {
			t.Fatalf("ImportSeals: %v", err)
		}
	}
	if k, err := ds.SealKeys(ctx); err != nil || fmt.Sprint(k) != fmt.Sprint(keys) {
		t.Fatalf("imported seal keys %+v, %v; want the source's %+v", k, err, keys)
	}
}
