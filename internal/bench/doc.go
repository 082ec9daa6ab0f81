// Package bench runs the workloads of BENCHMARKS.md (W1-W10) against a
// chronicle backend and, for W1-W5, against the seed's plain table on the
// same backend in the same run (the baseline), so that ratios hold on a
// noisy machine.
//
// Every run works in fresh places: on PostgreSQL a new schema per workload
// (bench_<run>_<workload>), on SQLite a new file per workload in a new
// temporary directory (next to the file a sqlite URL names, so that it is
// on the same disk, but never that file itself). They are removed at the
// end unless Options.Keep is set. The plain table lives in the workload's
// schema, or in a file of its own beside the workload's (<workload>-plain.db:
// WAL, the run's synchronous level, one writer connection).
//
// A client is one goroutine with one operation in flight. After the
// warm-up, an operation counts if it starts and ends inside the measured
// window; latencies are taken per operation in the client.
//
// Every row is measured in rounds, interleaved (round 1 of every row, then
// round 2, ...), and reported as the median with min-max; the disk's fsync
// rate is probed between the rounds, the regime the figures belong to.
package bench
