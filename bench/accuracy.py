#!/usr/bin/env python3
"""Accuracy benchmark of `kpic explain` root-cause localization.

In:  python3 bench/accuracy.py [--kpic PATH] [--seed N] [--cases-per-group N]
                               [--keep DIR] [--json FILE] [--jobs N] [--timeout S]
                               [--self-test | --oracle | --dump-stats]
     Generates the semi-synthetic cases of generate_cases.py (into a temp dir,
     or DIR with --keep), runs on each
       KPIC --project CASE --quiet explain bench_kpi --period 2026-02 --vs previous --format json
     and scores `root_causes[].segment` against truth.json (score.py: exact
     element match, micro-averaged precision / recall / F1).
Out: a table per group (cases, precision, recall, F1, mean / max seconds per
     case), the overall line, and the goal check (overall F1 >= 0.85, noisy
     F1 >= 0.5: PASS/FAIL each). --json FILE also writes per-case results.
     Exit 0 whatever the scores; exit 1 if kpic failed on any case (non-zero
     exit, timeout or output that is not one JSON object with root_causes);
     such a case is scored as an empty prediction and the stderr of the first
     failures is printed.

Modes that do not need kpic:
  --self-test   checks the scorer on hand-made examples.
  --oracle      scores the truth against itself (F1 must be 1.0) and checks
                that every true element is present in leaves.csv and that the
                elements are pairwise disjoint: generator/scorer plumbing.
  --dump-stats  per case, each true element's share of the baseline and of
                the change, so one can see the cases are not degenerate.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.dont_write_bytecode = True  # keep bench/ free of __pycache__ in the repository

import cube  # noqa: E402  (bench/ is not a package; imported from this dir)
import generate_cases  # noqa: E402
from score import as_item, pooled, prf, score_case  # noqa: E402

GOALS = [("overall", 0.85), ("noisy", 0.5)]
SHOW_FAILURES = 3  # stderr of the first few failing cases is printed


# --- locating and running kpic ---------------------------------------------------


def default_kpic() -> Path | None:
    """$CARGO_TARGET_DIR/release/kpic, ~/.cache/kpic-target/release/kpic, or
    target/release/kpic of the repository, the first that exists."""
    candidates = []
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "kpic")
    candidates.append(Path.home() / ".cache" / "kpic-target" / "release" / "kpic")
    candidates.append(BENCH_DIR.parent / "target" / "release" / "kpic")
    return next((p for p in candidates if p.is_file()), None)


def explain_command(kpic: Path, case_dir: Path, extra: list[str]) -> list[str]:
    """The exact command run on each case."""
    return [str(kpic), "--project", str(case_dir), "--quiet", "explain", "bench_kpi",
            "--period", "2026-02", "--vs", "previous", "--format", "json", *extra]


def parse_output(stdout: str) -> list[dict]:
    """The root causes' segments from `explain --format json` stdout.

    SPEC section 6: stdout is exactly one JSON object; root_causes[].segment
    is an object {dimension: member} (member may be null). Raises ValueError
    on anything else, so that malformed output is a case error, not a miss.
    """
    try:
        doc = json.loads(stdout)
    except json.JSONDecodeError as e:
        raise ValueError(f"stdout is not one JSON object: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError("stdout JSON is not an object")
    causes = doc.get("root_causes")
    if not isinstance(causes, list):
        raise ValueError("no `root_causes` list in the output")
    segments = []
    for rc in causes:
        seg = rc.get("segment") if isinstance(rc, dict) else None
        if not isinstance(seg, dict):
            raise ValueError(f"root cause without a `segment` object: {rc!r}")
        segments.append(seg)
    return segments


def run_case(kpic: Path, case_dir: Path, timeout: float, extra: list[str]) -> dict:
    """Run explain on one case; returns predicted segments, seconds, and error."""
    cmd = explain_command(kpic, case_dir, extra)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return {"predicted": [], "seconds": time.perf_counter() - t0,
                "error": f"timed out after {timeout:g}s", "stderr": stderr}
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"predicted": [], "seconds": seconds,
                "error": f"exit code {proc.returncode}", "stderr": proc.stderr}
    try:
        predicted = parse_output(proc.stdout)
    except ValueError as e:
        return {"predicted": [], "seconds": seconds, "error": str(e),
                "stderr": proc.stderr + "\n--- stdout (start) ---\n" + proc.stdout[:1000]}
    return {"predicted": predicted, "seconds": seconds, "error": None, "stderr": proc.stderr}


# --- cases ------------------------------------------------------------------------


def load_truth(case_dir: Path) -> dict:
    return json.loads((case_dir / "truth.json").read_text())


def generated_cases(args: argparse.Namespace, workdir: Path) -> list[Path]:
    """Generate the cases (printing how long it took) and return their dirs."""
    t0 = time.perf_counter()
    dirs = generate_cases.generate(workdir, args.seed, args.cases_per_group)
    print(f"generated {len(dirs)} cases (seed {args.seed}, {args.cases_per_group} per group) "
          f"in {workdir} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return dirs


# --- reporting ----------------------------------------------------------------------


def summarize(results: list[dict]) -> dict:
    """Per-group and overall micro P/R/F1 and timings from per-case results."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["group"], []).append(r)
    summary = {}
    for name, rs in [*groups.items(), ("overall", results)]:
        p, rec, f1 = pooled((r["tp"], r["fp"], r["fn"]) for r in rs)
        secs = [r["seconds"] for r in rs if r["seconds"] is not None]
        summary[name] = {
            "cases": len(rs), "precision": p, "recall": rec, "f1": f1,
            "tp": sum(r["tp"] for r in rs), "fp": sum(r["fp"] for r in rs),
            "fn": sum(r["fn"] for r in rs),
            "errors": sum(1 for r in rs if r.get("error")),
            "mean_seconds": statistics.fmean(secs) if secs else None,
            "max_seconds": max(secs) if secs else None,
        }
    return summary


