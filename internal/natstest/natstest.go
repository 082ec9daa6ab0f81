// Package natstest runs a real NATS server with JetStream (file storage in
// a temporary directory, on a free loopback port) inside a test process,
// and reads a JetStream stream back, for the relay's tests.
package natstest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/internal/freeport"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is a NATS server that a test can stop and start again, on the same
// port and storage.
type Server struct {
	tb   testing.TB
	port int
	dir  string

	mu sync.Mutex
	s  *server.Server
}

// New returns a server on a free loopback port, not started yet (so that a
// test can show a relay waiting for it). It is stopped when tb ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	port, err := freeport.Loopback()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{tb: tb, port: port, dir: tb.TempDir()}
	tb.Cleanup(s.Stop)
	return s
}

// Start returns a started server (see New).
func Start(tb testing.TB) *Server {
	s := New(tb)
	s.Start()
	return s
}

// URL is the server's nats:// URL.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// Start starts the server, or starts it again, and waits until it accepts
// connections.
func (s *Server) Start() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s != nil {
		return
	}
	opts := &server.Options{
		Host: "127.0.0.1", Port: s.port, JetStream: true, StoreDir: s.dir,
		NoLog: true, NoSigs: true, MaxPayload: 8 << 20,
	}
	var srv *server.Server
	var err error
	// The port was free a moment ago; a restart may find it in TIME_WAIT
	// or held by the old listener for a moment.
	for deadline := time.Now().Add(10 * time.Second); ; {
		srv, err = server.NewServer(opts)
		if err == nil {
			srv.Start()
			if srv.ReadyForConnections(10 * time.Second) {
				break
			}
			srv.Shutdown()
			err = fmt.Errorf("not ready")
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("natstest: start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.s = srv
}

// Stop stops the server (a no-op when stopped).
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s != nil {
		s.s.Shutdown()
		s.s.WaitForShutdown()
		s.s = nil
	}
}

// Message is one message of the stream, as a consumer sees it.
type Message struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
}

// ReadAll returns every message of stream, in stream order. It waits for the
// server up to timeout.
func (s *Server) ReadAll(stream string, timeout time.Duration) ([]Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nc, err := nats.Connect(s.URL(), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var st jetstream.Stream
	for {
		st, err = js.Stream(ctx, stream)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("natstest: stream %s: %w", stream, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	n := info.State.Msgs
	out := make([]Message, 0, n)
	if n == 0 {
		return out, nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	for uint64(len(out)) < n {
		batch, err := c.Fetch(int(min(n-uint64(len(out)), 1000)), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			out = append(out, Message{Seq: md.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
		if err := batch.Error(); err != nil && ctx.Err() != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return out, nil
}
