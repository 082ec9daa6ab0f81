package httpapi

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chronicle-es/chronicle/aggregate"
	"github.com/chronicle-es/chronicle/internal/pgcluster"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/order/orderview"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/projection"
)

// replicaBench is one primary store with benchOrders orders, and two
// servers on it: one with the standby as a replica, one without.
var replicaBench struct {
	once                     sync.Once
	err                      error
	withReplica, primaryOnly string // base URLs
	primary, standby         *pgcluster.Cluster
}

const benchOrders = 1000

func setupReplicaBench(b *testing.B) {
	b.Helper()
	replicaBench.once.Do(func() {
		replication.once.Do(func() {
			replication.primary, replication.err = pgcluster.StartPrimary()
			if replication.err == nil {
				replication.standby, replication.err = replication.primary.StartStandby()
			}
		})
		if replicaBench.err = replication.err; replicaBench.err != nil {
			return
		}
		pc, sc := replication.primary, replication.standby
		replicaBench.primary, replicaBench.standby = pc, sc
		ctx := context.Background()
		primary, err := pgstore.Open(ctx, pc.URL(), pgstore.Options{Schema: "bench_replica"})
		if err != nil {
			replicaBench.err = err
			return
		}
		replica, err := pgstore.OpenReplica(ctx, sc.URL(), primary, pgstore.ReplicaOptions{})
		if err != nil {
			replicaBench.err = err
			return
		}
		reg := order.NewRegistry()
		runner, err := projection.New(primary, projection.Options{Upcaster: reg}, orderview.Projections()...)
		if err == nil {
			err = runner.Setup(ctx)
		}
		if err != nil {
			replicaBench.err = err
			return
		}
		go func() { _ = runner.Run(ctx) }() // for the life of the test binary
		opts := Options{
			Store: primary, Upcaster: reg, Projections: runner,
			Orders: aggregate.New(primary, primary, reg, order.Definition()),
			Views:  orderview.NewReader(primary),
		}
		only, err := New(opts)
		if err != nil {
			replicaBench.err = err
			return
		}
		opts.Replicas = []Replica{{Store: replica, Orders: aggregate.New(replica, nil, reg, order.Definition()),
			Views: orderview.NewReader(replica), Health: replica}}
		with, err := New(opts)
		if err != nil {
			replicaBench.err = err
			return
		}
		replicaBench.primaryOnly = httptest.NewServer(only).URL
		replicaBench.withReplica = httptest.NewServer(with).URL
		for i := range benchOrders {
			body := fmt.Sprintf(`{"order_id":"ord_b%d","customer_id":"cust_%d","items":[{"sku":"A","quantity":1,"unit_price":100}]}`, i, i%50)
			if r, err := tryHTTP(replicaBench.primaryOnly, req{method: "POST", path: "/orders", body: body}); err != nil || r.status != 201 {
				replicaBench.err = fmt.Errorf("create: %v %d %s", err, r.status, r.body)
				return
			}
		}
		last := fmt.Sprintf("/orders/ord_b%d?min_version=1", benchOrders-1)
		for {
			r, err := tryHTTP(replicaBench.withReplica, req{method: "GET", path: last})
			if err != nil || r.status != 200 {
				replicaBench.err = fmt.Errorf("wait: %v %d %s", err, r.status, r.body)
				return
			}
			if r.header.Get("X-Chronicle-Source") == "replica" {
				return
			}
		}
	})
	if replicaBench.err != nil {
		b.Fatal(replicaBench.err)
	}
}

// BenchmarkReplicaReads: GET /orders/{id} of random orders from 16
// clients, served by the primary alone or by its standby, twice each,
// alternating (this machine's load drifts). Besides reads/s it reports the
// CPU the primary's and the standby's PostgreSQL spent per read: what a
// replica takes off the primary.
//
//	go test -run '^$' -bench ReplicaReads -benchtime 5s ./httpapi
func BenchmarkReplicaReads(b *testing.B) {
	setupReplicaBench(b)
	for _, c := range []struct{ name, base string }{
		{"primary-only", replicaBench.primaryOnly},
		{"with-replica", replicaBench.withReplica},
		{"primary-only", replicaBench.primaryOnly},
		{"with-replica", replicaBench.withReplica},
	} {
		b.Run(c.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			p0, s0 := clusterCPU(b, replicaBench.primary), clusterCPU(b, replicaBench.standby)
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := client.Get(c.base + "/orders/ord_b" + strconv.Itoa(rand.IntN(benchOrders)))
					if err != nil {
						b.Error(err)
						return
					}
					res.Body.Close()
					if res.StatusCode != 200 {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			})
			b.StopTimer()
			p1, s1 := clusterCPU(b, replicaBench.primary), clusterCPU(b, replicaBench.standby)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
			b.ReportMetric(float64(p1-p0)/float64(b.N), "primary-cpu-µs/read")
			b.ReportMetric(float64(s1-s0)/float64(b.N), "standby-cpu-µs/read")
		})
	}
}

// clusterCPU returns the CPU time, in µs, that a cluster's server
// processes (the postmaster and its children) have used.
func clusterCPU(b *testing.B, c *pgcluster.Cluster) int64 {
	b.Helper()
	pidFile, err := os.ReadFile(filepath.Join(c.Data(), "postmaster.pid"))
	if err != nil {
		b.Fatal(err)
	}
	root := strings.SplitN(string(pidFile), "\n", 2)[0]
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, d := range dirs {
		stat, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15): fields after the
		// comm's closing parenthesis.
		s := string(stat)
		pid := s[:strings.IndexByte(s, ' ')]
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if pid != root && f[1] != root {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return ticks * 10_000 // USER_HZ is 100 on Linux
}