def print_table(summary: dict) -> None:
    """The results table, then the goal check."""
    head = f"{'group':<12}{'cases':>6}{'precision':>11}{'recall':>8}{'F1':>7}" \
           f"{'mean s':>9}{'max s':>8}{'errors':>8}"
    print(head)
    print("-" * len(head))
    for name, s in summary.items():
        if name == "overall":
            print("-" * len(head))
        mean = f"{s['mean_seconds']:.2f}" if s["mean_seconds"] is not None else "-"
        mx = f"{s['max_seconds']:.2f}" if s["max_seconds"] is not None else "-"
        print(f"{name:<12}{s['cases']:>6}{s['precision']:>11.3f}{s['recall']:>8.3f}"
              f"{s['f1']:>7.3f}{mean:>9}{mx:>8}{s['errors']:>8}")
    print()
    print("goals:")
    for name, goal in GOALS:
        if name not in summary:
            print(f"  {name} F1 >= {goal}: no cases")
            continue
        f1 = summary[name]["f1"]
        print(f"  {name + ' F1':<12} >= {goal:<5} {f1:.3f}  {'PASS' if f1 >= goal else 'FAIL'}")


def fmt_elements(elements: list[dict]) -> str:
    return "; ".join(",".join(f"{k}={v}" for k, v in e.items()) for e in elements) or "(none)"


