#!/bin/bash
# Final benchmark runs for BENCHMARKS.md. Usage: run.sh OUTDIR
set -u
out=${1:-./bench-out}; mkdir -p "$out"
PG=${PG:-postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable}
B=${CHRONICLE:-./chronicle} # go build -o chronicle ./cmd/chronicle
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$out/log"; }
log start
$B bench --store "$PG" --workload all --baseline --json > "$out/pg-all-1.json" 2>> "$out/pg-all-1.err"; log "pg all 1 done"
$B bench --workload all --json > "$out/sqlite-all-1.json" 2>> "$out/sqlite-all-1.err"; log "sqlite all 1 done"
for i in 2 3; do
  $B bench --workload W1,W2,W3,W8 --json > "$out/sqlite-short-$i.json" 2>> "$out/sqlite-short-$i.err"; log "sqlite short $i done"
  $B bench --store "$PG" --workload W1,W2,W3,W8 --baseline --json > "$out/pg-short-$i.json" 2>> "$out/pg-short-$i.err"; log "pg short $i done"
done
log end
