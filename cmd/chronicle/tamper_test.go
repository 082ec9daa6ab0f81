package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/projection"
	"github.com/chronicle-es/chronicle/seal"
)

// rawDB is the store's database as its superuser sees it, with chronicle's
// guards (the triggers that refuse updates and deletes) out of the way.
type rawDB struct {
	exec  func(q string, args ...any) error
	query func(q string, args ...any) (*sql.Rows, error) // SQLite only
	pg    bool
	close func()
}

func openRaw(t *testing.T, storeURL string) rawDB {
	t.Helper()
	ctx := context.Background()
	loc, err := storeurl.Parse(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(storeURL, "postgres") {
		u, _ := url.Parse(storeURL)
		q := u.Query()
		schema := q.Get("schema")
		q.Del("schema")
		u.RawQuery = q.Encode()
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		// replica: no trigger fires, chronicle's guards included.
		if _, err := conn.Exec(ctx, "SET search_path = "+pgx.Identifier{schema}.Sanitize()+"; SET session_replication_role = replica"); err != nil {
			t.Fatal(err)
		}
		return rawDB{
			exec:  func(q string, args ...any) error { _, err := conn.Exec(ctx, q, args...); return err },
			pg:    true,
			close: func() { conn.Close(ctx) },
		}
	}
	driver := "sqlite"
	if !slices.Contains(sql.Drivers(), driver) {
		driver = "sqlite3"
	}
	db, err := sql.Open(driver, "file:"+loc.Path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		t.Fatal(err)
	}
	var triggers []string
	for rows.Next() {
		var name string
		rows.Scan(&name)
		triggers = append(triggers, name)
	}
	rows.Close()
	for _, name := range triggers {
		if _, err := db.Exec("DROP TRIGGER " + name); err != nil {
			t.Fatal(err)
		}
	}
	return rawDB{
		exec:  func(q string, args ...any) error { _, err := db.Exec(projection.SQLite.Rebind(q), args...); return err },
		query: func(q string, args ...any) (*sql.Rows, error) { return db.Query(projection.SQLite.Rebind(q), args...) },
		close: func() { db.Close() },
	}
}

// sealedLog is a store of 4 orders with 4 events each, appended in 4
// rounds (one event per order) and sealed after each round: seal r covers
// round r.
type sealedLog struct {
	url    string
	key    ed25519.PrivateKey
	events map[string][]chronicle.RecordedEvent // by order id, version order
	seals  []chronicle.Seal
}

func (l sealedLog) ev(order string, version int64) chronicle.RecordedEvent {
	return l.events[order][version-1]
}

func newSealedLog(t *testing.T, storeURL string) sealedLog {
	t.Helper()
	ctx := context.Background()
	s, err := storeurl.OpenURL(ctx, storeURL, storeurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	sl := seal.New(s, seal.Options{Key: key})
	for r := 1; r <= 4; r++ {
		var last int64
		for o := range 4 {
			data := fmt.Sprintf(`{"order":"o%d","round":%d}`, o, r)
			res, err := s.Append(ctx, fmt.Sprintf("order-o%d", o), chronicle.Any, []chronicle.Event{{Type: "Tested", Data: json.RawMessage(data)}})
			if err != nil {
				t.Fatal(err)
			}
			last = res.LastPosition
		}
		// On PostgreSQL another session's open transaction may hold the
		// round's events back from readers (and the sealer) for a moment.
		deadline := time.Now().Add(30 * time.Second)
		for {
			head, err := s.Head(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if head.Position >= last {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: events not readable within 30s", r)
			}
			time.Sleep(5 * time.Millisecond)
		}
		seal, ok, err := sl.SealOnce(ctx)
		if err != nil || !ok || seal.Count != 4 || seal.Seq != int64(r) {
			t.Fatalf("round %d: seal %d of %d events (%v, %v), want seal %d of the round's 4 events", r, seal.Seq, seal.Count, ok, err, r)
		}
	}
	l := sealedLog{url: storeURL, key: key, events: map[string][]chronicle.RecordedEvent{}}
	for o := range 4 {
		id := fmt.Sprintf("o%d", o)
		if l.events[id], err = s.ReadStream(ctx, "order-"+id, chronicle.ReadStreamOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if l.seals, err = s.Seals(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	return l
}

func where(e chronicle.RecordedEvent) string {
	return fmt.Sprintf("position %d (%s v%d)", e.Position, e.StreamID, e.Version)
}

// TestTamper changes a sealed store behind chronicle's back, as the
// database superuser with its guards out of the way, in every way API.md
// lists; chronicle verify --integrity finds each change and names it by
// position, stream and version, or by seal seq.
func TestTamper(t *testing.T) {
	backends := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", tempStore},
		{"postgres", pgStoreURL},
	}
	type tamper struct {
		name string
		// do changes the store and returns what verify must say.
		do     func(t *testing.T, db rawDB, l sealedLog) string
		anchor bool // verify with the last seal as anchor
		// pin, when set, gives verify --public-key the key it returns.
		pin func(l sealedLog) ed25519.PublicKey
	}
	sealer := func(l sealedLog) ed25519.PublicKey { return l.key.Public().(ed25519.PublicKey) }
	otherKey := func(sealedLog) ed25519.PublicKey { pub, _, _ := ed25519.GenerateKey(rand.Reader); return pub }
	tampers := []tamper{
		{name: "untouched", do: func(t *testing.T, db rawDB, l sealedLog) string { return "" }},
		{name: "untouched, anchored", anchor: true, do: func(t *testing.T, db rawDB, l sealedLog) string { return "" }},
		{name: "one byte of data", do: func(t *testing.T, db rawDB, l sealedLog) string {
			e := l.ev("o1", 2)
			mustRaw(t, db.exec(`UPDATE events SET data = $1 WHERE event_id = $2`, `{"order":"o1","round":3}`, e.ID))
			return where(e) + ": hash does not match"
		}},
		{name: "type", do: func(t *testing.T, db rawDB, l sealedLog) string {
			e := l.ev("o2", 3)
			mustRaw(t, db.exec(`UPDATE events SET event_type = 'Forged' WHERE event_id = $1`, e.ID))
			return where(e) + ": hash does not match"
		}},
		{name: "recorded_at", do: func(t *testing.T, db rawDB, l sealedLog) string {
			e := l.ev("o0", 2)
			if db.pg {
				mustRaw(t, db.exec(`UPDATE events SET recorded_at = recorded_at + interval '1 second' WHERE event_id = $1`, e.ID))
			} else {
				mustRaw(t, db.exec(`UPDATE events SET recorded_at = recorded_at + 1000000 WHERE event_id = $1`, e.ID))
			}
			return where(e) + ": hash does not match"
		}},
		{name: "event deleted mid-stream", do: func(t *testing.T, db rawDB, l sealedLog) string {
			mustRaw(t, db.exec(`DELETE FROM events WHERE event_id = $1`, l.ev("o3", 2).ID))
			return where(l.ev("o3", 3)) + ": follows version 1 of its stream: version 2 is missing"
		}},
		{name: "whole stream deleted", do: func(t *testing.T, db rawDB, l sealedLog) string {
			mustRaw(t, db.exec(`DELETE FROM events WHERE stream_id = 'order-o2'`))
			return "seal 1: its 4 events end at " + where(l.ev("o0", 2))
		}},
		{name: "forged event inserted with its stream chain recomputed", do: func(t *testing.T, db rawDB, l sealedLog) string {
			forgeInsert(t, db, l)
			return "seal 2: " // its range (PostgreSQL) or its root (SQLite, where positions moved up) no longer holds
		}},
		{name: "row the log never reads inserted after a stream's end", do: func(t *testing.T, db rawDB, l sealedLog) string {
			// SQLite reads positions above 0; PostgreSQL never reaches a
			// tx_id no transaction has had yet.
			return where(insertStray(t, db, l, -1, 1<<40)) + ": is not in the global log's order"
		}},
		{name: "row the log never reads inserted, anchored", anchor: true, do: func(t *testing.T, db rawDB, l sealedLog) string {
			// Before the zero checkpoint, where the log's reader starts.
			return where(insertStray(t, db, l, -2, 0)) + ": is not in the global log's order"
		}},
		{name: "two events' contents swapped", do: func(t *testing.T, db rawDB, l sealedLog) string {
			a, b := l.ev("o0", 1), l.ev("o1", 1)
			mustRaw(t, db.exec(`UPDATE events SET data = $1 WHERE event_id = $2`, string(b.Data), a.ID))
			mustRaw(t, db.exec(`UPDATE events SET data = $1 WHERE event_id = $2`, string(a.Data), b.ID))
			return where(a) + ": hash does not match"
		}},
		{name: "seal edited", do: func(t *testing.T, db rawDB, l sealedLog) string {
			mustRaw(t, db.exec(`UPDATE seals SET count = 3 WHERE seq = 2`))
			return "seal 2: seal_hash does not match"
		}},
		{name: "signatures removed", do: func(t *testing.T, db rawDB, l sealedLog) string {
			mustRaw(t, db.exec(`UPDATE seals SET key_id = NULL, signature = NULL`))
			return "seal 1: is not signed: the store lists key " + l.seals[0].KeyID + " as first signing seal 1, but no seal is signed by it"
		}},
		{name: "signatures of the last seals removed", do: func(t *testing.T, db rawDB, l sealedLog) string {
			mustRaw(t, db.exec(`UPDATE seals SET key_id = NULL, signature = NULL WHERE seq >= 3`))
			return "seal 3: is not signed, but seal 1 before it is"
		}},
		{name: "untouched, key pinned", pin: sealer, do: func(t *testing.T, db rawDB, l sealedLog) string { return "" }},
		{name: "signed by another key than the pinned one", pin: otherKey, do: func(t *testing.T, db rawDB, l sealedLog) string {
			return "seal 1: signed by key \"" + l.seals[0].KeyID + "\", not by the given public key"
		}},
		{name: "signatures removed, key pinned", pin: sealer, do: func(t *testing.T, db rawDB, l sealedLog) string {
			mustRaw(t, db.exec(`UPDATE seals SET key_id = NULL, signature = NULL`))
			mustRaw(t, db.exec(`DELETE FROM seal_keys`))
			return "seal 1: is not signed, and a public key was given"
		}},
		{name: "last seals deleted, no anchor", do: func(t *testing.T, db rawDB, l sealedLog) string {
			deleteLastSeals(t, db, l)
			return "" // not seen: what an anchor is for
		}},
		{name: "last seals deleted, anchored", anchor: true, do: func(t *testing.T, db rawDB, l sealedLog) string {
			deleteLastSeals(t, db, l)
			return "the anchor " + audit.Hash(l.seals[3].SealHash).String() + " is not the seal_hash of any of the store's 2 seals"
		}},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			for _, tc := range tampers {
				t.Run(tc.name, func(t *testing.T) {
					l := newSealedLog(t, be.url(t))
					db := openRaw(t, l.url)
					want := tc.do(t, db, l)
					db.close()
					args := []string{"verify", "--integrity", "--store", l.url}
					if tc.anchor {
						args = append(args, "--anchor", audit.Hash(l.seals[3].SealHash).String())
					}
					if tc.pin != nil {
						args = append(args, "--public-key", audit.EncodePublicKey(tc.pin(l)))
					}
					stdout, stderr, code := newCLI(t, keyEnv(t)).run(args...)
					switch {
					case want == "" && code != 0:
						t.Fatalf("exit %d, want 0\n%s%s", code, stdout, stderr)
					case want != "" && (code != 1 || !strings.Contains(stderr, want)):
						t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr, want)
					}
					t.Logf("exit %d: %s%s", code, stdout, stderr)
				})
			}
		})
	}
}

func mustRaw(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// deleteLastSeals removes seals 3 and 4 with the events they cover (rounds
// 3 and 4: the last two versions of each order, so every chain still holds).
func deleteLastSeals(t *testing.T, db rawDB, l sealedLog) {
	t.Helper()
	mustRaw(t, db.exec(`DELETE FROM seals WHERE seq >= 3`))
	mustRaw(t, db.exec(`DELETE FROM events WHERE version >= 3`))
}

// forgeInsert puts a forged event after o1 v2, in the log and in its
// stream (inside seal 2's range): the stream's later events move up a
// version and the stream's chain is hashed again, so that every stream
// chain holds.
func forgeInsert(t *testing.T, db rawDB, l sealedLog) {
	t.Helper()
	after := l.ev("o1", 2)
	forged := chronicle.RecordedEvent{
		StreamID: after.StreamID, StreamType: after.StreamType, Version: 3, ID: chronicle.NewEventID(),
		Type: "Refunded", SchemaVersion: 1, Data: json.RawMessage(`{"amount":1000000}`),
		RecordedAt: after.RecordedAt.Add(time.Millisecond),
	}
	// The stream as the forger wants it: v1, v2, the forged v3, then the
	// old v3 and v4 as v4 and v5, each hashed and chained again.
	chain := []chronicle.RecordedEvent{l.ev("o1", 1), after, forged, l.ev("o1", 3), l.ev("o1", 4)}
	for i := 2; i < len(chain); i++ {
		chain[i].Version = int64(i + 1)
		chain[i].PrevHash = chain[i-1].Hash
		h, err := audit.HashEvent(audit.FromRecorded(chain[i], chain[i].PrevHash))
		if err != nil {
			t.Fatal(err)
		}
		chain[i].Hash = h
	}
	mustRaw(t, db.exec(`UPDATE events SET version = version + 1000 WHERE stream_id = 'order-o1' AND version >= 3`))
	for _, e := range chain[3:] {
		mustRaw(t, db.exec(`UPDATE events SET version = $1, hash = $2, prev_hash = $3 WHERE event_id = $4`,
			e.Version, e.Hash[:], e.PrevHash[:], e.ID))
	}
	f := chain[2]
	if db.pg {
		// Read order is (tx_id, position): the forged row takes o1 v2's
		// transaction, after it.
		mustRaw(t, db.exec(`INSERT INTO events (position, tx_id, stream_id, stream_type, version, event_id, event_type,
	schema_version, data, metadata, recorded_at, hash, prev_hash)
OVERRIDING SYSTEM VALUE
VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $12)`,
			after.Position+1000000, fmt.Sprint(after.TxID), f.StreamID, f.StreamType, f.Version, f.ID, f.Type,
			f.SchemaVersion, string(f.Data), f.RecordedAt, f.Hash[:], f.PrevHash[:]))
		return
	}
	// SQLite reads in position order: make room after o1 v2.
	mustRaw(t, db.exec(`UPDATE events SET position = -position WHERE position > $1`, after.Position))
	mustRaw(t, db.exec(`UPDATE events SET position = 1 - position WHERE position < 0`))
	mustRaw(t, db.exec(`INSERT INTO events (position, event_id, stream_id, stream_type, version, event_type,
	schema_version, data, metadata, recorded_at, hash, prev_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $11)`,
		after.Position+1, f.ID, f.StreamID, f.StreamType, f.Version, f.Type, f.SchemaVersion, string(f.Data),
		f.RecordedAt.UnixMicro(), f.Hash[:], f.PrevHash[:]))
}

// insertStray inserts, with a plain INSERT, an event after o1's last one,
// chained to it and correctly hashed, at a position (and, on PostgreSQL,
// tx_id) that the log's reader never returns, while stream reads do.
func insertStray(t *testing.T, db rawDB, l sealedLog, position int64, txID uint64) chronicle.RecordedEvent {
	t.Helper()
	last := l.ev("o1", 4)
	e := chronicle.RecordedEvent{
		Position: position, StreamID: last.StreamID, StreamType: last.StreamType, Version: 5, ID: chronicle.NewEventID(),
		Type: "Refunded", SchemaVersion: 1, Data: json.RawMessage(`{"amount":1000000}`),
		RecordedAt: last.RecordedAt.Add(time.Millisecond), PrevHash: last.Hash,
	}
	h, err := audit.HashEvent(audit.FromRecorded(e, e.PrevHash))
	if err != nil {
		t.Fatal(err)
	}
	e.Hash = h
	if db.pg {
		mustRaw(t, db.exec(`INSERT INTO events (position, tx_id, stream_id, stream_type, version, event_id, event_type,
	schema_version, data, metadata, recorded_at, hash, prev_hash)
OVERRIDING SYSTEM VALUE
VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $12)`,
			e.Position, fmt.Sprint(txID), e.StreamID, e.StreamType, e.Version, e.ID, e.Type,
			e.SchemaVersion, string(e.Data), e.RecordedAt, e.Hash[:], e.PrevHash[:]))
		return e
	}
	mustRaw(t, db.exec(`INSERT INTO events (position, event_id, stream_id, stream_type, version, event_type,
	schema_version, data, metadata, recorded_at, hash, prev_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $11)`,
		e.Position, e.ID, e.StreamID, e.StreamType, e.Version, e.Type, e.SchemaVersion, string(e.Data),
		e.RecordedAt.UnixMicro(), e.Hash[:], e.PrevHash[:]))
	return e
}