# --- modes ----------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace, case_dirs: list[Path]) -> int:
    """Run kpic on every case, print the table; 1 if kpic failed on a case."""
    kpic = args.kpic_path
    extra = shlex.split(args.kpic_args or "")
    print(f"kpic: {kpic}" + (f"  extra args: {extra}" if extra else ""), file=sys.stderr)

    truths = [load_truth(d) for d in case_dirs]

    def one(i: int) -> dict:
        out = run_case(kpic, case_dirs[i], args.timeout, extra)
        tp, fp, fn = score_case(truths[i]["causes"], out["predicted"])
        r = {"group": truths[i]["group"], "case": case_dirs[i].name,
             "truth": truths[i]["causes"], "predicted": out["predicted"],
             "tp": tp, "fp": fp, "fn": fn, "seconds": out["seconds"],
             "error": out["error"], "stderr": out["stderr"], "case_dir": case_dirs[i]}
        mark = f"ERROR {out['error']}" if out["error"] else f"tp={tp} fp={fp} fn={fn}"
        print(f"  {r['case']:<16} {out['seconds']:7.2f}s  {mark}", file=sys.stderr, flush=True)
        return r

    # Cases are independent; --jobs > 1 trades timing fidelity for wall clock.
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, range(len(case_dirs))))

    summary = summarize(results)
    print()
    print_table(summary)

    if args.json:
        doc = {"kpic": str(kpic), "seed": args.seed, "cases_per_group": args.cases_per_group,
               "summary": summary,
               "cases": [{k: r[k] for k in ("group", "case", "truth", "predicted", "tp", "fp",
                                            "fn", "seconds", "error")} for r in results]}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nper-case results: {args.json}")

    failures = [r for r in results if r["error"]]
    if failures:
        print(f"\n{len(failures)} case(s) failed (scored as empty predictions):", file=sys.stderr)
        for r in failures[:SHOW_FAILURES]:
            print(f"--- {r['group']}/{r['case']}: {r['error']}", file=sys.stderr)
            print("$ " + shlex.join(explain_command(kpic, r["case_dir"], extra)), file=sys.stderr)
            print((r["stderr"] or "(no stderr)").strip()[:3000], file=sys.stderr)
        if not args.keep:
            print("(the cases were in a temp dir; rerun with --keep DIR to inspect them)",
                  file=sys.stderr)
        return 1
    return 0


def run_oracle(case_dirs: list[Path]) -> int:
    """Score truth against truth, and check the truth against the data files."""
    results, problems = [], []
    for d in case_dirs:
        truth = load_truth(d)
        tp, fp, fn = score_case(truth["causes"], truth["causes"])
        results.append({"group": truth["group"], "case": d.name, "tp": tp, "fp": fp,
                        "fn": fn, "seconds": None})
        items = [as_item(e) for e in truth["causes"]]
        if len(set(items)) != len(items) or not items:
            problems.append(f"{d.name}: empty or duplicate true elements")
        # Pairwise disjoint: some shared dimension with different members.
        for i, x in enumerate(truth["causes"]):
            for y in truth["causes"][i + 1:]:
                if all(y.get(k, v) == v for k, v in x.items()):
                    problems.append(f"{d.name}: {x} and {y} overlap")
        sums = cube.segment_sums(d, truth["causes"])
        key = "num" if sums["kind"] == "ratio" else "value"
        for e, s in zip(truth["causes"], sums["segments"]):
            if s["baseline"][key] <= 0:
                problems.append(f"{d.name}: {e} has no baseline value in leaves.csv")
    summary = summarize(results)
    print_table(summary)
    for p in problems:
        print(f"problem: {p}")
    ok = summary["overall"]["f1"] == 1.0 and not problems
    print(f"\noracle: {'OK' if ok else 'FAILED'} (F1 {summary['overall']['f1']:.3f}, "
          f"{len(problems)} data problems)")
    return 0 if ok else 1


