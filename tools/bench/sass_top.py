#!/usr/bin/env python3
"""The SASS lines with the most warp-stall samples in an `ncu --page source --csv --print-source sass`
export, with their share and the stall-reason columns that dominate them.
Usage: sass_top.py FILE.csv [N]"""
import csv
import sys


def main() -> None:
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    # ncu may print a few lines before the header: the header is the first line with "Source".
    start = next(i for i, line in enumerate(lines) if "Source" in line and "," in line)
    rows = list(csv.DictReader(lines[start:]))
    if not rows:
        print("no rows")
        return
    cols = list(rows[0].keys())
    total_col = next((c for c in cols if c.startswith("Warp Stall Sampling (All")), None)
    if total_col is None:
        print("no stall sampling column; columns:", cols[:20])
        return
    stall_cols = [c for c in cols if c.startswith("stall_") or "Stall" in c and c != total_col and "Not" not in c]

    def num(v: str) -> float:
        try:
            return float(v.replace(",", ""))
        except ValueError:
            return 0.0

    total = sum(num(r[total_col]) for r in rows) or 1.0
    rows.sort(key=lambda r: -num(r[total_col]))
    print(f"{total:.0f} stall samples")
    for r in rows[:n]:
        s = num(r[total_col])
        reasons = sorted(((num(r[c]), c) for c in stall_cols), reverse=True)[:2]
        why = ", ".join(f"{c.replace('Warp Stall Sampling ', '')} {v:.0f}" for v, c in reasons if v > 0)
        print(f"{100 * s / total:5.1f}%  {r.get('Address', '')}  {r.get('Source', '')[:70]:70s}  {why}")


if __name__ == "__main__":
    main()
