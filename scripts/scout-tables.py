#!/usr/bin/env python3
"""The tables of docs/results.md, "Which datasets have a gap", from two JSON outputs:

    w2s scout --data NAMES --max-rows 2000 --seeds 5 --json --out DIR > scout.json
    w2s sweep configs/gap-probe.toml --out DIR --json > sweep.json
    scripts/scout-tables.py scout.json sweep.json

With the scout's JSON alone, prints its table only. Models other than the four encoders (a
decoder such as smollm2-135m) get a column of their own.

Prints the scout table, the median PGR over the usable pairs (the scout's rule) for the
datasets with a weak model above chance + 10 points and for the others, and every usable pair.
Sections are separated by @@ lines.
"""
import json,sys,statistics
scout=json.load(open(sys.argv[1]))["datasets"]
sweep=json.load(open(sys.argv[2])) if len(sys.argv)>2 else None
short={"minilm-l3":"L3","minilm-l6":"L6","e5-small":"e5","mpnet-base":"mpnet","smollm2-135m":"SmolLM2",
       "gemma3-270m":"Gemma3","qwen2.5-coder-0.5b":"Qwen0.5B","qwen2.5-coder-1.5b":"Qwen1.5B"}
out=[]
P=out.append
# Datasets may have been scouted with different ladders: one column per model of any of them.
ladder=[]
for d in scout:
    for m in d["models"]:
        if m["model"] not in ladder: ladder.append(m["model"])
names=" / ".join(short.get(m,m) for m in ladder)
P(f"| dataset | test rows | chance | ceiling acc: {names} | L3 → mpnet gap | usable pairs (gap ± 95% CI, points; ° = weak model near chance) |")
P("|---|---|---|---|---|---|")
for d in scout:
    acc={m["model"]:m["ceiling_acc"]["mean"] for m in d["models"]}
    accs=" / ".join(f"{100*acc[m]:.1f}" if m in acc else "—" for m in ladder)
    us=[p for p in d["pairs"] if p["verdict"]=="usable"]
    far=[p for p in d["pairs"] if p["weak"]=="minilm-l3" and p["strong"]=="mpnet-base"][0]
    cell=", ".join(f"{short[p['weak']]}→{short[p['strong']]} {100*p['gap']['mean']:+.1f} ± {100*p['gap']['ci95']:.1f}{'°' if p['weak_near_chance'] else ''}" for p in us) or "none"
    P(f"| {d['dataset']} | {d['rows'][3]} | {100*d['chance']:.1f} | {accs} | {100*far['gap']['mean']:+.1f} ± {100*far['gap']['ci95']:.1f} ({far['verdict']}{', weak near chance' if far['weak_near_chance'] else ''}) | {cell} |")
P("@@SCOUT_END@@")
if sweep is None:
    print("\n".join(out))
    sys.exit(0)
# which datasets/pairs are usable per scout, and near chance
usable={}
for d in scout:
    for p in d["pairs"]:
        if p["verdict"]=="usable": usable[(d["dataset"],p["weak"],p["strong"])]=p["weak_near_chance"]
S=[r for r in sweep["summary"] if r["chain"] is None]
order=[]; methods=[]
for r in S:
    if r["dataset"] not in order: order.append(r["dataset"])
    if r["series"] not in methods: methods.append(r["series"])
meaningful=[d for d in order if any(k[0]==d and not v for k,v in usable.items())]
chance_only=[d for d in order if d not in meaningful]
def pairs_of(d, far_only):
    return [k for k,v in usable.items() if k[0]==d and (not far_only or not v)]
for title,ds,far in [("weak model above chance",meaningful,True),("weak model near chance",chance_only,False)]:
    P(f"@@MEDIAN {title}@@")
    P("| method | "+" | ".join(ds)+" |")
    P("|---|"+"---|"*len(ds))
    P("| usable pairs | "+" | ".join(str(len(pairs_of(d,far))) for d in ds)+" |")
    for m in methods:
        cells=[]
        for d in ds:
            ks=pairs_of(d,far)
            v=[r["pgr_mean"] for r in S if r["dataset"]==d and r["series"]==m and (d,r["weak"],r["strong"]) in ks and r["pgr_mean"] is not None]
            cells.append(f"{statistics.median(v):.2f}" if v else "–")
        P(f"| {m} | "+" | ".join(cells)+" |")
P("@@DETAIL@@")
P("| dataset | weak → strong | weak | ceiling | gap | "+" | ".join(methods)+" |")
P("|---|---|---|---|---|"+"---|"*len(methods))
for d in order:
    for (dd,w,s),nc in usable.items():
        if dd!=d: continue
        rs={r["series"]:r for r in S if r["dataset"]==d and r["weak"]==w and r["strong"]==s}
        r0=next(iter(rs.values()))
        cells=[f"{rs[m]['pgr_mean']:.2f} ± {rs[m]['pgr_ci95']:.2f}" if rs[m]['pgr_mean'] is not None else "no gap" for m in methods]
        P(f"| {d} | {short[w]} → {short[s]}{'°' if nc else ''} | {100*r0['weak_acc']:.1f} | {100*r0['ceiling_acc']:.1f} | {100*r0['gap']:+.1f} ± {100*r0['gap_ci95']:.1f} | "+" | ".join(cells)+" |")
print("\n".join(out))