def element_stats(d: Path, truth: dict) -> dict:
    """Shares of each true element in one case, read back from leaves.csv.

    Per element:
    base_share   element baseline / total baseline (value, or num for ratio)
    change_share the element's part of the KPI change (additive: its change /
                 the total change; ratio: the change of the overall rate if
                 only this element had moved / the actual rate change)
    impact       additive: its change beyond the injected global trend, as a
                 share of the total baseline (what a search must detect);
                 ratio: the overall rate change if only it had moved / rate
    seen_delta   the element's observed growth relative to the rest of the
                 cube (everything outside the truth) minus 1: ~ the injected delta
    Per case: change_pct (KPI), explained (share of the KPI change the truth
    accounts for), and for additive cases explained_excess (share of the
    change beyond the trend) and noise (sum over leaves outside the truth of
    |change beyond the trend| / total baseline: the noise a search wades through).
    """
    dims, measures, days, rows = cube.read_leaves(d)
    conds = [[(dims.index(k), v) for k, v in e.items()] for e in truth["causes"]]
    n = len(measures)
    tot = [0.0] * (2 * n)
    sums = [[0.0] * (2 * n) for _ in conds]
    # Leaf rows of the two periods pair up by their members.
    leaf0: dict[tuple, tuple] = {}
    leaf1: dict[tuple, tuple] = {}
    for day, members, values in rows:
        first = day == days[0]
        (leaf0 if first else leaf1)[members] = values
        off = 0 if first else n
        for j, v in enumerate(values):
            tot[off + j] += v
        for k, c in enumerate(conds):
            if all(members[i] == m for i, m in c):
                for j, v in enumerate(values):
                    sums[k][off + j] += v
                break  # true elements are disjoint
    out: dict = {"elements": []}
    if n == 1:
        t0, t1, g = tot[0], tot[1], truth["trend"]
        in0 = sum(s[0] for s in sums)
        in1 = sum(s[1] for s in sums)
        rest = (t1 - in1) / (t0 - in0)
        for e, (b, c) in zip(truth["causes"], sums):
            out["elements"].append({
                "element": e, "base_share": b / t0, "change_share": (c - b) / (t1 - t0),
                "impact": (c - g * b) / t0, "seen_delta": c / b / rest - 1})
        inside = lambda m: any(all(m[i] == v for i, v in c) for c in conds)  # noqa: E731
        noise = sum(abs(leaf1[m][0] - g * v[0]) for m, v in leaf0.items() if not inside(m))
        out.update(change_pct=t1 / t0 - 1, explained=(in1 - in0) / (t1 - t0),
                   explained_excess=(in1 - g * in0) / (t1 - g * t0), noise=noise / t0)
    else:
        n0, d0, n1, d1 = tot
        r0, r1 = n0 / d0, n1 / d1
        i_n0, i_d0, i_n1, i_d1 = (sum(s[j] for s in sums) for j in range(4))
        rest = ((n1 - i_n1) / (d1 - i_d1)) / ((n0 - i_n0) / (d0 - i_d0))
        for e, (bn, bd, cn, cd) in zip(truth["causes"], sums):
            alone = (n0 + cn - bn) / (d0 + cd - bd) - r0
            out["elements"].append({
                "element": e, "base_share": bn / n0, "change_share": alone / (r1 - r0),
                "impact": alone / r0, "seen_delta": (cn / cd) / (bn / bd) / rest - 1})
        out.update(change_pct=r1 / r0 - 1,
                   explained=((n0 + i_n1 - i_n0) / (d0 + i_d1 - i_d0) - r0) / (r1 - r0),
                   explained_excess=None, noise=None)
    return out


