package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/personal"
	"github.com/chronicle-es/chronicle/seal"
)

// fillStore appends n events (streams of 40, some with metadata, some of
// schema version 1, bytes an encoder would change), data keys of a few
// customers with one erased, and a snapshot per tenth stream.
func fillStore(t *testing.T, url, keyFile string, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := storeurl.OpenURL(ctx, url, storeurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	master, err := personal.ReadMasterKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := personal.NewKeyring(ctx, s, master)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := keys.CreateKey(ctx, fmt.Sprintf("cust_%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := keys.Erase(ctx, "cust_3"); err != nil {
		t.Fatal(err)
	}
	const per = 40
	for i := 0; i*per < n; i++ {
		stream := fmt.Sprintf("load-%05d", i)
		evs := make([]chronicle.Event, min(per, n-i*per))
		for j := range evs {
			evs[j] = chronicle.Event{Type: "Loaded", SchemaVersion: 1 + j%2,
				Data: json.RawMessage(fmt.Sprintf(`{"z": %d,  "a":"\u00e9 %d"}`, j, i))}
			if j%3 == 0 {
				evs[j].Metadata = json.RawMessage(fmt.Sprintf(`{"actor":"load",  "request_id":"r%d"}`, i))
			}
		}
		if _, err := s.Append(ctx, stream, chronicle.NoStream, evs); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := s.SaveSnapshot(ctx, chronicle.Snapshot{StreamID: stream, Version: int64(len(evs)), SchemaVersion: 1, Data: json.RawMessage(`{"n": 1}`)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// sameStores fails unless dst holds every event of src in the same order
// with the same stored fields, and the same snapshots and data keys.
func sameStores(t *testing.T, srcURL, dstURL string) {
	t.Helper()
	ctx := context.Background()
	open := func(url string) storeurl.Store {
		s, err := storeurl.OpenURL(ctx, url, storeurl.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	src, dst := open(srcURL), open(dstURL)
	var sf, df chronicle.Checkpoint
	n := 0
	for {
		se, err := src.ReadAll(ctx, sf, chronicle.ReadAllOptions{Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		de, err := dst.ReadAll(ctx, df, chronicle.ReadAllOptions{Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if len(se) != len(de) {
			t.Fatalf("after %d events: the source reads %d more, the target %d", n, len(se), len(de))
		}
		if len(se) == 0 {
			break
		}
		for i := range se {
			if why := storedDiff(se[i], de[i]); why != "" {
				t.Fatalf("event %d: %s differs:\nsource %+v\ntarget %+v", n+i+1, why, se[i], de[i])
			}
		}
		n += len(se)
		sf, df = se[len(se)-1].Checkpoint(), de[len(de)-1].Checkpoint()
	}
	if total, err := src.CountEvents(ctx); err != nil || int64(n) != total {
		t.Fatalf("compared %d events, the source holds %d (%v)", n, total, err)
	}
	ss, err := src.ListSnapshots(ctx, "", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dst.ListSnapshots(ctx, "", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) == 0 || fmt.Sprint(ss) != fmt.Sprint(ds) {
		t.Fatalf("snapshots:\nsource %v\ntarget %v", ss, ds)
	}
	sk, err := src.ListDataKeys(ctx, "", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := dst.ListDataKeys(ctx, "", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(sk) == 0 || fmt.Sprint(sk) != fmt.Sprint(dk) {
		t.Fatalf("data keys:\nsource %v\ntarget %v", sk, dk)
	}
}

// TestCopyResumesAfterKill kills a real 'chronicle copy' with SIGKILL
// three times mid-copy; each run goes on from where the last stopped, and
// the last one completes the copy: every event, snapshot and data key the
// same.
func TestCopyResumesAfterKill(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range []struct {
		name     string
		src, dst func(t *testing.T) string
	}{
		{"sqlite_to_postgres", tempStore, pgStoreURL},
		{"postgres_to_sqlite", pgStoreURL, tempStore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst, keyFile := tc.src(t), tc.dst(t), masterKeyFile(t)
			const total = 60_000
			fillStore(t, src, keyFile, total)
			target, err := storeurl.OpenURL(context.Background(), dst, storeurl.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer target.Close()
			last := int64(0)
			for _, at := range []int64{total / 10, total * 4 / 10, total * 7 / 10} {
				cmd := exec.Command(bin, "copy", "--from", src, "--to", dst, "--master-key", keyFile, "--batch", "1000")
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				exited := make(chan error, 1)
				go func() { exited <- cmd.Wait() }()
				deadline := time.Now().Add(2 * time.Minute)
				for {
					n, err := target.CountEvents(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if n >= at {
						break
					}
					select {
					case err := <-exited:
						t.Fatalf("copy ended (%v) before it was killed, at %d events:\n%s", err, n, out.String())
					case <-time.After(2 * time.Millisecond):
					}
					if time.Now().After(deadline) {
						t.Fatalf("the target did not reach %d events in 2 minutes (%d)", at, n)
					}
				}
				_ = cmd.Process.Signal(syscall.SIGKILL)
				if err := <-exited; err == nil {
					t.Fatalf("copy ended well before the kill reached it: the test did not interrupt it\n%s", out.String())
				}
				n, err := target.CountEvents(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if n < last || n >= total {
					t.Fatalf("after kill: %d events on the target (before: %d, total %d)", n, last, total)
				}
				if last > 0 && !strings.Contains(out.String(), fmt.Sprintf("holds the first %d of %d events already: resuming", last, total)) {
					t.Fatalf("the run after a kill at %d events did not resume from there:\n%s", last, out.String())
				}
				t.Logf("killed at %d events", n)
				last = n
			}
			stdout, stderr, code := newCLI(t, nil).run("copy", "--from", src, "--to", dst, "--master-key", keyFile)
			if code != 0 || !strings.Contains(stdout, fmt.Sprintf(": %d events (%d in this run", total, total-last)) || !strings.Contains(stdout, "verify ok; verify --integrity ok") {
				t.Fatalf("last copy: exit %d:\n%s%s", code, stdout, stderr)
			}
			sameStores(t, src, dst)
		})
	}
}

// TestCopyRefuses: a target holding other events, or a copy that went its
// own way, is refused with exit 1 and nothing written to it.
func TestCopyRefuses(t *testing.T) {
	dir := t.TempDir()
	keyFile := masterKeyFile(t)
	src := "sqlite://" + filepath.Join(dir, "src", "c.db")
	fillStore(t, src, keyFile, 200)
	c := newCLI(t, nil)
	count := func(url string) (int64, int) {
		s, err := storeurl.OpenURL(context.Background(), url, storeurl.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		n, err := s.CountEvents(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		keys, err := s.ListDataKeys(context.Background(), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		return n, len(keys)
	}

	unrelated := "sqlite://" + filepath.Join(dir, "other", "c.db")
	appendRaw(t, unrelated, "o1", ev("OrderCreated", 2, `{"customer_id":"c","items":[]}`))
	// A copy that then took an append of its own: longer than the source.
	diverged := "sqlite://" + filepath.Join(dir, "diverged", "c.db")
	if _, stderr, code := c.run("copy", "--from", src, "--to", diverged, "--master-key", keyFile); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	appendRaw(t, diverged, "o2", ev("OrderCreated", 2, `{"customer_id":"c","items":[]}`))
	// A partial copy that its own sealer has sealed since: the source goes
	// on, with seals of its own or none.
	sealed := "sqlite://" + filepath.Join(dir, "sealed", "c.db")
	if _, stderr, code := c.run("copy", "--from", src, "--to", sealed, "--master-key", keyFile); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	ss, err := storeurl.OpenURL(context.Background(), sealed, storeurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := seal.New(ss, seal.Options{MaxEvents: 50}).SealOnce(context.Background()); err != nil || !ok {
		t.Fatalf("SealOnce on the target: %v, %v", ok, err)
	}
	ss.Close()
	appendRaw(t, src, "o3", ev("OrderCreated", 2, `{"customer_id":"c","items":[]}`))

	for name, dst := range map[string]string{"unrelated": unrelated, "diverged": diverged, "sealed": sealed} {
		n, keys := count(dst)
		_, stderr, code := c.run("copy", "--from", src, "--to", dst, "--master-key", keyFile)
		if code != 1 || !strings.Contains(stderr, "refused") {
			t.Errorf("%s target: exit %d, want 1 and refused: %s", name, code, stderr)
		}
		if n2, keys2 := count(dst); n2 != n || keys2 != keys {
			t.Errorf("%s target: %d events and %d data keys after the refusal, %d and %d before", name, n2, keys2, n, keys)
		}
	}

	// The same source copied again into its complete copy: nothing to do.
	done := "sqlite://" + filepath.Join(dir, "done", "c.db")
	for range 2 {
		stdout, stderr, code := c.run("copy", "--from", src, "--to", done, "--master-key", keyFile)
		if code != 0 || !strings.Contains(stdout, "verify ok; verify --integrity ok") {
			t.Fatalf("copy: exit %d: %s%s", code, stdout, stderr)
		}
	}
	sameStores(t, src, done)
}

// Positions and checkpoints are each store's own (and request ids each
// request's); everything else a view shows must be the same on the copy.
var ownPlace = regexp.MustCompile(`"(position|checkpoint|next|request_id)":("[^"]*"|\d+)`)

// orderViews returns what serve answers about order id: its state, its
// timeline in JSON and text, its state at every version and at times.
func orderViews(t *testing.T, base, id string, times []time.Time) map[string]string {
	t.Helper()
	out := map[string]string{
		"state":  mustCall(t, "GET", base+"/orders/"+id, ""),
		"events": mustCall(t, "GET", base+"/orders/"+id+"/events", ""),
		"text":   mustCall(t, "GET", base+"/orders/"+id+"/events?format=text", ""),
	}
	var st struct{ Version int }
	if err := json.Unmarshal([]byte(out["state"]), &st); err != nil || st.Version < 1 {
		t.Fatalf("state of %s: %s", id, out["state"])
	}
	for v := 1; v <= st.Version; v++ {
		out[fmt.Sprintf("version=%d", v)] = mustCall(t, "GET", fmt.Sprintf("%s/orders/%s?version=%d", base, id, v), "")
	}
	for i, at := range times {
		code, body := call(t, "GET", base+"/orders/"+id+"?as_of="+at.UTC().Format(time.RFC3339Nano), "")
		out[fmt.Sprintf("as_of[%d]", i)] = fmt.Sprint(code, " ", body)
	}
	return out
}

// caughtUp waits until serve's read models have applied the whole log.
func caughtUp(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var p struct {
			Projections []struct {
				Name         string `json:"name"`
				LagEvents    int64  `json:"lag_events"`
				HeadPosition int64  `json:"head_position"`
				Status       string `json:"status"`
			} `json:"projections"`
		}
		body := mustCall(t, "GET", base+"/projections", "")
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		ok := len(p.Projections) > 0
		for _, pr := range p.Projections {
			ok = ok && pr.LagEvents == 0 && pr.HeadPosition > 0 && pr.Status == "running"
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("read models not caught up in 60s: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveViews returns every view serve offers of the given orders, and the
// lists and status counts.
func serveViews(t *testing.T, base string, ids []string, times []time.Time) map[string]string {
	t.Helper()
	caughtUp(t, base)
	out := map[string]string{
		"list":      mustCall(t, "GET", base+"/orders?limit=100", ""),
		"list_page": mustCall(t, "GET", base+"/orders?limit=2", ""),
		"customer":  mustCall(t, "GET", base+"/orders?customer_id=cust_keep", ""),
		"feed":      mustCall(t, "GET", base+"/events?limit=1000", ""),
	}
	for _, s := range []string{"created", "paid", "shipped", "delivered", "cancelled"} {
		out["status="+s] = mustCall(t, "GET", base+"/orders?status="+s, "")
	}
	for i, at := range times {
		out[fmt.Sprintf("stats[%d]", i)] = mustCall(t, "GET", base+"/stats/order-status?at="+at.UTC().Format(time.RFC3339Nano), "")
	}
	for _, id := range ids {
		for k, v := range orderViews(t, base, id, times) {
			out[id+" "+k] = v
		}
	}
	for k, v := range out {
		out[k] = ownPlace.ReplaceAllString(v, `"$1":_`)
	}
	return out
}

// TestCopyServesTheSame: after a copy, serve on the target answers every
// order (state, timeline, time travel by version and time), the lists and
// the status counts exactly as serve on the source did; the erased
// customer stays erased, the others' personal data reads in the clear.
func TestCopyServesTheSame(t *testing.T) {
	pgSchema := func(t *testing.T) string { return pgStoreURL(t) }
	for _, tc := range []struct {
		name     string
		src, dst func(t *testing.T) string
	}{
		{"sqlite_to_postgres", tempStore, pgSchema},
		{"postgres_to_sqlite", pgSchema, tempStore},
		{"postgres_to_postgres", pgSchema, pgSchema},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keyFile := masterKeyFile(t)
			src, dst := tc.src(t), tc.dst(t)
			env := map[string]string{"CHRONICLE_STORE": src, envMasterKey: keyFile}
			base := startInProcess(t, env)

			// Every status; an order over 50 events (a snapshot) with
			// personal data, delivered; one of an erased customer.
			placeOrder(t, base, "o-delivered", "cust_keep")
			placeOrder(t, base, "o-erased", "cust_er")
			t1 := time.Now()
			mustCall(t, "POST", base+"/orders", `{"order_id":"o-created","customer_id":"cust_keep","items":[{"sku":"A","quantity":2,"unit_price":250}]}`)
			mustCall(t, "POST", base+"/orders", `{"order_id":"o-paid","customer_id":"cust_keep","items":[{"sku":"A","quantity":1,"unit_price":100}]}`)
			mustCall(t, "POST", base+"/orders/o-paid/payments", `{"method":"card","amount":100}`)
			mustCall(t, "POST", base+"/orders", `{"order_id":"o-shipped","customer_id":"cust_other","items":[{"sku":"B","quantity":1,"unit_price":300}]}`)
			mustCall(t, "PUT", base+"/orders/o-shipped/shipping-address", `{"name":"Ola Other","line1":"1 Lane","city":"Utrecht","postal_code":"3511","country":"NL"}`)
			mustCall(t, "POST", base+"/orders/o-shipped/payments", `{"method":"card","amount":300}`)
			mustCall(t, "POST", base+"/orders/o-shipped/shipments", `{"carrier":"ups","tracking":"U1"}`)
			mustCall(t, "POST", base+"/orders", `{"order_id":"o-cancelled","customer_id":"cust_other","items":[]}`)
			mustCall(t, "POST", base+"/orders/o-cancelled/cancellation", `{"reason":"changed mind"}`)
			// Schema version 1 events, upcast on read.
			appendRaw(t, src, "o-v1",
				ev("OrderCreated", 1, `{"customer_id":"cust_v1","total":9999}`),
				ev("PaymentReceived", 1, `{"method":"card","amount":9999}`),
				ev("OrderShipped", 1, `{"carrier":"fedex","tracking":"FX123"}`))
			mustCall(t, "DELETE", base+"/customers/cust_er/personal-data", "")
			t2 := time.Now()
			ids := []string{"o-delivered", "o-erased", "o-created", "o-paid", "o-shipped", "o-cancelled", "o-v1"}
			times := []time.Time{t1.Add(-time.Hour), t1, t2}
			want := serveViews(t, base, ids, times)

			stdout, stderr, code := newCLI(t, nil).run("copy", "--from", src, "--to", dst, "--master-key", keyFile)
			if code != 0 || !strings.Contains(stdout, "verify ok; verify --integrity ok") || strings.Contains(stdout, " 0 snapshots") {
				t.Fatalf("copy: exit %d:\n%s%s", code, stdout, stderr)
			}
			got := serveViews(t, startInProcess(t, map[string]string{"CHRONICLE_STORE": dst, envMasterKey: keyFile}), ids, times)
			if len(got) != len(want) {
				t.Fatalf("%d views on the target, %d on the source", len(got), len(want))
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s on the target:\n%.2000s\nsource:\n%.2000s", k, got[k], w)
				}
			}
			if s := got["o-delivered state"]; !strings.Contains(s, erName) || !strings.Contains(s, erSigned) {
				t.Errorf("personal data not in the clear on the target: %s", s)
			}
			for _, k := range []string{"o-erased state", "o-erased events", "o-erased text", "o-erased version=55"} {
				if s := got[k]; strings.Contains(s, erName) || strings.Contains(s, erSigned) || !strings.Contains(s, personal.Erased) {
					t.Errorf("%s: the erased customer is not erased on the target: %s", k, s)
				}
			}
			if s := got["stats[2]"]; !strings.Contains(s, `"cancelled":1`) || !strings.Contains(s, `"delivered":2`) {
				t.Errorf("status counts: %s", s)
			}
		})
	}
}
