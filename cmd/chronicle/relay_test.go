package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/internal/freeport"
	"github.com/chronicle-es/chronicle/internal/natstest"
	"github.com/chronicle-es/chronicle/personal"
	"github.com/chronicle-es/chronicle/relay"
)

func TestRelayUsageErrors(t *testing.T) {
	c := newCLI(t, nil)
	store := tempStore(t)
	for _, args := range [][]string{
		{"relay", "--store", store},
		{"relay", "--nats", "http://127.0.0.1:4222", "--store", store},
		{"relay", "--nats", "nats://", "--store", store},
		{"relay", "--nats", "nats://127.0.0.1:99999", "--store", store},
		{"relay", "--nats", "nats://127.0.0.1", "--store", store},
		{"relay", "--nats", "nats://127.0.0.1:", "--store", store},
		{"relay", "--nats", "nats://127.0.0.1:4222", "--subject-prefix", "a..b", "--store", store},
		{"relay", "--nats", "nats://127.0.0.1:4222", "--subject-prefix", "orders.>", "--store", store},
		{"relay", "--nats", "nats://127.0.0.1:4222", "--metrics-addr", "nonsense", "--store", store},
		{"relay", "extra", "--nats", "nats://127.0.0.1:4222", "--store", store},
		{"serve", "--relay-nats", "127.0.0.1:4222", "--store", store},
		{"serve", "--relay-nats", "nats://127.0.0.1:4222", "--relay-subject-prefix", "a b", "--store", store},
		{"serve", "--relay-subject-prefix", "x", "--store", store},
		{"relay", "--nats", "http://u:s3cret-pw@127.0.0.1:4222", "--store", store},
	} {
		_, stderr, code := c.run(args...)
		if code != 2 || stderr == "" {
			t.Errorf("chronicle %s: exit %d, stderr %q; want 2 and a message", strings.Join(args, " "), code, stderr)
		}
		if strings.Contains(stderr, "s3cret-pw") {
			t.Errorf("chronicle %s: the password is in stderr: %q", strings.Join(args, " "), stderr)
		}
	}
}

// getJSON decodes the JSON body of GET url into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// relayStatus waits until GET /projections shows relay_nats caught up
// with n events.
func waitRelayed(t *testing.T, base string, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var body struct {
			Projections []struct {
				Name         string `json:"name"`
				Position     int64  `json:"position"`
				HeadPosition int64  `json:"head_position"`
				LagEvents    int64  `json:"lag_events"`
			} `json:"projections"`
		}
		getJSON(t, base+"/projections", &body)
		for _, p := range body.Projections {
			if p.Name == relay.Name && p.LagEvents == 0 && p.HeadPosition >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay_nats not caught up with %d events: %+v", n, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// feedEvents returns the raw JSON of every event of GET /events.
func feedEvents(t *testing.T, base string) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	after := ""
	for {
		var page struct {
			Events []json.RawMessage `json:"events"`
			Next   string            `json:"next"`
		}
		url := base + "/events?limit=1000"
		if after != "" {
			url += "&after=" + after
		}
		getJSON(t, url, &page)
		if len(page.Events) == 0 {
			return all
		}
		all = append(all, page.Events...)
		after = page.Next
	}
}

// TestServeRelaysToNATS: serve --relay-nats publishes every event with
// exactly the JSON of GET /events as body, and shows the relay in GET
// /projections and /metrics.
func TestServeRelaysToNATS(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { serveRelays(t, nil) })
	t.Run("postgres", func(t *testing.T) {
		serveRelays(t, map[string]string{"CHRONICLE_STORE": pgStoreURL(t), "CHRONICLE_MASTER_KEY_FILE": masterKeyFile(t)})
	})
}

func serveRelays(t *testing.T, env map[string]string) {
	srv := natstest.Start(t)
	base := startInProcess(t, env, "--relay-nats", srv.URL(), "--relay-subject-prefix", "acme.orders")
	for range 5 {
		id := createOrderOverHTTP(t, base)
		do(t, "POST", base+"/orders/"+id+"/payments", `{"method":"card","amount":2500}`)
	}
	// Personal data is stored encrypted; the message shows it as GET
	// /events does.
	id := createOrderOverHTTP(t, base)
	do(t, "PUT", base+"/orders/"+id+"/shipping-address", `{"name":"Ada Relaytest","line1":"1 Quay","city":"Delft","postal_code":"2611","country":"NL"}`)
	waitRelayed(t, base, 12)
	msgs, err := srv.ReadAll(relay.StreamName, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	events := feedEvents(t, base)
	if len(msgs) != 12 || len(events) != 12 {
		t.Fatalf("%d messages, %d events in GET /events; want 12", len(msgs), len(events))
	}
	if last := msgs[11].Data; !bytes.Contains(last, []byte(`"Ada Relaytest"`)) || bytes.Contains(last, []byte(personal.Prefix)) {
		t.Errorf("the address message does not show the name in the clear: %s", last)
	}
	for i, m := range msgs {
		var want bytes.Buffer
		if err := json.Compact(&want, events[i]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Data, want.Bytes()) {
			t.Errorf("message %d:\n%s\nGET /events:\n%s", i+1, m.Data, want.Bytes())
		}
		if !strings.HasPrefix(m.Subject, "acme.orders.order.Order") && !strings.HasPrefix(m.Subject, "acme.orders.order.Payment") &&
			m.Subject != "acme.orders.order.ShippingAddressChanged" {
			t.Errorf("message %d: subject %s", i+1, m.Subject)
		}
	}
	// A sink has no read model to rebuild.
	res, err := http.Post(base+"/projections/"+relay.Name+"/rebuild", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusConflict {
		t.Errorf("POST /projections/%s/rebuild: %d, want 409", relay.Name, res.StatusCode)
	}
	res, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"chronicle_relay_acknowledged_total 12", "chronicle_relay_published_total 12",
		"chronicle_relay_retried_total 0", "chronicle_relay_lag_events 0", `chronicle_projection_lag_events{projection="relay_nats"} 0`} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestRelayCommand: chronicle relay relays a store that serve writes, and
// serve (without a relay of its own) shows its status.
func TestRelayCommand(t *testing.T) {
	srv := natstest.Start(t)
	store := tempStore(t)
	base := startInProcess(t, nil, "--store", store)
	id := createOrderOverHTTP(t, base)
	var body struct {
		Projections []struct{ Name string } `json:"projections"`
	}
	getJSON(t, base+"/projections", &body)
	if len(body.Projections) != 2 {
		t.Fatalf("before any relay ran, GET /projections shows %+v", body.Projections)
	}

	port, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &lockedWriter{w: &stderr}, Getenv: func(string) string { return "" }}
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, []string{"relay", "--nats", srv.URL(), "--store", store, "--metrics-addr", metricsAddr})
	}()
	do(t, "POST", base+"/orders/"+id+"/payments", `{"method":"card","amount":2500}`)
	waitRelayed(t, base, 2)
	msgs, err := srv.ReadAll(relay.StreamName, 30*time.Second)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	var metrics string
	for deadline := time.Now().Add(10 * time.Second); ; {
		if res, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			metrics = string(b)
			if strings.Contains(metrics, "chronicle_relay_acknowledged_total 2\n") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay's /metrics: %s", metrics)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relay: %v; stderr %s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("relay still running 20 s after SIGTERM")
	}
}
