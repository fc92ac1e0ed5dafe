#!/usr/bin/env python3
"""Compile-time benchmark, kpic vs MetricFlow (bench/README.md, "MetricFlow").

    python3 bench/metricflow/compile_bench.py --projects DIR --venv VENV --kpic KPIC \
        [--inproc EXAMPLE] [--metrics 10,30,100,300,1000] [--repeat 3] [--json FILE]

DIR is generate.py's output (compile/n<N>/{kpic,dbt,metrics.txt}); VENV the
virtualenv of setup.sh. For each N, after checks (every kpic dialect
compiles, every metric appears in kpic's SQL and in MetricFlow's), R rounds
(medians reported) of:

  kpic CLI        `kpic --project P --quiet compile --dialect D --out TMP` for
                  each of kpic's 8 dialects, each a process (start, load and
                  check the project, plan, SQL, write 6 files)
  kpic in process `metricflow_exec --compile-inproc P` (examples/metricflow_exec.rs):
                  load once, then plan + SQL text for the 8 dialects, in one process
  dbt parse       `dbt parse` from scratch (no partial parse): MetricFlow's
                  YAML -> semantic_manifest.json
  MF in process   mf_explain.py: MetricFlowEngine.explain() for all metrics
                  grouped by metric_time__month, per dialect (its 7 of kpic's
                  8: no ClickHouse), import and startup excluded
  mf CLI          `mf query --metrics ... --group-by metric_time__month
                  --explain --quiet` (DuckDB), wall clock, process start
                  and `dbt debug` included

MetricFlow gets slow with many metrics (minutes at 1000), so above
--mf-rounds-max metrics it runs 1 round, and above --mf-dialects-max only
DuckDB (its other dialects are estimated from DuckDB's time and the ratio
measured at the largest N where all were run; the table says so).

Python standard library only; the venv is used through subprocesses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KPIC_DIALECTS = ["duckdb", "postgres", "snowflake", "bigquery", "databricks", "redshift", "trino", "clickhouse"]
MF_DIALECTS = ["duckdb", "postgres", "snowflake", "bigquery", "databricks", "redshift", "trino"]
GOAL = 100.0
LINEAR = 1.5
HERE = Path(__file__).resolve().parent


def run(cmd, cwd=None, timeout=None, env=None):
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(
            f"failed ({p.returncode}): {' '.join(map(str, cmd))[:300]}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
        )
    return dt, p.stdout


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def kpic_cli_round(kpic, proj, out):
    per = {}
    for d in KPIC_DIALECTS:
        dt, _ = run([kpic, "--project", proj, "--quiet", "compile", "--dialect", d, "--out", out])
        per[d] = dt
    return per


def kpic_all_round(kpic, proj, out):
    """`kpic compile --dialect all`: the 8 dialects in one process, in parallel."""
    dt, _ = run([kpic, "--project", proj, "--quiet", "compile", "--dialect", "all", "--out", out])
    return dt


def check_kpic(proj: Path, out: Path, metrics):
    for d in KPIC_DIALECTS:
        files = sorted(p.name for p in (out / d).glob("*.sql"))
        # five output tables, the kpi_scorecard view and build.sql
        if len(files) != 7:
            raise SystemExit(f"kpic compile --dialect {d}: {len(files)} files in {out / d}: {files}")
    sql = (out / "duckdb" / "kpi_metrics.sql").read_text()
    missing = [m for m in metrics if f"'{m}'" not in sql]
    if missing:
        raise SystemExit(f"kpic's kpi_metrics.sql lacks {len(missing)} metrics, e.g. {missing[:5]}")
    return sum((out / "duckdb" / f).stat().st_size for f in os.listdir(out / "duckdb"))


def dbt_parse(venv, dbt_dir):
    shutil.rmtree(dbt_dir / "target", ignore_errors=True)
    dt, _ = run([venv / "bin" / "dbt", "parse", "--quiet", "--profiles-dir", dbt_dir, "--project-dir", dbt_dir], cwd=dbt_dir)
    if not (dbt_dir / "target" / "semantic_manifest.json").is_file():
        raise SystemExit(f"dbt parse wrote no semantic_manifest.json in {dbt_dir}")
    return dt


def mf_inproc(venv, dbt_dir, metrics_file, dialects, sql_out, timeout):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [
            venv / "bin" / "python",
            HERE / "mf_explain.py",
            "--project",
            dbt_dir,
            "--metrics-file",
            metrics_file,
            "--dialects",
            ",".join(dialects),
            "--json",
            f.name,
        ]
        if sql_out:
            cmd += ["--sql-out", sql_out]
        wall, _ = run(cmd, timeout=timeout)
        res = json.loads(Path(f.name).read_text())
    res["wall"] = wall
    return res


def mf_cli(venv, dbt_dir, metrics, timeout):
    dt, out = run(
        [
            venv / "bin" / "mf",
            "query",
            "--metrics",
            ",".join(metrics),
            "--group-by",
            "metric_time__month",
            "--explain",
            "--quiet",
        ],
        cwd=dbt_dir,
        timeout=timeout,
        env={**os.environ, "DBT_PROFILES_DIR": str(dbt_dir)},
    )
    return dt, len(out)


def check_mf_sql(sql_file: Path, metrics):
    sql = sql_file.read_text()
    aliases = set(re.findall(r"\bAS (\w+)", sql))
    missing = [m for m in metrics if m not in aliases]
    if missing:
        raise SystemExit(f"MetricFlow's SQL ({sql_file}) lacks {len(missing)} metrics, e.g. {missing[:5]}")
    return len(sql)


def fit(ns, ts):
    """Least squares t = a + b n, and R²."""
    n = len(ns)
    mx, my = sum(ns) / n, sum(ts) / n
    sxx = sum((x - mx) ** 2 for x in ns)
    sxy = sum((x - mx) * (y - my) for x, y in zip(ns, ts))
    b = sxy / sxx if sxx else float("nan")
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ts)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(ns, ts))
    r2 = 1 - ss_res / ss_tot if ss_tot else float("nan")
    return a, b, r2


def linearity(label, ns, ts):
    """Per-metric time at the largest N over that at 100 (or the nearest N),
    and the marginal cost per metric of the last step over the one before."""
    pts = dict(zip(ns, ts))
    lines = []
    big = max(ns)
    ref = 100 if 100 in pts and big > 100 else sorted(ns)[0]
    if big != ref:
        per_big, per_ref = pts[big] / big, pts[ref] / ref
        r = per_big / per_ref
        lines.append(
            f"  {label}: per metric {per_ref * 1e3:.3f} ms at {ref}, {per_big * 1e3:.3f} ms at {big}: "
            f"ratio {r:.2f} -> {'linear (PASS)' if r <= LINEAR else 'superlinear (FAIL)'}"
        )
    s = sorted(ns)
    if len(s) >= 3:
        n0, n1, n2 = s[-3], s[-2], s[-1]
        m1 = (pts[n1] - pts[n0]) / (n1 - n0)
        m2 = (pts[n2] - pts[n1]) / (n2 - n1)
        r = m2 / m1 if m1 > 0 else float("inf")
        lines.append(
            f"  {label}: marginal cost per metric {m1 * 1e3:.3f} ms ({n0}->{n1}), {m2 * 1e3:.3f} ms ({n1}->{n2}): "
            f"ratio {r:.2f} -> {'linear (PASS)' if r <= LINEAR else 'superlinear (FAIL)'}"
        )
    if len(s) >= 2:
        a, b, r2 = fit(ns, ts)
        lines.append(f"  {label}: fit t = {a:.3f} s + {b * 1e3:.3f} ms × N, R² = {r2:.4f}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--projects", required=True, type=Path)
    ap.add_argument("--venv", required=True, type=Path)
    ap.add_argument("--kpic", required=True, type=Path)
    ap.add_argument("--inproc", type=Path, help="examples/metricflow_exec binary (for kpic in process)")
    ap.add_argument("--metrics", default="10,30,100,300,1000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mf-rounds-max", type=int, default=100, help="above this many metrics, 1 MetricFlow round")
    ap.add_argument("--mf-dialects-max", type=int, default=300, help="above this many metrics, MetricFlow on DuckDB only")
    ap.add_argument("--mf-cli-max", type=int, default=1000, help="above this many metrics, no mf CLI run")
    ap.add_argument("--mf-timeout", type=float, default=3600)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sizes = [int(x) for x in args.metrics.split(",") if x]
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="kpic-mf-compile-"))
    dialect_factor = None  # MF all-dialects / DuckDB, from the largest N measured
    try:
        for n in sizes:
            root = args.projects / "compile" / f"n{n}"
            kp, dbt = root / "kpic", root / "dbt"
            metrics = (root / "metrics.txt").read_text().split()
            kpis = (kp / "models" / "kpis.yml").read_text().count("  - name: ")
            print(f"\n== {n} metrics, {kpis} KPIs ==", flush=True)
            out = tmp / f"n{n}"
            # checks (and warm-up)
            kpic_cli_round(args.kpic, kp, out)
            kpic_bytes = check_kpic(kp, out, metrics)
            r = dict(n=n, kpis=kpis, kpic_sql_bytes_duckdb=kpic_bytes)
            # kpic CLI
            rounds = []
            for i in range(args.repeat):
                per = kpic_cli_round(args.kpic, kp, out)
                rounds.append(per)
                print(f"  round {i + 1}: kpic CLI, 8 dialects {sum(per.values()):.3f} s", flush=True)
            r["kpic_cli_total"] = med([sum(p.values()) for p in rounds])
            r["kpic_cli_per_dialect"] = {d: med([p[d] for p in rounds]) for d in KPIC_DIALECTS}
            # kpic CLI, all dialects in one process
            all_out = tmp / f"n{n}-all"
            kpic_all_round(args.kpic, kp, all_out)
            check_kpic(kp, all_out, metrics)
            together = [kpic_all_round(args.kpic, kp, all_out) for _ in range(args.repeat)]
            r["kpic_all"] = med(together)
            print(f"  kpic compile --dialect all: {fmt(together)} s", flush=True)
            # kpic in process
            if args.inproc:
                _, o = run([args.inproc, "--compile-inproc", kp, "--repeat", str(args.repeat)])
                j = json.loads(o)
                r["kpic_inproc_total"] = med(j["total"])
                r["kpic_inproc_load"] = med(j["load"])
                print(f"  kpic in process, 8 dialects: {fmt(j['total'])} s (load {fmt(j['load'])})", flush=True)
            # dbt parse
            mf_rounds = args.repeat if n <= args.mf_rounds_max else 1
            parse = [dbt_parse(args.venv, dbt) for _ in range(mf_rounds)]
            r["dbt_parse"] = med(parse)
            print(f"  dbt parse: {fmt(parse)} s", flush=True)
            # MetricFlow in process
            dialects = MF_DIALECTS if n <= args.mf_dialects_max else ["duckdb"]
            res = []
            for i in range(mf_rounds):
                sql_out = root / "mf_duckdb.sql" if i == 0 else None
                x = mf_inproc(args.venv, dbt, root / "metrics.txt", dialects, sql_out, args.mf_timeout)
                res.append(x)
                print(
                    f"  round {i + 1}: MetricFlow explain in process: "
                    + ", ".join(f"{d} {x['explain'][d][0]:.3f}" for d in dialects)
                    + f" s (import {x['import']:.2f}, manifest+lookup {x['manifest'] + x['lookup']:.3f}, process {x['wall']:.2f})",
                    flush=True,
                )
            r["mf_sql_chars_duckdb"] = check_mf_sql(root / "mf_duckdb.sql", metrics)
            r["mf_duckdb"] = med([x["explain"]["duckdb"][0] for x in res])
            r["mf_startup"] = med([x["import"] + x["manifest"] + x["lookup"] for x in res])
            if len(dialects) == len(MF_DIALECTS):
                r["mf_all"] = med([sum(x["explain"][d][0] + x["engine"][d] for d in dialects) for x in res])
                r["mf_all_measured"] = True
                dialect_factor = r["mf_all"] / r["mf_duckdb"]
            else:
                factor = dialect_factor if dialect_factor else len(MF_DIALECTS)
                r["mf_all"] = r["mf_duckdb"] * factor
                r["mf_all_measured"] = False
                r["mf_all_factor"] = factor
            # MetricFlow CLI
            if n <= args.mf_cli_max:
                cli = [mf_cli(args.venv, dbt, metrics, args.mf_timeout)[0] for _ in range(mf_rounds)]
                r["mf_cli"] = med(cli)
                print(f"  mf query --explain (CLI, duckdb): {fmt(cli)} s", flush=True)
            rows.append(r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


def fmt(xs):
    return " ".join(f"{x:.3f}" for x in xs)


def report(rows, args):
    print("\nCompile time, seconds (medians). kpic: 8 dialects; MetricFlow: its 7 (no ClickHouse).")
    hdr = (
        f"{'metrics':>7} {'KPIs':>4} | {'kpic CLI 8d':>11} {'per d':>7} {'all':>7} {'in proc 8d':>10} | "
        f"{'dbt parse':>9} {'MF duckdb':>9} {'MF 7d':>9} {'mf CLI':>8} | {'7d/8d':>7} {'7d/all':>7} {'per d':>7} {'CLI/CLI':>7}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        per_d = r["kpic_cli_total"] / len(KPIC_DIALECTS)
        all_ratio = r["mf_all"] / r["kpic_cli_total"]
        together_ratio = r["mf_all"] / r["kpic_all"]
        per_ratio = r["mf_duckdb"] / r["kpic_cli_per_dialect"]["duckdb"]
        cli_ratio = (r["dbt_parse"] + r["mf_cli"]) / r["kpic_cli_per_dialect"]["duckdb"] if "mf_cli" in r else float("nan")
        r.update(ratio_all=all_ratio, ratio_together=together_ratio, ratio_per_dialect=per_ratio, ratio_cli=cli_ratio)
        mf_all = f"{r['mf_all']:.2f}" + ("" if r["mf_all_measured"] else "*")
        print(
            f"{r['n']:>7} {r['kpis']:>4} | {r['kpic_cli_total']:>11.3f} {per_d:>7.3f} {r['kpic_all']:>7.3f} "
            f"{r.get('kpic_inproc_total', float('nan')):>10.3f} | {r['dbt_parse']:>9.2f} {r['mf_duckdb']:>9.3f} "
            f"{mf_all:>9} {r.get('mf_cli', float('nan')):>8.2f} | {all_ratio:>7.1f} {together_ratio:>7.1f} "
            f"{per_ratio:>7.1f} {cli_ratio:>7.1f}"
        )
    print(
        "columns: 'per d' = kpic CLI's 8 dialects / 8; 'all' = kpic compile --dialect all (one process, parallel);\n"
        "         '7d/8d' = MetricFlow explain for its 7 dialects (in process) / kpic CLI for 8 (8 processes);\n"
        "         '7d/all' = the same / kpic compile --dialect all; 'per d' ratio = MetricFlow explain on DuckDB (in process) / kpic CLI compile for\n"
        "         DuckDB; 'CLI/CLI' = (dbt parse + mf query --explain) / kpic compile --dialect duckdb."
    )
    if any(not r["mf_all_measured"] for r in rows):
        f = next(r["mf_all_factor"] for r in rows if not r["mf_all_measured"])
        print(f"         * estimated: MetricFlow's DuckDB explain × {f:.2f} (7 dialects / DuckDB, measured at the largest N that ran all 7)")
    big = max(rows, key=lambda r: r["n"])
    print(f"\ngoal (≥ {GOAL:.0f}× faster, {big['n']} metrics, {big['kpis']} KPIs, all dialects):")
    for label, key in (
        ("all dialects (MF 7 in process / kpic compile --dialect all)", "ratio_together"),
        ("all dialects (MF 7 in process / kpic CLI 8 processes)", "ratio_all"),
        ("per dialect (MF DuckDB in process / kpic CLI DuckDB)", "ratio_per_dialect"),
        ("CLI vs CLI (dbt parse + mf query --explain / kpic compile)", "ratio_cli"),
    ):
        v = big[key]
        if not math.isnan(v):
            print(f"  {label:<62} {v:>7.1f}×  {'PASS' if v >= GOAL else 'FAIL'}")
    ns = [r["n"] for r in rows]
    if len(ns) >= 2:
        print(f"\nlinearity (per metric at {max(ns)} / at 100 ≤ {LINEAR} ⇒ linear):")
        for line in linearity("kpic CLI, DuckDB", ns, [r["kpic_cli_per_dialect"]["duckdb"] for r in rows]):
            print(line)
        for line in linearity("kpic CLI, 8 dialects", ns, [r["kpic_cli_total"] for r in rows]):
            print(line)
        for line in linearity("kpic compile --dialect all", ns, [r["kpic_all"] for r in rows]):
            print(line)
        if all("kpic_inproc_total" in r for r in rows):
            for line in linearity("kpic in process, 8 dialects", ns, [r["kpic_inproc_total"] for r in rows]):
                print(line)
        for line in linearity("MetricFlow explain, DuckDB (for reference)", ns, [r["mf_duckdb"] for r in rows]):
            print(line)


if __name__ == "__main__":
    sys.exit(main())