def run_dump_stats(case_dirs: list[Path]) -> int:
    """Print per-case, per-element shares, then a per-group summary."""
    per_group: dict[str, list[dict]] = {}
    for d in case_dirs:
        truth = load_truth(d)
        st = element_stats(d, truth)
        leaves = 1
        for c in truth["cards"]:
            leaves *= c
        st.update(leaves=leaves, n_elements=len(truth["causes"]))
        per_group.setdefault(truth["group"], []).append(st)
        deltas = {json.dumps(e, sort_keys=True): c["delta"]
                  for c in truth["injected"] for e in c["elements"]}
        cards = "x".join(str(c) for c in truth["cards"])
        extra = "" if st["noise"] is None else (
            f", {st['explained_excess']:.0%} of change beyond trend; noise {st['noise']:.1%}")
        print(f"{d.name:<14} {truth['kind']:<8} cube {cards} ({leaves} leaves) "
              f"trend {truth['trend']:.3f} sigma {truth['sigma']:.3f} "
              f"KPI change {st['change_pct']:+.1%}; truth explains {st['explained']:.0%} "
              f"of change{extra}")
        for el in st["elements"]:
            delta = deltas[json.dumps(el["element"], sort_keys=True)]
            print(f"    {fmt_elements([el['element']]):<18} delta {delta:+.2f} "
                  f"seen {el['seen_delta']:+.2f}  base {el['base_share']:6.1%}  "
                  f"change {el['change_share']:7.1%}  impact {el['impact']:+6.1%}")
    print()
    print("impact: the element's change beyond the trend / total baseline (ratio: overall rate")
    print("change if only it moved / rate); noise: sum of |change beyond trend| of all other")
    print("leaves / total baseline. Medians per group:")
    head = (f"{'group':<12}{'cases':>6}{'leaves':>8}{'min..max':>13}{'elems':>7}"
            f"{'min base':>10}{'|impact|':>10}{'explained':>11}{'beyond-trend':>14}{'noise':>7}")
    print(head)
    print("-" * len(head))
    for g, sts in per_group.items():
        leaves = [s["leaves"] for s in sts]
        els = [e for s in sts for e in s["elements"]]
        exc = [s["explained_excess"] for s in sts if s["explained_excess"] is not None]
        noise = [s["noise"] for s in sts if s["noise"] is not None]
        print(f"{g:<12}{len(sts):>6}{statistics.median(leaves):>8.0f}"
              f"{f'{min(leaves)}..{max(leaves)}':>13}"
              f"{statistics.fmean(s['n_elements'] for s in sts):>7.1f}"
              f"{min(e['base_share'] for e in els):>10.1%}"
              f"{statistics.median(abs(e['impact']) for e in els):>10.1%}"
              f"{statistics.median(s['explained'] for s in sts):>11.0%}"
              f"{(f'{statistics.median(exc):.0%}' if exc else '-'):>14}"
              f"{(f'{statistics.median(noise):.1%}' if noise else '-'):>7}")
    return 0


