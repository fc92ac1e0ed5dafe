#!/usr/bin/env python3
"""Seeded semi-synthetic cases for the `kpic explain` accuracy benchmark.

In the style of the multi-dimensional root-cause-localization papers
(Squeeze, RiskLoc, HotSpot, Adtributor): a full cube of leaf cells, a
baseline period, a current period that follows the baseline up to a global
trend and noise, and a few injected root causes whose leaves move much more.

In:  python3 bench/generate_cases.py --out DIR [--seed N] [--cases-per-group N]
     (defaults: seed 7, 10 cases per group). Python 3.11 standard library only.

Out: for every group G and case id C (e.g. add_d1/add_d1_03):
     DIR/G/C/kpic.yml          project settings (as_of 2026-02-28)
     DIR/G/C/models/bench.yml  one CSV source, the metrics, KPI `bench_kpi`
     DIR/G/C/data/leaves.csv   one row per leaf per period: baseline rows
                               dated 2026-01-15, current rows 2026-02-15;
                               columns day,a,b,c,d[,e],value (additive) or
                               day,a,b,c,d[,e],num,den (ratio)
     DIR/G/C/truth.json        {"group", "kind", "dims", "causes": [element,...],
                               plus diagnostics: "cards", "trend", "sigma",
                               "injected": [{"cuboid", "delta", "elements"}]}
     DIR/manifest.json         seed, cases per group, and the list of cases

An *element* is a conjunction of dim=member pairs, e.g. {"a": "a3", "c": "c1"};
"causes" in truth.json is the flat list of true elements, which is what the
benchmark scores against. Everything is deterministic given --seed: each case
has its own random.Random seeded from (seed, group, index), so changing
--cases-per-group never changes the cases that were already there.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

# --- parameters (README.md documents exactly these) ---------------------------

GROUPS = ["add_d1", "add_d2", "add_d3", "add_multi", "add_updown", "ratio", "noisy"]
DIM_NAMES = ["a", "b", "c", "d", "e"]
CARD_MIN, CARD_MAX = 3, 10          # members per dimension
MAX_LEAVES = 20_000                 # cube size cap (cardinalities are re-drawn above it)
ZERO_SHARE = (0.05, 0.10)           # fraction of leaves that are exactly 0
MEMBER_SIGMA = 0.5                  # lognormal sigma of per-member weights
LEAF_SIGMA = 1.0                    # lognormal sigma of per-leaf values
LEAF_SCALE = 100.0                  # median leaf value before member weights
TREND = (0.9, 1.1)                  # global factor per case
SIGMA_NORMAL = (0.0, 0.05)          # leaf noise sigma, normal groups
SIGMA_NOISY = (0.15, 0.30)          # leaf noise sigma, noisy group
MAGNITUDE = (0.3, 0.9)              # |delta| of a cause; decreases use 1 - magnitude
RATE = (0.01, 0.2)                  # leaf base rate of the ratio KPI
MIN_ELEMENT_SHARE = 0.01            # an element covers >= 1% of the total baseline
MAX_PARENT_SHARE = 0.5              # elements under any ancestor cover <= 50% of it
BASELINE_DAY, CURRENT_DAY = "2026-01-15", "2026-02-15"

KPIC_YML = "name: bench_case\nmodels: [models]\nas_of: 2026-02-28\n"


# --- the cube -----------------------------------------------------------------


def draw_cube(rng: random.Random) -> tuple[list[str], list[int]]:
    """Draw 4 or 5 dimensions with 3..10 members each, at most MAX_LEAVES leaves."""
    n_dims = rng.choice([4, 5])
    while True:
        cards = [rng.randint(CARD_MIN, CARD_MAX) for _ in range(n_dims)]
        if math.prod(cards) <= MAX_LEAVES:
            return DIM_NAMES[:n_dims], cards


def draw_baseline(rng: random.Random, cards: list[int]) -> list[float]:
    """Heavy-tailed baseline per leaf, in itertools.product order.

    value = LEAF_SCALE * prod(member weights) * lognormal(0, LEAF_SIGMA); the
    member weights (lognormal too) make some members and segments much bigger
    than others, as in real data, and the product stays lognormal (heavy
    tailed). A random 5-10% of the leaves are exactly 0.
    """
    weights = [[rng.lognormvariate(0.0, MEMBER_SIGMA) for _ in range(c)] for c in cards]
    zero_share = rng.uniform(*ZERO_SHARE)
    values = []
    for leaf in itertools.product(*(range(c) for c in cards)):
        if rng.random() < zero_share:
            values.append(0.0)
            continue
        w = LEAF_SCALE
        for dim, member in enumerate(leaf):
            w *= weights[dim][member]
        values.append(w * rng.lognormvariate(0.0, LEAF_SIGMA))
    return values


def noise(rng: random.Random, sigma: float) -> float:
    """Multiplicative leaf noise 1 + N(0, sigma), clipped at 0."""
    return max(0.0, 1.0 + rng.gauss(0.0, sigma)) if sigma > 0 else 1.0


class Marginals:
    """Baseline sums of every cuboid (set of dim indices), computed on demand."""

    def __init__(self, leaves: list[tuple[int, ...]], weights: list[float]):
        self.leaves = leaves
        self.weights = weights
        self.total = sum(weights)
        self._cache: dict[tuple[int, ...], dict[tuple[int, ...], float]] = {}

    def of(self, cuboid: tuple[int, ...]) -> dict[tuple[int, ...], float]:
        """{member indices on `cuboid`: baseline sum} (the root is cuboid ())."""
        if cuboid not in self._cache:
            sums: dict[tuple[int, ...], float] = {}
            for leaf, w in zip(self.leaves, self.weights):
                key = tuple(leaf[i] for i in cuboid)
                sums[key] = sums.get(key, 0.0) + w
            self._cache[cuboid] = sums
        return self._cache[cuboid]


# --- root causes ----------------------------------------------------------------

# Internally an element is a tuple of (dim index, member index), sorted by dim.
Element = tuple[tuple[int, int], ...]


def overlaps(e1: Element, e2: Element) -> bool:
    """True if some leaf of the full cube lies under both elements.

    Two conjunctions are disjoint exactly when they fix a shared dimension to
    different members; a parent/child pair always overlaps.
    """
    d1 = dict(e1)
    return all(d1.get(dim, member) == member for dim, member in e2)


def parents_ok(elements: list[Element], marg: Marginals) -> bool:
    """No ancestor is mostly covered by true elements.

    For every proper sub-conjunction P of an element (including the root {}),
    the true elements under P together hold at most MAX_PARENT_SHARE of P's
    baseline. Otherwise P itself (one element) would explain nearly the same
    change as the truth, and exact-match scoring would punish a reasonable
    answer; in particular a cause never covers all children of a parent, and
    all causes together cover at most half of the total.
    """
    covered: dict[tuple[tuple[int, ...], tuple[int, ...]], float] = {}
    for e in elements:
        dims = tuple(d for d, _ in e)
        own = marg.of(dims)[tuple(m for _, m in e)]
        for k in range(len(e)):
            for sub in itertools.combinations(e, k):
                key = (tuple(d for d, _ in sub), tuple(m for _, m in sub))
                covered[key] = covered.get(key, 0.0) + own
    for (dims, members), value in covered.items():
        if value > MAX_PARENT_SHARE * marg.of(dims)[members]:
            return False
    return True


def draw_cause(rng: random.Random, n_dims: int, depth: int, taken: list[Element],
               marg: Marginals) -> list[Element] | None:
    """Draw the 1-3 elements of one cause at `depth`, or None if it cannot be placed.

    All elements of a cause share one cuboid (a random set of `depth` dims).
    Candidates cover >= MIN_ELEMENT_SHARE of the total baseline (so the change
    is visible even on noisy leaves) and do not overlap any element already
    taken by another cause (so no leaf is under two elements and no element is
    a parent or child of another).
    """
    for _attempt in range(200):
        cuboid = tuple(sorted(rng.sample(range(n_dims), depth)))
        n_elements = rng.randint(1, 3)
        candidates = []
        for members, value in marg.of(cuboid).items():
            e = tuple(zip(cuboid, members))
            if value >= MIN_ELEMENT_SHARE * marg.total and not any(overlaps(e, t) for t in taken):
                candidates.append(e)
        if len(candidates) < n_elements:
            continue
        for _try in range(20):
            picked = rng.sample(candidates, n_elements)
            if parents_ok(taken + picked, marg):
                return sorted(picked)
    return None


def cause_plan(rng: random.Random, group: str) -> list[tuple[int, int]]:
    """[(depth, direction)] of the causes of a case of `group` (direction +1 / -1)."""
    if group in ("add_d1", "add_d2", "add_d3"):
        return [(int(group[-1]), rng.choice([1, -1]))]
    if group == "add_multi":
        # 2-3 causes, same direction, "mixed" depths: at least two distinct ones.
        n = rng.randint(2, 3)
        while True:
            depths = [rng.randint(1, 3) for _ in range(n)]
            if len(set(depths)) >= 2:
                break
        direction = rng.choice([1, -1])
        return [(d, direction) for d in depths]
    if group == "add_updown":
        directions = [1, -1]
        rng.shuffle(directions)
        return [(rng.randint(1, 3), s) for s in directions]
    if group in ("ratio", "noisy"):
        return [(rng.randint(1, 3), rng.choice([1, -1])) for _ in range(rng.randint(1, 2))]
    raise ValueError(f"unknown group {group!r}")


# --- one case -----------------------------------------------------------------


def fmt(v: float) -> str:
    """6 significant digits, always with a '.' or an exponent so DuckDB's CSV
    sniffer types the column DOUBLE even when a sample holds only whole numbers."""
    s = "%.6g" % v
    if "." not in s and "e" not in s:
        s += ".0"
    return s


def build_case(rng: random.Random, group: str) -> dict:
    """Draw one case: cube, periods, causes. Returns an in-memory description."""
    kind = "ratio" if group == "ratio" else "additive"
    sigma = rng.uniform(*(SIGMA_NOISY if group == "noisy" else SIGMA_NORMAL))
    plan = cause_plan(rng, group)
    while True:  # re-draw the cube in the (rare) case the causes cannot be placed
        dims, cards = draw_cube(rng)
        leaves = list(itertools.product(*(range(c) for c in cards)))
        base = draw_baseline(rng, cards)  # additive: value; ratio: den (sessions)
        rates = [rng.uniform(*RATE) for _ in leaves] if kind == "ratio" else None
        # Visibility and parent shares are judged on what the cause multiplies:
        # the value (additive) or the numerator (ratio).
        weights = base if rates is None else [d * r for d, r in zip(base, rates)]
        marg = Marginals(leaves, weights)
        taken: list[Element] = []
        injected = []
        for depth, direction in plan:
            elements = draw_cause(rng, len(dims), depth, taken, marg)
            if elements is None:
                break
            magnitude = rng.uniform(*MAGNITUDE)
            delta = magnitude if direction > 0 else -magnitude
            taken += elements
            injected.append({"depth": depth, "delta": delta, "elements": elements})
        else:
            break
    trend = rng.uniform(*TREND)

    # Multiplier of each leaf from the causes (elements are disjoint).
    factor = [1.0] * len(leaves)
    for cause in injected:
        for e in cause["elements"]:
            for i, leaf in enumerate(leaves):
                if all(leaf[d] == m for d, m in e):
                    factor[i] = 1.0 + cause["delta"]

    if kind == "additive":
        cur = [b * trend * noise(rng, sigma) * f for b, f in zip(base, factor)]
        columns = {"value": (base, cur)}
    else:
        # den gets trend + noise only; the causes multiply the rate, i.e. num.
        den_cur = [d * trend * noise(rng, sigma) for d in base]
        num_base = weights
        num_cur = [dc * r * noise(rng, sigma) * f
                   for dc, r, f in zip(den_cur, rates, factor)]
        columns = {"num": (num_base, num_cur), "den": (base, den_cur)}

    def named(e: Element) -> dict[str, str]:
        return {dims[d]: f"{dims[d]}{m + 1}" for d, m in e}

    return {
        "group": group,
        "kind": kind,
        "dims": dims,
        "cards": cards,
        "trend": trend,
        "sigma": sigma,
        "leaves": leaves,
        "columns": columns,
        "causes": [named(e) for e in taken],
        "injected": [{"cuboid": [dims[d] for d, _ in c["elements"][0]],
                      "delta": c["delta"],
                      "elements": [named(e) for e in c["elements"]]} for c in injected],
    }


def bench_yml(kind: str, dims: list[str]) -> str:
    """models/bench.yml: the source, the metrics and the KPI `bench_kpi`."""
    dim_list = ", ".join(dims)
    source = (
        "sources:\n"
        "  - name: leaves\n"
        "    path: data/leaves.csv\n"
        "    time: day\n"
        f"    dimensions: [{dim_list}]\n"
    )
    if kind == "additive":
        metrics = (
            "metrics:\n"
            "  - name: total\n"
            "    source: leaves\n"
            "    measure: sum(value)\n"
        )
        metric = "total"
    else:
        metrics = (
            "metrics:\n"
            "  - name: num_total\n"
            "    source: leaves\n"
            "    measure: sum(num)\n"
            "  - name: den_total\n"
            "    source: leaves\n"
            "    measure: sum(den)\n"
            "  - name: rate\n"
            "    expr: num_total / den_total\n"
        )
        metric = "rate"
    kpis = (
        "kpis:\n"
        "  - name: bench_kpi\n"
        f"    metric: {metric}\n"
        "    grain: month\n"
        f"    breakdowns: [{dim_list}]\n"
    )
    return source + metrics + kpis


def write_case(case: dict, case_dir: Path) -> None:
    """Write the kpic project and truth.json of one case."""
    (case_dir / "models").mkdir(parents=True, exist_ok=True)
    (case_dir / "data").mkdir(parents=True, exist_ok=True)
    (case_dir / "kpic.yml").write_text(KPIC_YML)
    (case_dir / "models" / "bench.yml").write_text(bench_yml(case["kind"], case["dims"]))

    dims, cards = case["dims"], case["cards"]
    names = [[f"{d}{m + 1}" for m in range(c)] for d, c in zip(dims, cards)]
    measures = list(case["columns"])
    lines = [",".join(["day", *dims, *measures])]
    for period, day in ((0, BASELINE_DAY), (1, CURRENT_DAY)):
        cols = [case["columns"][m][period] for m in measures]
        for i, leaf in enumerate(case["leaves"]):
            keys = ",".join(names[d][m] for d, m in enumerate(leaf))
            vals = ",".join(fmt(col[i]) for col in cols)
            lines.append(f"{day},{keys},{vals}")
    (case_dir / "data" / "leaves.csv").write_text("\n".join(lines) + "\n")

    truth = {k: case[k] for k in ("group", "kind", "dims", "causes", "cards",
                                  "trend", "sigma", "injected")}
    (case_dir / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")


def case_rng(seed: int, group: str, index: int) -> random.Random:
    """An independent, reproducible stream per case (str seeds hash with SHA-512,
    so this does not depend on PYTHONHASHSEED)."""
    return random.Random(f"kpic-bench/{seed}/{group}/{index}")


def clear_group_dir(group_dir: Path) -> None:
    """Remove a previous run's cases of a group, but only if it looks like one
    (every entry is a case dir with truth.json): never delete foreign data."""
    if not group_dir.is_dir():
        return
    entries = list(group_dir.iterdir())
    if all(p.is_dir() and (p / "truth.json").is_file() for p in entries):
        shutil.rmtree(group_dir)
    else:
        sys.exit(f"error: {group_dir} exists and is not a benchmark group dir; "
                 "choose another --out")


def generate(out: Path, seed: int = 7, cases_per_group: int = 10) -> list[Path]:
    """Generate every group's cases under `out`; return the case dirs in order."""
    out.mkdir(parents=True, exist_ok=True)
    case_dirs = []
    for group in GROUPS:
        clear_group_dir(out / group)
        for i in range(cases_per_group):
            case = build_case(case_rng(seed, group, i), group)
            case_dir = out / group / f"{group}_{i:02d}"
            write_case(case, case_dir)
            case_dirs.append(case_dir)
    manifest = {
        "seed": seed,
        "cases_per_group": cases_per_group,
        "groups": GROUPS,
        "cases": [str(p.relative_to(out)) for p in case_dirs],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return case_dirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cases-per-group", type=int, default=10)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    dirs = generate(args.out, args.seed, args.cases_per_group)
    print(f"wrote {len(dirs)} cases ({len(GROUPS)} groups x {args.cases_per_group}) "
          f"to {args.out} in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
