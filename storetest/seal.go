package storetest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/seal"
)

// sealBackend is a backend as the sealer sees it: appends through the
// suite's tracking, seals and the SQL database of the store underneath.
type sealBackend struct {
	Backend
	chronicle.SealStore
	chronicle.SQLDatabase
}

func sealStore(t testing.TB, b Backend) sealBackend {
	t.Helper()
	ss, ok := untracked(b).(chronicle.SealStore)
	if !ok {
		t.Fatalf("%T does not implement chronicle.SealStore", untracked(b))
	}
	db, _ := untracked(b).(chronicle.SQLDatabase)
	return sealBackend{Backend: b, SealStore: ss, SQLDatabase: db}
}

func isPostgres(b Backend) bool {
	db, ok := untracked(b).(chronicle.SQLDatabase)
	return ok && db.Dialect() == "postgres"
}

func newKey(t testing.TB) ed25519.PrivateKey {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// sealAll seals until nothing readable is left unsealed.
func sealAll(t testing.TB, sl *seal.Sealer) {
	t.Helper()
	for {
		_, ok, err := sl.SealOnce(context.Background())
		if err != nil {
			t.Fatalf("SealOnce: %v", err)
		}
		if !ok {
			return
		}
	}
}

// checkSealed checks the store's seals against its log with nothing but
// package audit: seqs 1, 2, ... chained, each seal's hash and signature,
// and that the seals cover the events of the log in read order, each
// exactly once, up to its last_checkpoint, with their Merkle root. It
// returns the number of events left unsealed.
func checkSealed(t testing.TB, b sealBackend, maxEvents int) (seals []chronicle.Seal, unsealed int) {
	t.Helper()
	ctx := context.Background()
	seals, err := b.Seals(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := b.SealKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]ed25519.PublicKey{}
	for _, k := range keys {
		if audit.KeyID(k.PublicKey) != k.KeyID {
			t.Fatalf("seal key %s is listed with another key", k.KeyID)
		}
		byID[k.KeyID] = k.PublicKey
	}
	all := readAllPaged(t, b, 1000, chronicle.ReadAllOptions{})
	next := 0
	var prev chronicle.Seal
	for _, s := range seals {
		if s.Seq != prev.Seq+1 || s.PrevSealHash != prev.SealHash {
			t.Fatalf("seal %d follows seal %d (prev_seal_hash %x, want %x)", s.Seq, prev.Seq, s.PrevSealHash, prev.SealHash)
		}
		if got := audit.SealHash(audit.SealOf(s)); got != s.SealHash {
			t.Fatalf("seal %d: seal_hash %x, recomputed %x", s.Seq, s.SealHash, got)
		}
		if s.KeyID != "" {
			if err := audit.VerifySignature(byID[s.KeyID], s.SealHash, s.Signature); err != nil {
				t.Fatalf("seal %d: signature by %s: %v", s.Seq, s.KeyID, err)
			}
		}
		if s.Count < 1 || s.Count > int64(maxEvents) {
			t.Fatalf("seal %d covers %d events, want 1..%d", s.Seq, s.Count, maxEvents)
		}
		if int64(len(all)-next) < s.Count {
			t.Fatalf("seal %d covers %d events, the log has %d after seal %d's", s.Seq, s.Count, len(all)-next, prev.Seq)
		}
		covered := all[next : next+int(s.Count)]
		if last := covered[len(covered)-1]; last.Checkpoint() != s.LastCheckpoint {
			t.Fatalf("seal %d: last_checkpoint %+v, its last event is at %+v", s.Seq, s.LastCheckpoint, last.Checkpoint())
		}
		hashes := make([]audit.Hash, len(covered))
		for i, e := range covered {
			hashes[i] = e.Hash
		}
		if audit.MerkleRoot(hashes) != s.Root {
			t.Fatalf("seal %d: root is not the Merkle root of its %d events", s.Seq, s.Count)
		}
		next += int(s.Count)
		prev = s
	}
	return seals, len(all) - next
}

func testSeals(t *testing.T, h Harness) {
	b := sealStore(t, h.Open(t, Options{}))
	ctx := context.Background()
	key1, key2 := newKey(t), newKey(t)

	if _, ok, err := seal.New(b, seal.Options{}).SealOnce(ctx); ok || err != nil {
		t.Fatalf("SealOnce on an empty log: ok %v, err %v; want nothing sealed", ok, err)
	}
	if _, err := b.LatestSeal(ctx); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("LatestSeal before any seal: %v, want ErrNotFound", err)
	}

	// Writers append while a sealer runs; MaxEvents small enough that some
	// seals are full.
	const maxEvents = 7
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		seal.New(b, seal.Options{Interval: 10 * time.Millisecond, MaxEvents: maxEvents, Key: key1}).Run(runCtx)
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if _, err := b.Append(ctx, fmt.Sprintf("order-s%d", w), chronicle.Any, newEvents(1+i%3, "Sealed")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	settle(t, b)
	head, err := b.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		latest, err := b.LatestSeal(ctx)
		if err == nil && !latest.LastCheckpoint.Before(head.Checkpoint) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running sealer did not seal up to the head %+v within 30s (latest: %+v, %v)", head.Checkpoint, latest, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	<-done
	seals, unsealed := checkSealed(t, b, maxEvents)
	if unsealed != 0 || len(seals) < 60/maxEvents {
		t.Fatalf("%d seals, %d events unsealed; want every event sealed in at least %d seals", len(seals), unsealed, 60/maxEvents)
	}

	// Another key seals what follows; both stay listed, in order of use.
	mustAppend(t, b, "order-s9", chronicle.NoStream, newEvents(3, "Rotated"))
	settle(t, b)
	sealAll(t, seal.New(b, seal.Options{Key: key2}))
	seals, unsealed = checkSealed(t, b, seal.DefaultMaxEvents)
	if unsealed != 0 || seals[len(seals)-1].KeyID != audit.KeyID(key2.Public().(ed25519.PublicKey)) {
		t.Fatalf("after rotation: %d unsealed, last seal by %q", unsealed, seals[len(seals)-1].KeyID)
	}
	keys, err := b.SealKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].KeyID != audit.KeyID(key1.Public().(ed25519.PublicKey)) || keys[1].KeyID != seals[len(seals)-1].KeyID {
		t.Fatalf("SealKeys = %+v, want key1 then key2", keys)
	}
	// Seals pages.
	page, err := b.Seals(ctx, 2, 3)
	if err != nil || len(page) != 3 || page[0].Seq != 3 || page[2].Seq != 5 {
		t.Fatalf("Seals(after 2, limit 3) = %d seals starting at %v, %v", len(page), page, err)
	}
	if rep, err := seal.Verify(ctx, b, seal.VerifyOptions{Anchor: audit.Hash(seals[2].SealHash).String()}); err != nil || rep.Unsealed != 0 {
		t.Fatalf("Verify of an untouched store: %+v, %v", rep, err)
	}

	// The database refuses to change or remove a seal or a key.
	for _, q := range []string{
		"UPDATE seals SET count = count + 1 WHERE seq = 1",
		"DELETE FROM seals WHERE seq = (SELECT max(seq) FROM seals)",
		"UPDATE seal_keys SET public_key = public_key",
		"DELETE FROM seal_keys",
	} {
		if err := h.Exec(t, b.Backend, q); err == nil {
			t.Errorf("%s: the database allowed it", q)
		}
	}
	if h.Truncate {
		if err := h.Exec(t, b.Backend, "TRUNCATE seals"); err == nil {
			t.Error("TRUNCATE seals: the database allowed it")
		}
	}
	if h.Replace {
		if err := h.Exec(t, b.Backend, "REPLACE INTO seals SELECT * FROM seals WHERE seq = 1"); err == nil {
			t.Error("REPLACE INTO seals: the database allowed it")
		}
	}
	if after, err := b.Seals(ctx, 0, 0); err != nil || len(after) != len(seals) || after[0] != seals[0] {
		t.Fatalf("seals changed under the guards: %d seals, %v", len(after), err)
	}

	// A seal that does not follow the latest is refused.
	stale := seals[len(seals)-1]
	if err := b.AddSeal(ctx, stale, nil); !errors.Is(err, chronicle.ErrSealConflict) {
		t.Fatalf("AddSeal of a stored seq: %v, want ErrSealConflict", err)
	}
	stale.Seq++
	if err := b.AddSeal(ctx, stale, nil); !errors.Is(err, chronicle.ErrSealConflict) {
		t.Fatalf("AddSeal not chained to the latest seal: %v, want ErrSealConflict", err)
	}

	// Once signed, the seals stay signed: Verify would take an unsigned
	// one for signatures removed.
	mustAppend(t, b, "order-s10", chronicle.NoStream, newEvents(1, "Unsigned"))
	settle(t, b)
	if s, ok, err := seal.New(b, seal.Options{}).SealOnce(ctx); !errors.Is(err, seal.ErrUnsigned) {
		t.Fatalf("SealOnce without a key after signed seals = %+v, %v, %v; want ErrUnsigned", s, ok, err)
	}
}

