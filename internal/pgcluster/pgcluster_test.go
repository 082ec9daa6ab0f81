package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// A port taken between the pick and the server's bind (by a client
// connection, or another test's server) costs a new port, not the run.
func TestFirstStartMovesOffATakenPort(t *testing.T) {
	c, err := initPrimary()
	if errors.Is(err, ErrUnavailable) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Remove)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", c.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := c.Port

	if err := c.firstStart(); err != nil {
		t.Fatalf("firstStart with port %d taken: %v", taken, err)
	}
	if c.Port == taken {
		t.Fatalf("the cluster kept the taken port %d", taken)
	}
	conn, err := pgx.Connect(context.Background(), c.URL())
	if err != nil {
		t.Fatalf("connect to the started cluster: %v", err)
	}
	conn.Close(context.Background())
}
