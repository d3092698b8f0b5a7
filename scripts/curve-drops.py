#!/usr/bin/env python3
"""Late overfitting of weak labels (the paper's Fig. 7) from a sweep's JSON output:

    w2s sweep FILE --json > sweep.json
    scripts/curve-drops.py sweep.json

For every direct pair and method, over its seeds: the student's test accuracy at its best epoch
and at the last epoch (points), the mean drop from the one to the other, the mean epoch of the
peak, and the same drop for the ceiling trained on ground truth. A student that overfits its
weak labels late peaks early and drops more than its ceiling does.
"""
import json, sys, statistics

runs = [r for r in json.load(open(sys.argv[1]))["runs"] if r.get("chain") is None and r.get("student_curve")]
groups = {}
for r in runs:
    groups.setdefault((r["dataset"], r["weak"], r["strong"], r["method"]), []).append(r)

def drop(curve):
    return 100 * (max(curve) - curve[-1])

def peak(curve):
    return 1 + max(range(len(curve)), key=lambda e: curve[e])

print("| dataset | weak → strong | method | seeds | student best / last | drop | peak epoch | ceiling drop |")
print("|---|---|---|---|---|---|---|---|")
for (d, w, s, m), rs in sorted(groups.items()):
    sc = [r["student_curve"] for r in rs]
    cc = [r["ceiling_curve"] for r in rs if r.get("ceiling_curve")]
    best = statistics.mean(100 * max(c) for c in sc)
    last = statistics.mean(100 * c[-1] for c in sc)
    print(f"| {d} | {w} → {s} | {m} | {len(rs)} | {best:.1f} / {last:.1f} | {statistics.mean(drop(c) for c in sc):.1f} "
          f"| {statistics.mean(peak(c) for c in sc):.1f} of {len(sc[0])} | {statistics.mean(drop(c) for c in cc):.1f} |")