// A seal covers only what no transaction can still add to: while an
// append's transaction is open, the seal stops before it, however many
// later transactions committed (PostgreSQL); it is sealed once it commits.
func testSealWaitsForOpenTx(t *testing.T, h Harness) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	s := h.Open(t, Options{BeforeCommit: func(stream string, _ []chronicle.Event) error {
		if stream == "order-held" {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		return nil
	}})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	b := sealStore(t, s)
	ctx := context.Background()
	sl := seal.New(b, seal.Options{})

	before := mustAppend(t, b, "order-before", chronicle.NoStream, newEvents(2, "Before"))
	settle(t, b)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := b.Append(ctx, "order-held", chronicle.NoStream, newEvents(2, "Held")); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the held append's transaction did not start within 30s")
	}
	later := make(chan error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.Append(ctx, fmt.Sprintf("order-later%d", i), chronicle.NoStream, newEvents(2, "Later"))
			later <- err
		}()
	}
	if isPostgres(s) {
		// The later transactions commit while the held one is open. (On
		// SQLite they, and the seal, wait for the one writer.)
		for range 3 {
			select {
			case err := <-later:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("appends after the held one did not commit within 30s")
			}
		}
		head, err := b.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if head.Committed <= before.LastPosition {
			t.Fatalf("head %+v: the later appends are not committed", head)
		}
		// Last covers what readers cannot see yet: waiting for it waits
		// for every commit so far.
		if !head.Checkpoint.Before(head.Last) || head.Last.Position <= before.LastPosition {
			t.Fatalf("head %+v: Last does not cover the later appends", head)
		}
		sealAll(t, sl)
		latest, err := b.LatestSeal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if latest.LastCheckpoint.Position != before.LastPosition || latest.Count != 2 {
			t.Fatalf("with a transaction open, the seal covers %d events up to position %d; want the 2 before it, up to %d",
				latest.Count, latest.LastCheckpoint.Position, before.LastPosition)
		}
		// The events committed behind the open transaction are not
		// readable yet: pending, not strays, and no failure of a check of
		// the live store.
		c, err := b.Census(ctx, latest.LastCheckpoint, 10)
		if err != nil || c.Total != 8 || c.After != 0 || c.Pending != 6 || len(c.Strays) != 0 {
			t.Fatalf("Census with a transaction open = %+v, %v; want 8 events, 6 of them pending", c, err)
		}
		if rep, err := seal.Verify(ctx, b, seal.VerifyOptions{}); err != nil || rep.Events != 2 {
			t.Fatalf("Verify with a transaction open = %+v, %v; want the 2 readable events checked", rep, err)
		}
	}
	unblock()
	wg.Wait()
	settle(t, b)
	sealAll(t, sl)
	if _, unsealed := checkSealed(t, b, seal.DefaultMaxEvents); unsealed != 0 {
		t.Fatalf("%d events unsealed once the held transaction committed", unsealed)
	}
	if rep, err := seal.Verify(ctx, b, seal.VerifyOptions{}); err != nil || rep.Events != 10 {
		t.Fatalf("Verify = %+v, %v; want 10 events checked", rep, err)
	}
}

