#!/usr/bin/env python3
"""Helper of compare.sh: reads `herald bench --json` outputs.

  compare_report.py check JSON STDERR RC
      classifies one bench run; prints one line:
      ok|fail <TAB> one-line summary <TAB> reason (fail only)
  compare_report.py report RESULTS_DIR
      prints the Markdown tables (medians over the runs, ratios to Herald)

RESULTS_DIR holds, tab-separated, one record a line:
  workloads.tsv  id, title, verify mode (off|full|dups), method note
  runs.tsv       workload, system, label, run, status, json path, reason
  na.tsv         workload, system, label, reason      (system unavailable)
  cmds.tsv       workload, system, label, command     (first run's command)
"""
import json
import os
import statistics
import sys

OPS = ["post", "claim", "delete", "list"]
SYSTEM_ORDER = ["herald", "zaqar", "jetstream", "ceiling"]
OUTRIGHT = ("every request failed", "no request was measured")


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def rate(x):
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def ms(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def num(x):
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def ratio(v, h):
    if v is None or h is None or h == 0:
        return "–"
    return f"{v / h:.2f}"


def clean(s, n=240):
    s = " ".join(str(s).replace("|", "/").split())
    return s if len(s) <= n else s[: n - 1] + "…"


def error_kinds(o):
    return ", ".join(f"{k}={v}" for k, v in sorted((o.get("errors") or {}).items()))


def check(json_path, err_path, rc):
    rep = load(json_path)
    if rep is None:
        why = last_line(err_path) or f"exit status {rc}, no output"
        if rc == "124":
            why = "timed out (killed); " + why
        print(f"fail\t-\t{clean(why)}")
        return
    parts = []
    for op in OPS:
        o = rep.get("ops", {}).get(op)
        if not o:
            continue
        l = o.get("latency_ms", {})
        s = f"{op} {rate(o['msgs_per_s'])} msg/s {rate(o['req_per_s'])} req/s p50 {ms(l.get('p50'))} p99 {ms(l.get('p99'))} ms"
        if o.get("error_total"):
            s += f" errors {o['error_total']} ({error_kinds(o)})"
        parts.append(s)
    v = rep.get("verify")
    if v is not None:
        parts.append(f"verify dup={v['duplicates']} unknown={v['unknown']}")
    summary = "; ".join(parts)
    failures = rep.get("failures") or []
    outright = [f for f in failures if f in OUTRIGHT]
    if outright:
        kinds = "; ".join(f"{op}: {error_kinds(o)}" for op, o in rep.get("ops", {}).items() if o.get("error_total"))
        print(f"fail\t{clean(summary)}\t{clean('; '.join(outright) + (' — ' + kinds if kinds else ''))}")
        return
    print(f"ok\t{clean(summary, 1000)}\t")


def read_tsv(path, ncols):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            cols = line.split("\t")
            cols += [""] * (ncols - len(cols))
            rows.append(cols[:ncols])
    return rows


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def verify_cell(mode, reps):
    if mode == "off":
        return "off"
    vs = [r.get("verify") for r in reps if r.get("verify") is not None]
    if not vs:
        return "n/a"
    if mode == "dups":
        # consumer-only run on a queue another run filled: every token is
        # "unknown" to it by design; only duplicate deliveries count.
        bad = [v for v in vs if v["duplicates"]]
        if not bad:
            return f"pass ({len(vs)}/{len(vs)}, dups only)"
        return "FAIL: " + ", ".join(f"{v['duplicates']} dup" for v in bad)
    bad = [v for v in vs if not v["passed"]]
    unconf = sum(v.get("unconfirmed", 0) for v in vs)
    extra = f", {unconf} unconfirmed" if unconf else ""
    if not bad:
        return f"pass ({len(vs)}/{len(vs)}{extra})"
    return "FAIL: " + ", ".join(f"{v['duplicates']} dup/{v['unknown']} unknown" for v in bad) + extra


def report(d):
    workloads = read_tsv(os.path.join(d, "workloads.tsv"), 4)
    runs = read_tsv(os.path.join(d, "runs.tsv"), 7)
    nas = read_tsv(os.path.join(d, "na.tsv"), 4)
    cmds = read_tsv(os.path.join(d, "cmds.tsv"), 4)
    out = []
    for wid, title, vmode, note in workloads:
        systems = []  # (system, label) in order of appearance
        for r in runs + nas:
            if r[0] == wid and (r[1], r[2]) not in systems:
                systems.append((r[1], r[2]))
        if not systems:
            continue
        systems.sort(key=lambda s: SYSTEM_ORDER.index(s[0]) if s[0] in SYSTEM_ORDER else 99)
        out.append(f"## {title}\n")
        if note:
            out.append(note + "\n")
        # medians per (system, op)
        figs = {}   # system -> op -> dict
        info = {}   # system -> dict(reps, failed, na)
        ops_seen = []
        for sysname, label in systems:
            rs = [r for r in runs if r[0] == wid and r[1] == sysname]
            na = [r for r in nas if r[0] == wid and r[1] == sysname]
            reps = [load(r[5]) for r in rs if r[4] == "ok"]
            reps = [x for x in reps if x is not None]
            failed = [r for r in rs if r[4] != "ok"]
            info[sysname] = {"label": label, "reps": reps, "failed": failed, "na": na[0][3] if na else None, "n": len(rs)}
            figs[sysname] = {}
            for op in OPS:
                os_ = [x["ops"][op] for x in reps if op in x.get("ops", {})]
                if not os_:
                    continue
                if op not in ops_seen:
                    ops_seen.append(op)
                figs[sysname][op] = {
                    "msgs": med([o["msgs_per_s"] for o in os_]),
                    "reqs": med([o["req_per_s"] for o in os_]),
                    # no successful request: no latency
                    "p50": med([o["latency_ms"]["p50"] for o in os_ if o["requests"]]),
                    "p99": med([o["latency_ms"]["p99"] for o in os_ if o["requests"]]),
                    "err": med([o["error_total"] for o in os_]),
                    "runs_msgs": [o["msgs_per_s"] for o in os_],
                    "kinds": {},
                    "empty": sum(o.get("empty", 0) for o in os_),
                }
                for o in os_:
                    for k, v in (o.get("errors") or {}).items():
                        figs[sysname][op]["kinds"][k] = figs[sysname][op]["kinds"].get(k, 0) + v
        ops_seen.sort(key=OPS.index)
        base = figs.get("herald", {})
        out.append("| system | op | msgs/s | ×H | req/s | ×H | p50 ms | ×H | p99 ms | ×H | errors | verify | notes |")
        out.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|")
        for sysname, _ in systems:
            i = info[sysname]
            label = i["label"]
            if i["na"] is not None:
                out.append(f"| {label} | – | n/a | | n/a | | n/a | | n/a | | n/a | n/a | n/a: {clean(i['na'], 400)} |")
                continue
            if not i["reps"]:
                why = "; ".join(sorted({clean(r[6], 200) for r in i["failed"]}))
                out.append(f"| {label} | – | FAILED | | | | | | | | | | all {i['n']} run(s) failed: {why} |")
                continue
            vcell = verify_cell(vmode, i["reps"])
            first = True
            for op in ops_seen:
                f = figs[sysname].get(op)
                if f is None:
                    continue
                b = base.get(op, {})
                notes = []
                if len(f["runs_msgs"]) > 1:
                    notes.append("runs msgs/s: " + " / ".join(rate(x) for x in f["runs_msgs"]))
                if f["kinds"]:
                    notes.append("errors (all runs): " + ", ".join(f"{k}={v}" for k, v in sorted(f["kinds"].items())))
                if vmode == "dups" and op == "claim" and f["empty"]:
                    notes.append(f"queue ran dry: {f['empty']} empty claim(s), rate is a lower bound")
                if first and i["failed"]:
                    notes.append(f"{len(i['failed'])} of {i['n']} run(s) FAILED: " + "; ".join(sorted({clean(r[6], 200) for r in i["failed"]})))
                out.append(
                    f"| {label if first else ''} | {op} | {rate(f['msgs'])} | {ratio(f['msgs'], b.get('msgs'))} "
                    f"| {rate(f['reqs'])} | {ratio(f['reqs'], b.get('reqs'))} "
                    f"| {ms(f['p50'])} | {ratio(f['p50'], b.get('p50'))} "
                    f"| {ms(f['p99'])} | {ratio(f['p99'], b.get('p99'))} "
                    f"| {num(f['err'])} | {vcell if first else ''} | {'; '.join(notes)} |"
                )
                first = False
        wc = [c for c in cmds if c[0] == wid]
        if wc:
            out.append("\n<details><summary>commands</summary>\n\n```sh")
            for c in wc:
                out.append(f"# {c[2]}\n{c[3]}")
            out.append("```\n</details>")
        out.append("")
    print("\n".join(out))


def main(argv):
    if len(argv) == 5 and argv[1] == "check":
        check(argv[2], argv[3], argv[4])
    elif len(argv) == 3 and argv[1] == "report":
        report(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
