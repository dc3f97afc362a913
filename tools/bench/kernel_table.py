#!/usr/bin/env python3
"""Per-kernel time table from `ncu --csv --page raw --metrics gpu__time_duration.sum` output.

Groups kernels by the NVTX range they ran in (ncu --print-nvtx-rename / thread ranges are not
needed: dsv2 bench opens one range per phase, "prefill N" / "decode N") and by kernel name, and
prints per phase: calls, total and per-step microseconds, share. `--steps PHASE=N` divides a phase's
totals by N (decode steps) for a per-step breakdown.

  python3 tools/bench/kernel_table.py ncu.csv --steps "decode 1024=2"
"""
import argparse
import collections
import csv
import re
import sys


def short(name):
    name = re.sub(r"\(.*", "", name)            # drop the argument list
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"dsv2::cuda::(\(anonymous namespace\)::)?", "", name)
    return name[:60]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--steps", action="append", default=[])
    args = ap.parse_args()
    steps = dict((k, int(v)) for k, v in (s.split("=") for s in args.steps))
    text = open(args.csv, errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        print("no ncu CSV in", args.csv)
        print(text[-2000:])
        return 1
    rows = list(csv.reader(text[start:].splitlines()))
    head = rows[0]
    kcol = head.index("Kernel Name")
    tcol = head.index("gpu__time_duration.sum")
    phases = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0.0]))
    unit = 1.0
    for r in rows[1:]:
        if len(r) <= tcol:
            continue
        units = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}
        if r[tcol].strip() in units:
            unit = units[r[tcol].strip()]
            continue
        try:
            t = float(r[tcol].replace(",", "")) * unit
        except ValueError:
            continue
        # The NVTX range shows up in a column whose name differs between ncu versions: look for it.
        # Warm-up ranges ("warm-up decode N") are left out.
        if any("warm-up" in c for c in r):
            continue
        phase = next((m.group(1) for c in r if (m := re.search(r"((?:prefill|decode) \d+)", c))), "all")
        e = phases[phase][short(r[kcol])]
        e[0] += 1
        e[1] += t
    for phase, kernels in sorted(phases.items()):
        n = steps.get(phase, 1)
        total = sum(v[1] for v in kernels.values())
        print(f"\n{phase}: {sum(v[0] for v in kernels.values()) // n} kernels, {total / n:.1f} us per "
              f"{'step' if n > 1 else 'call'} (kernel time only, serialized by the profiler)")
        print(f"  {'kernel':60s} {'calls':>6s} {'us':>10s} {'share':>6s}")
        for name, (calls, t) in sorted(kernels.items(), key=lambda kv: -kv[1][1])[:25]:
            print(f"  {name:60s} {calls // n:6d} {t / n:10.1f} {100 * t / total:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