// Verify on a live store: appends and seals that commit while it reads
// are not taken for changes behind the store's back.
func testVerifyWhileAppending(t *testing.T, h Harness) {
	b := sealStore(t, h.Open(t, Options{}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sl := seal.New(b, seal.Options{Key: newKey(t), Interval: 10 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sl.Run(ctx) }()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				stream := fmt.Sprintf("order-w%d-%d", w, i%5)
				if _, err := b.Append(ctx, stream, chronicle.Any, newEvents(1+i%3, "Written")); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	checks := 0
	for ; time.Now().Before(deadline) || checks < 3; checks++ {
		if _, err := seal.Verify(ctx, b, seal.VerifyOptions{}); err != nil {
			cancel()
			wg.Wait()
			t.Fatalf("Verify of a live store, check %d: %v", checks+1, err)
		}
	}
	cancel()
	wg.Wait()
}

// Sealers racing on one store never store two seals of one seq, nor a
// seal that does not chain to the one before: the losers get
// ErrSealConflict and seal again after the winner.
func testConcurrentSealers(t *testing.T, h Harness) {
	b := sealStore(t, h.Open(t, Options{}))
	ctx := context.Background()
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		for i := range 40 {
			if _, err := b.Append(ctx, fmt.Sprintf("order-c%d", i%5), chronicle.Any, newEvents(2, "Raced")); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var sealers sync.WaitGroup
	var mu sync.Mutex
	sealed, conflicts := 0, 0
	for range 4 {
		sealers.Add(1)
		go func() {
			defer sealers.Done()
			sl := seal.New(b, seal.Options{MaxEvents: 5, Key: newKey(t)})
			for {
				select {
				case <-writing:
					return
				default:
				}
				_, ok, err := sl.SealOnce(ctx)
				mu.Lock()
				switch {
				case errors.Is(err, chronicle.ErrSealConflict):
					conflicts++
				case err != nil:
					t.Error(err)
				case ok:
					sealed++
				}
				mu.Unlock()
			}
		}()
	}
	sealers.Wait()
	if t.Failed() {
		t.FailNow()
	}
	seals, _ := checkSealed(t, b, 5)
	if len(seals) != sealed || sealed == 0 {
		t.Fatalf("%d seals stored, %d SealOnce calls reported one", len(seals), sealed)
	}
	t.Logf("%d seals, %d conflicts", sealed, conflicts)

	// Two running sealers (on PostgreSQL, one holds the lease and the
	// other waits; on SQLite both run): the log ends up sealed once.
	runCtx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	for range 2 {
		running.Add(1)
		go func() {
			defer running.Done()
			// Signed: the seals before are (ErrUnsigned otherwise).
			seal.New(b, seal.Options{Interval: 5 * time.Millisecond, LeaseInterval: 50 * time.Millisecond, Key: newKey(t)}).Run(runCtx)
		}()
	}
	for i := range 20 {
		mustAppend(t, b, fmt.Sprintf("order-r%d", i%3), chronicle.Any, newEvents(1, "Run"))
	}
	settle(t, b)
	head, err := b.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		latest, err := b.LatestSeal(ctx)
		if err == nil && !latest.LastCheckpoint.Before(head.Checkpoint) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("running sealers did not seal up to the head %+v within 30s (latest %+v, %v)", head.Checkpoint, latest.LastCheckpoint, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	running.Wait()
	if _, unsealed := checkSealed(t, b, seal.DefaultMaxEvents); unsealed != 0 {
		t.Fatalf("%d events unsealed", unsealed)
	}
}

// On PostgreSQL, of two running sealers only the lease holder seals; when
// it stops, the other takes over. (On SQLite one process owns the store:
// both seal, and AddSeal keeps the chain one.)
func testSealerTakeover(t *testing.T, h Harness) {
	s := h.Open(t, Options{})
	if !isPostgres(s) {
		t.Log("the sealing lease is PostgreSQL's: a SQLite store belongs to one process")
		return
	}
	b := sealStore(t, s)
	ctx := context.Background()
	keyA, keyB := newKey(t), newKey(t)
	idA, idB := audit.KeyID(keyA.Public().(ed25519.PublicKey)), audit.KeyID(keyB.Public().(ed25519.PublicKey))
	run := func(key ed25519.PrivateKey) (stop func()) {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			seal.New(b, seal.Options{Interval: 5 * time.Millisecond, LeaseInterval: time.Second, Key: key,
				Logger: slog.New(slog.NewTextHandler(tlog{t}, nil)).With("key", audit.KeyID(key.Public().(ed25519.PublicKey)))}).Run(runCtx)
		}()
		return func() { cancel(); <-done }
	}
	// sealedBy appends and waits until a seal covers it; it returns who
	// signed the seals made meanwhile.
	sealedBy := func(round int) map[string]bool {
		before, _ := b.LatestSeal(ctx)
		for i := range 5 {
			mustAppend(t, b, fmt.Sprintf("order-t%d", i), chronicle.Any, newEvents(1, "Taken"))
		}
		settle(t, b)
		head, err := b.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			latest, err := b.LatestSeal(ctx)
			if err == nil && !latest.LastCheckpoint.Before(head.Checkpoint) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no sealer sealed up to the head within 30s", round)
			}
			time.Sleep(5 * time.Millisecond)
		}
		seals, err := b.Seals(ctx, before.Seq, 0)
		if err != nil {
			t.Fatal(err)
		}
		by := map[string]bool{}
		for _, s := range seals {
			by[s.KeyID] = true
		}
		return by
	}
	stopA := run(keyA)
	if by := sealedBy(1); !by[idA] || len(by) != 1 {
		t.Fatalf("round 1, sealer A alone: seals signed by %v", by)
	}
	stopB := run(keyB)
	defer stopB()
	for round := 2; round <= 4; round++ {
		if by := sealedBy(round); !by[idA] || len(by) != 1 {
			t.Fatalf("round %d, A holding the lease and B waiting: seals signed by %v, want A only", round, by)
		}
	}
	stopA()
	if by := sealedBy(5); !by[idB] || len(by) != 1 {
		t.Fatalf("round 5, A gone: seals signed by %v, want B only", by)
	}
	if _, unsealed := checkSealed(t, b, seal.DefaultMaxEvents); unsealed != 0 {
		t.Fatalf("%d events unsealed", unsealed)
	}
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
