#!/usr/bin/env python3
"""Aggregate chronicle bench --json files into BENCHMARKS.md's results table: python3 benchmarks/table.py FILE.json..."""
import json, sys, statistics, collections

def main_fig(r):
    w = r["workload"]
    if w in ("W4", "W6"):
        return "p50 ms", r["p50_ns"] / 1e6
    if w in ("W3", "W5", "W7", "W10"):
        return "events/s", r["events_per_sec"]
    return "ops/s", r["ops_per_sec"]

def fmt(v, unit):
    if unit == "p50 ms":
        return f"{v:.2f}"
    return f"{v:,.0f}"

def results(path):
    data = json.load(open(path))
    if isinstance(data, dict):  # a report of rounds (chronicle bench since --rounds): each round is a run
        return [r for row in data["rows"] for r in row["rounds"]]
    return data

rows = collections.OrderedDict()
ratios = collections.defaultdict(list)
for path in sys.argv[1:]:
    for r in results(path):
        key = (r["backend"], r["workload"], r.get("case", ""), r["system"], r["clients"])
        rows.setdefault(key, []).append(r)
        if r["system"] == "plain" and r.get("ratio"):
            ratios[key].append(r["ratio"])

print("| backend | workload | case | system | clients | runs | main figure | median (min-max) | p50 ms | p99 ms | errors | conflicts | chronicle/plain | notes |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(rows, key=lambda k: (k[0] != "postgres", k[1], k[2], k[4], k[3] != "chronicle")):
    rs = rows[key]
    unit, _ = main_fig(rs[0])
    vals = [main_fig(r)[1] for r in rs]
    med = statistics.median(vals)
    spread = f" ({fmt(min(vals), unit)}-{fmt(max(vals), unit)})" if len(vals) > 1 else ""
    p50 = statistics.median(r["p50_ns"] for r in rs) / 1e6
    p99 = statistics.median(r["p99_ns"] for r in rs) / 1e6
    errs = sum(r["errors"] for r in rs)
    confl = statistics.median(r["conflicts"] for r in rs)
    ratio = ""
    if ratios.get(key):
        rr = ratios[key]
        ratio = f"{statistics.median(rr):.2f}x" + (f" ({min(rr):.2f}-{max(rr):.2f})" if len(rr) > 1 else "")
    notes = []
    rss = [r["peak_rss_bytes"] for r in rs if r.get("peak_rss_bytes")]
    if rss:
        notes.append(f"peak RSS {statistics.median(rss)/2**20:.0f} MiB ({min(rss)/2**20:.0f}-{max(rss)/2**20:.0f})")
    if key[1] == "W2":
        rate = statistics.median(r["conflicts"] / max(r["ops"] + r["conflicts"], 1) for r in rs)
        notes.append(f"conflict rate {rate*100:.1f}%")
    for r in rs:
        if r.get("note") and r["note"] not in notes:
            notes.append(r["note"])
        if r.get("first_error"):
            notes.append("error: " + r["first_error"][:80])
    b, w, c, s, n = key
    print(f"| {b} | {w} | {c} | {s} | {n} | {len(rs)} | {unit} | {fmt(med, unit)}{spread} | {p50:.2f} | {p99:.2f} | {errs} | {confl:.0f} | {ratio} | {'; '.join(notes)} |")