def self_test() -> int:
    """Check the scorer and the output parser on hand-made examples."""
    checks = 0

    def check(cond: bool, what: str) -> None:
        nonlocal checks
        if not cond:
            raise AssertionError(f"self-test failed: {what}")
        checks += 1

    t = [{"a": "a3", "c": "c1"}]
    check(score_case(t, [{"a": "a3", "c": "c1"}]) == (1, 0, 0), "exact match counts")
    check(score_case(t, [{"c": "c1", "a": "a3"}]) == (1, 0, 0), "pair order does not matter")
    check(score_case(t, [{"a": "a3"}]) == (0, 1, 1), "a parent does not count")
    check(score_case(t, [{"a": "a3", "b": "b1", "c": "c1"}]) == (0, 1, 1), "a child does not count")
    check(score_case(t, [{"a": "a3", "c": "c2"}]) == (0, 1, 1), "a sibling does not count")
    check(score_case(t, []) == (0, 0, 1), "empty prediction: one miss")
    check(prf(0, 0, 1) == (0.0, 0.0, 0.0), "empty prediction: precision 0, recall 0, F1 0")
    check(score_case(t, [{"a": "a3", "c": "c1"}, {"c": "c1", "a": "a3"}]) == (1, 0, 0),
          "duplicate predictions count once")
    check(score_case([{"a": "None"}], [{"a": None}]) == (0, 1, 1), "JSON null is not the text None")
    check(score_case([{"a": "a1"}], [{}]) == (0, 1, 1), "the total {} is a wrong prediction")
    two = [{"a": "a1"}, {"b": "b2", "d": "d1"}]
    check(score_case(two, [{"a": "a1"}, {"b": "b2"}]) == (1, 1, 1), "one right, one parent")
    check(prf(1, 1, 1) == (0.5, 0.5, 0.5), "P = R = F1 = 0.5")
    p, r, f = prf(2, 0, 1)
    check(p == 1.0 and abs(r - 2 / 3) < 1e-12 and abs(f - 0.8) < 1e-12, "P 1, R 2/3, F1 0.8")
    check(pooled([(1, 0, 0), (0, 1, 1)]) == (0.5, 0.5, 0.5), "micro average pools counts")
    check(pooled([(0, 0, 1), (1, 0, 0)]) == (1.0, 0.5, 2 / 3), "an empty case lowers recall only")

    doc = {"kpi": "bench_kpi", "root_causes": [
        {"segment": {"a": "a3", "c": "c1"}, "change": -1.0},
        {"segment": {"b": None}, "change": -0.5}]}
    check(parse_output(json.dumps(doc)) == [{"a": "a3", "c": "c1"}, {"b": None}],
          "parse root_causes[].segment, null member")
    check(parse_output('{"root_causes": []}') == [], "no root causes parses as empty")
    for bad in ["", "not json", "[]", '{"kpi": "x"}', '{"root_causes": [{"x": 1}]}',
                '{"root_causes": []}\n{"root_causes": []}']:
        try:
            parse_output(bad)
        except ValueError:
            checks += 1
        else:
            raise AssertionError(f"self-test failed: {bad!r} should not parse")

    # The generator's overlap rule (used to keep true elements disjoint).
    check(generate_cases.overlaps(((0, 1),), ((1, 2),)), "{a1} and {b2} overlap")
    check(not generate_cases.overlaps(((0, 1), (1, 1)), ((0, 2),)), "{a1,b1} and {a2} are disjoint")
    check(generate_cases.overlaps(((0, 1),), ((0, 1), (2, 0))), "parent and child overlap")
    print(f"self-test: {checks} checks passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Accuracy benchmark of `kpic explain` on semi-synthetic cases.")
    parser.add_argument("--kpic", help="kpic binary (default: the release build)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cases-per-group", type=int, default=10)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="generate the cases into DIR and keep them (default: a temp dir)")
    parser.add_argument("--json", metavar="FILE", help="write per-case results as JSON")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cases run in parallel (default 1: undisturbed timings)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds per kpic call before it counts as failed")
    parser.add_argument("--kpic-args", metavar="ARGS",
                        help="extra arguments appended to the explain command, e.g. '--top 10'")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--self-test", action="store_true", help="test the scorer, no kpic")
    mode.add_argument("--oracle", action="store_true", help="score the truth against itself")
    mode.add_argument("--dump-stats", action="store_true", help="print per-case truth shares")
    args = parser.parse_args(argv)

    if args.self_test:
        return self_test()
    if not (args.oracle or args.dump_stats):
        # Find kpic before spending time on generating cases.
        args.kpic_path = Path(args.kpic) if args.kpic else default_kpic()
        if args.kpic_path is None or not args.kpic_path.is_file():
            where = args.kpic or ("none of $CARGO_TARGET_DIR/release/kpic, "
                                  "~/.cache/kpic-target/release/kpic, target/release/kpic exists")
            print(f"error: no kpic binary ({where}); build it with `cargo build --release` "
                  "(or pass --kpic PATH)", file=sys.stderr)
            return 2

    if args.keep:
        return dispatch(args, generated_cases(args, args.keep))
    with tempfile.TemporaryDirectory(prefix="kpic-bench-") as tmp:
        return dispatch(args, generated_cases(args, Path(tmp)))


def dispatch(args: argparse.Namespace, case_dirs: list[Path]) -> int:
    if args.oracle:
        return run_oracle(case_dirs)
    if args.dump_stats:
        return run_dump_stats(case_dirs)
    return run_benchmark(args, case_dirs)


if __name__ == "__main__":
    sys.exit(main())
