#!/usr/bin/env python3
"""Aggregate a benchmark case's leaves.csv into every segment up to a depth.

An independent reference for testing a root-cause search: it reads only
CASE_DIR/data/leaves.csv (written by generate_cases.py, or any CSV with a
`day` column, text dimension columns and either `value` or `num`,`den`).

In:  aggregate(case_dir, max_depth=3)
Out: {"kind": "additive" | "ratio",
      "dims": ["a", "b", ...],                 # CSV column order
      "measures": ["value"] or ["num", "den"],
      "periods": {"baseline": "2026-01-15", "current": "2026-02-15"},
      "segments": {segment: {"baseline": {measure: sum}, "current": {measure: sum}}}}
     where a segment is a tuple of (dim, member) pairs in `dims` order, () being
     the total, for every combination of 0..max_depth dimensions and every
     member combination present in either period (absent in a period -> 0.0).

CLI: python3 bench/cube.py CASE_DIR [--depth N]
     prints the totals of both periods and the 10 depth-1 segments with the
     largest absolute change (ratio: the change of the overall rate if only
     that segment had moved).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
from pathlib import Path

Segment = tuple[tuple[str, str], ...]


def read_leaves(case_dir: str | Path) -> tuple[list[str], list[str], list[str], list[tuple]]:
    """Read leaves.csv -> (dims, measures, days sorted, rows).

    rows are (day, (member, ...), (measure value, ...)). The baseline is the
    earlier of the two days, the current period the later one.
    """
    path = Path(case_dir) / "data" / "leaves.csv"
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        measures = ["num", "den"] if "num" in header else ["value"]
        dims = [h for h in header if h != "day" and h not in measures]
        day_i = header.index("day")
        dim_i = [header.index(d) for d in dims]
        mea_i = [header.index(m) for m in measures]
        rows = [(r[day_i], tuple(r[i] for i in dim_i), tuple(float(r[i]) for i in mea_i))
                for r in reader if r]
    days = sorted({r[0] for r in rows})
    if len(days) != 2:
        raise ValueError(f"{path}: expected exactly 2 distinct days, found {days}")
    return dims, measures, days, rows


def aggregate(case_dir: str | Path, max_depth: int = 3) -> dict:
    """Sum the measures of both periods over every segment of depth 0..max_depth."""
    dims, measures, days, rows = read_leaves(case_dir)
    period_of = {days[0]: "baseline", days[1]: "current"}
    n = len(measures)
    cuboids = [c for k in range(min(max_depth, len(dims)) + 1)
               for c in itertools.combinations(range(len(dims)), k)]
    # Accumulate into flat lists [baseline..., current...] per segment: far
    # faster than nested dicts over ~20k leaves x 26 cuboids.
    acc: dict[Segment, list[float]] = {}
    for day, members, values in rows:
        offset = 0 if period_of[day] == "baseline" else n
        for cuboid in cuboids:
            seg = tuple((dims[i], members[i]) for i in cuboid)
            slot = acc.get(seg)
            if slot is None:
                slot = acc[seg] = [0.0] * (2 * n)
            for j, v in enumerate(values):
                slot[offset + j] += v
    segments = {
        seg: {"baseline": dict(zip(measures, s[:n])), "current": dict(zip(measures, s[n:]))}
        for seg, s in acc.items()
    }
    return {
        "kind": "ratio" if n == 2 else "additive",
        "dims": dims,
        "measures": measures,
        "periods": {"baseline": days[0], "current": days[1]},
        "segments": segments,
    }


def segment_sums(case_dir: str | Path, segments: list[dict[str, str]]) -> dict:
    """Totals and the sums under a few given segments only (cheap; no full cube).

    Returns {"kind", "dims", "total": {"baseline": {...}, "current": {...}},
    "segments": [same shape per requested segment, in order]}.
    """
    dims, measures, days, rows = read_leaves(case_dir)
    n = len(measures)
    wanted = [[(dims.index(d), m) for d, m in seg.items()] for seg in segments]
    total = [0.0] * (2 * n)
    sums = [[0.0] * (2 * n) for _ in segments]
    for day, members, values in rows:
        offset = 0 if day == days[0] else n
        for j, v in enumerate(values):
            total[offset + j] += v
        for k, conds in enumerate(wanted):
            if all(members[i] == m for i, m in conds):
                for j, v in enumerate(values):
                    sums[k][offset + j] += v

    def shape(s: list[float]) -> dict:
        return {"baseline": dict(zip(measures, s[:n])), "current": dict(zip(measures, s[n:]))}

    return {"kind": "ratio" if n == 2 else "additive", "dims": dims,
            "total": shape(total), "segments": [shape(s) for s in sums]}


def ratio(num: float, den: float) -> float | None:
    """num / den, None when den is 0 (as SQL division in kpic)."""
    return num / den if den else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Totals and top depth-1 changes of a case.")
    parser.add_argument("case_dir", type=Path)
    parser.add_argument("--depth", type=int, default=1,
                        help="aggregate up to this depth (the listing shows depth 1)")
    args = parser.parse_args(argv)
    cube = aggregate(args.case_dir, max(1, args.depth))
    segs = cube["segments"]
    tot = segs[()]
    b, c = tot["baseline"], tot["current"]
    if cube["kind"] == "additive":
        print(f"total  baseline {b['value']:.6g}  current {c['value']:.6g}  "
              f"change {c['value'] - b['value']:+.6g}")

        def change(s: dict) -> float:
            return s["current"]["value"] - s["baseline"]["value"]
    else:
        r0, r1 = ratio(b["num"], b["den"]), ratio(c["num"], c["den"])
        print(f"total  baseline num {b['num']:.6g} den {b['den']:.6g} rate {r0:.6g}  "
              f"current num {c['num']:.6g} den {c['den']:.6g} rate {r1:.6g}  "
              f"change {r1 - r0:+.6g}")

        def change(s: dict) -> float:
            # The overall rate if only this segment had moved, minus the baseline rate.
            dn = s["current"]["num"] - s["baseline"]["num"]
            dd = s["current"]["den"] - s["baseline"]["den"]
            return ratio(b["num"] + dn, b["den"] + dd) - r0
    depth1 = [(seg, s) for seg, s in segs.items() if len(seg) == 1]
    depth1.sort(key=lambda x: abs(change(x[1])), reverse=True)
    print(f"top depth-1 segments by |change| ({'rate effect' if cube['kind'] == 'ratio' else 'value'}):")
    for seg, s in depth1[:10]:
        (dim, member), = seg
        if cube["kind"] == "additive":
            extra = f"baseline {s['baseline']['value']:.6g}  current {s['current']['value']:.6g}"
        else:
            extra = (f"rate {ratio(s['baseline']['num'], s['baseline']['den']) or 0:.4g} -> "
                     f"{ratio(s['current']['num'], s['current']['den']) or 0:.4g}  "
                     f"den {s['baseline']['den']:.6g} -> {s['current']['den']:.6g}")
        print(f"  {dim}={member:<6} change {change(s):+.6g}  {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
