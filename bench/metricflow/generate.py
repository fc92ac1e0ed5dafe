#!/usr/bin/env python3
"""Writes the projects of the MetricFlow benchmark (bench/README.md, "MetricFlow").

Every metric is defined twice, once for kpic and once for MetricFlow (a dbt
project with one semantic model), from the same table below, so both sides
compute the same numbers.

    python3 bench/metricflow/generate.py --out DIR [--metrics 10,30,100,300,1000]

writes

    DIR/compile/n<N>/kpic/   kpic project: N metrics, N/5 KPIs (month, breakdowns
                             channel and device; each KPI's metric plus 4 drivers,
                             so every metric is compiled), a 200-row CSV
    DIR/compile/n<N>/dbt/    dbt project: the same N metrics for MetricFlow
    DIR/compile/n<N>/metrics.txt   the N metric names, one a line
    DIR/exec/kpic/<set>/models/    the ~20 metrics of the execution benchmark, one
                                   KPI per metric (month, breakdowns [channel]); <set>
                                   is `all` or one metric kind (`kpic.yml` and the
                                   source's path are written by examples/metricflow_exec.rs
                                   per data size)
    DIR/exec/dbt/            dbt project with the same metrics
    DIR/exec/sets.json       {set: [metric names]}, the metrics of every set

Python 3.11 standard library only; deterministic (no randomness).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

CHANNELS = ["web", "app", "email", "search", "social"]
DEVICES = ["desktop", "mobile", "tablet"]
COUNTRIES = ["US", "DE", "FR", "GB", "ES", "IT", "NL", "SE", "PL", "JP"]
STATUSES = ["completed", "refunded", "cancelled"]
# The execution data's days (examples/metricflow_exec.rs writes the same
# range; MetricFlow's time spine covers exactly these days).
FIRST_DAY = "2024-01-01"
LAST_DAY = "2026-06-30"
DB_NAME = "mf_bench"  # dbt-duckdb names the database after the file: mf_bench.duckdb

# MetricFlow measures of the semantic model `orders`, and their kpic form.
MEASURES = {
    "amount_sum": ("sum", "amount", "sum(amount)"),
    "net_sum": ("sum", "amount - discount", "sum(amount - discount)"),
    "discount_sum": ("sum", "discount", "sum(discount)"),
    "order_count": ("sum", "1", "count(*)"),
    "customer_distinct": ("count_distinct", "customer_id", "count(distinct customer_id)"),
    "amount_avg": ("average", "amount", "avg(amount)"),
}

# kpic filter (SQL over the source's columns) -> MetricFlow filter (Jinja
# over the semantic model's dimensions). A filter is a list of
# (column, operator, value).


def kpic_filter(conds):
    parts = []
    for col, op, val in conds:
        v = f"'{val}'" if isinstance(val, str) else repr(val)
        parts.append(f"{col} {op} {v}")
    return " and ".join(parts)


def mf_filter(conds):
    parts = []
    for col, op, val in conds:
        v = f"'{val}'" if isinstance(val, str) else repr(val)
        parts.append(f"{{{{ Dimension('order__{col}') }}}} {op} {v}")
    return " and ".join(parts)


# A metric: dict(name, kind, ...):
#   simple:    measure, filter (list, may be empty)
#   ratio:     num, den (metric names)
#   derived:   expr (kpic and MetricFlow syntax alike), inputs
#   window:    measure, filter, days   (MetricFlow: cumulative, window)
#   to_date:   measure, filter, grain  (MetricFlow: cumulative, grain_to_date)

COMPLETED = [("status", "=", "completed")]

EXEC_METRICS = [
    # kind "sum": plain sums and counts
    dict(name="gross_sales", kind="simple", set="sum", measure="amount_sum", filter=[]),
    dict(name="placed_orders", kind="simple", set="sum", measure="order_count", filter=[]),
    dict(name="discounts", kind="simple", set="sum", measure="discount_sum", filter=[]),
    # kind "filtered_sum": sums and counts with a filter
    dict(name="revenue", kind="simple", set="filtered_sum", measure="net_sum", filter=COMPLETED),
    dict(name="orders", kind="simple", set="filtered_sum", measure="order_count", filter=COMPLETED),
    dict(
        name="refunded_orders",
        kind="simple",
        set="filtered_sum",
        measure="order_count",
        filter=[("status", "=", "refunded")],
    ),
    dict(
        name="refunded_amount",
        kind="simple",
        set="filtered_sum",
        measure="amount_sum",
        filter=[("status", "=", "refunded")],
    ),
    dict(
        name="mobile_revenue",
        kind="simple",
        set="filtered_sum",
        measure="net_sum",
        filter=COMPLETED + [("device", "=", "mobile")],
    ),
    dict(
        name="large_orders",
        kind="simple",
        set="filtered_sum",
        measure="order_count",
        filter=[("amount", ">=", 250)],
    ),
    # kind "count_distinct"
    dict(name="customers", kind="simple", set="count_distinct", measure="customer_distinct", filter=[]),
    dict(name="buyers", kind="simple", set="count_distinct", measure="customer_distinct", filter=COMPLETED),
    # kind "average"
    dict(name="avg_amount", kind="simple", set="average", measure="amount_avg", filter=[]),
    # kind "ratio"
    dict(name="aov", kind="ratio", set="ratio", num="revenue", den="orders"),
    dict(name="refund_rate", kind="ratio", set="ratio", num="refunded_orders", den="placed_orders"),
    dict(name="discount_rate", kind="ratio", set="ratio", num="discounts", den="gross_sales"),
    # kind "derived"
    dict(
        name="net_sales",
        kind="derived",
        set="derived",
        expr="gross_sales - discounts - refunded_amount",
        inputs=["gross_sales", "discounts", "refunded_amount"],
    ),
    dict(
        name="revenue_per_buyer",
        kind="derived",
        set="derived",
        expr="revenue / buyers",
        inputs=["revenue", "buyers"],
    ),
    # kind "window_distinct_30d": trailing 30-day distinct count
    dict(
        name="active_customers_30d",
        kind="window",
        set="window_distinct_30d",
        measure="customer_distinct",
        filter=COMPLETED,
        days=30,
    ),
    # kind "window_sum_30d": trailing 30-day sum
    dict(name="orders_30d", kind="window", set="window_sum_30d", measure="order_count", filter=[], days=30),
    # kind "month_to_date"
    dict(
        name="revenue_mtd",
        kind="to_date",
        set="month_to_date",
        measure="net_sum",
        filter=COMPLETED,
        grain="month",
    ),
]


def compile_metrics(n):
    """n metrics in blocks of 10, each metric with its own filter; ratios and
    derived metrics use metrics of their own block, so every prefix of
    whole blocks is self-contained."""
    out = []
    for i in range(n):
        b, k = divmod(i, 10)
        base = 10 * b
        # an individual filter per metric: (channel, threshold) is unique up to 1000 metrics
        flt = [("channel", "=", CHANNELS[i % 5]), ("amount", ">=", i // 5)]
        name = f"m{i:04d}"
        if k == 0:
            m = dict(kind="simple", measure="amount_sum", filter=[])
        elif k == 1:
            m = dict(kind="simple", measure="net_sum", filter=flt)
        elif k == 2:
            m = dict(kind="simple", measure="order_count", filter=flt)
        elif k == 3:
            m = dict(kind="simple", measure="customer_distinct", filter=flt)
        elif k == 4:
            m = dict(kind="ratio", num=f"m{base + 1:04d}", den=f"m{base + 2:04d}")
        elif k == 5:
            m = dict(
                kind="derived",
                expr=f"m{base + 1:04d} - m{base:04d}",
                inputs=[f"m{base + 1:04d}", f"m{base:04d}"],
            )
        elif k == 6:
            m = dict(kind="simple", measure="discount_sum", filter=flt)
        elif k == 7:
            m = dict(kind="simple", measure="amount_avg", filter=flt)
        elif k == 8:
            m = dict(kind="window", measure="customer_distinct", filter=flt, days=30)
        else:
            m = dict(kind="to_date", measure="net_sum", filter=flt, grain="month")
        m["name"] = name
        out.append(m)
    if n % 10:
        # a partial block: keep ratios/derived pointing inside the list
        for m in out:
            for key in ("num", "den"):
                if key in m and int(m[key][1:]) >= n:
                    raise SystemExit(f"--metrics {n}: use multiples of 10")
    return out


# ---------------------------------------------------------------- kpic


def kpic_metric_yaml(m):
    lines = [f"  - name: {m['name']}"]
    kind = m["kind"]
    if kind in ("simple", "window", "to_date"):
        lines.append("    source: orders")
        lines.append(f"    measure: {MEASURES[m['measure']][2]}")
        if m["filter"]:
            lines.append(f'    filter: "{kpic_filter(m["filter"])}"')
        if kind == "window":
            lines.append(f"    window: {m['days']} days")
        if kind == "to_date":
            lines.append(f"    to_date: {m['grain']}")
    elif kind == "ratio":
        lines.append(f"    expr: {m['num']} / {m['den']}")
    elif kind == "derived":
        lines.append(f"    expr: {m['expr']}")
    return "\n".join(lines)


def kpic_source_yaml(path):
    return f"""sources:
  - name: orders
    path: {path}
    table: analytics.fct_orders
    time: ordered_at
    dimensions: [channel, device, country, status]
"""


def kpic_kpi_yaml(name, metric, drivers, breakdowns):
    lines = [
        f"  - name: {name}",
        f"    metric: {metric}",
        "    grain: month",
        "    direction: higher_is_better",
        "    owner: bench",
        "    action_plan: Review the breakdowns.",
    ]
    if drivers:
        lines.append(f"    drivers: [{', '.join(drivers)}]")
    lines.append(f"    breakdowns: [{', '.join(breakdowns)}]")
    return "\n".join(lines)


def kpic_project_yml(name, as_of):
    return f"""name: {name}
models: [models]
warehouse:
  dialect: duckdb
  database: target/kpic.duckdb
as_of: {as_of}
"""


# ---------------------------------------------------------- MetricFlow


def mf_semantic_model_yaml():
    lines = [
        "semantic_models:",
        "  - name: orders",
        "    model: ref('orders')",
        "    defaults:",
        "      agg_time_dimension: ordered_at",
        "    entities:",
        "      - name: order",
        "        type: primary",
        "        expr: order_id",
        "      - name: customer",
        "        type: foreign",
        "        expr: customer_id",
        "    measures:",
    ]
    for name, (agg, expr, _) in MEASURES.items():
        lines += [f"      - name: {name}", f"        agg: {agg}", f'        expr: "{expr}"']
    lines += [
        "    dimensions:",
        "      - name: ordered_at",
        "        type: time",
        "        type_params:",
        "          time_granularity: day",
    ]
    for d in ("channel", "device", "country", "status", "amount"):
        lines += [f"      - name: {d}", "        type: categorical"]
    return "\n".join(lines) + "\n"


def mf_metric_yaml(m):
    kind = m["kind"]
    lines = [f"  - name: {m['name']}", f"    label: {m['name']}"]
    if kind == "simple":
        lines += ["    type: simple", "    type_params:", f"      measure: {m['measure']}"]
    elif kind == "ratio":
        lines += [
            "    type: ratio",
            "    type_params:",
            f"      numerator: {m['num']}",
            f"      denominator: {m['den']}",
        ]
    elif kind == "derived":
        lines += ["    type: derived", "    type_params:", f"      expr: {m['expr']}", "      metrics:"]
        lines += [f"        - name: {x}" for x in m["inputs"]]
    elif kind in ("window", "to_date"):
        # period_agg: last, like kpic's default: the value of a month is the
        # value on its last day (MetricFlow's default is `first`).
        lines += [
            "    type: cumulative",
            "    type_params:",
            f"      measure: {m['measure']}",
            "      cumulative_type_params:",
        ]
        if kind == "window":
            lines.append(f"        window: {m['days']} days")
        else:
            lines.append(f"        grain_to_date: {m['grain']}")
        lines.append("        period_agg: last")
    if m.get("filter"):
        lines.append(f'    filter: "{mf_filter(m["filter"])}"')
    return "\n".join(lines)


def write_dbt_project(d: Path, orders_sql: str):
    (d / "models").mkdir(parents=True, exist_ok=True)
    (d / "dbt_project.yml").write_text(
        "name: mf_bench\nversion: 1.0.0\nconfig-version: 2\nprofile: mf_bench\n"
        'model-paths: ["models"]\n'
    )
    (d / "profiles.yml").write_text(
        f"mf_bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: {DB_NAME}.duckdb\n      threads: 1\n"
    )
    (d / "models" / "orders.sql").write_text(orders_sql)
    (d / "models" / "metricflow_time_spine.sql").write_text(
        "{{ config(materialized='table') }}\n"
        f"select cast(range as date) as date_day from range(date '{FIRST_DAY}', date '{LAST_DAY}' + interval 1 day, interval 1 day)\n"
    )
    (d / "models" / "time_spine.yml").write_text(
        "models:\n"
        "  - name: metricflow_time_spine\n"
        "    time_spine:\n"
        "      standard_granularity_column: date_day\n"
        "    columns:\n"
        "      - name: date_day\n"
        "        granularity: day\n"
    )
    (d / "models" / "semantic_models.yml").write_text(mf_semantic_model_yaml())


def write_mf_metrics(d: Path, metrics):
    (d / "models" / "metrics.yml").write_text(
        "metrics:\n" + "\n".join(mf_metric_yaml(m) for m in metrics) + "\n"
    )


# --------------------------------------------------------------- writers


def write_small_csv(path: Path, rows=200):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["order_id", "ordered_at", "customer_id", "channel", "device", "country", "status", "amount", "discount"])
        for i in range(rows):
            w.writerow(
                [
                    i + 1,
                    f"2026-{1 + i % 6:02d}-{1 + i % 28:02d}",
                    1 + (i * 7) % 50,
                    CHANNELS[i % 5],
                    DEVICES[i % 3],
                    COUNTRIES[i % 10],
                    STATUSES[i % 3],
                    f"{10 + (i * 37) % 300}.50",
                    f"{(i % 4) * 1.25:.2f}",
                ]
            )


def write_compile(out: Path, n: int):
    root = out / "compile" / f"n{n}"
    if root.exists():
        shutil.rmtree(root)
    metrics = compile_metrics(n)
    # kpic
    kp = root / "kpic"
    (kp / "models").mkdir(parents=True)
    (kp / "kpic.yml").write_text(kpic_project_yml(f"mf_compile_{n}", "2026-06-30"))
    write_small_csv(kp / "data" / "orders.csv")
    (kp / "models" / "sources.yml").write_text(kpic_source_yaml("data/orders.csv"))
    (kp / "models" / "metrics.yml").write_text(
        "metrics:\n" + "\n".join(kpic_metric_yaml(m) for m in metrics) + "\n"
    )
    kpis = []
    for k in range(n // 5):
        names = [metrics[5 * k + j]["name"] for j in range(5)]
        kpis.append(kpic_kpi_yaml(f"k{k:03d}", names[0], names[1:], ["channel", "device"]))
    (kp / "models" / "kpis.yml").write_text("kpis:\n" + "\n".join(kpis) + "\n")
    # dbt / MetricFlow
    db = root / "dbt"
    write_dbt_project(db, "select * from read_csv('../kpic/data/orders.csv')\n")
    write_mf_metrics(db, metrics)
    (root / "metrics.txt").write_text("".join(m["name"] + "\n" for m in metrics))
    return len(metrics), len(kpis)


def exec_sets():
    sets = {"all": [m["name"] for m in EXEC_METRICS]}
    for m in EXEC_METRICS:
        sets.setdefault(m["set"], []).append(m["name"])
    return sets


def needed(names):
    """The metrics `names` use, themselves included, in definition order."""
    by = {m["name"]: m for m in EXEC_METRICS}
    want = set()

    def visit(x):
        if x in want:
            return
        want.add(x)
        m = by[x]
        for y in [m.get("num"), m.get("den"), *m.get("inputs", [])]:
            if y:
                visit(y)

    for x in names:
        visit(x)
    return [m for m in EXEC_METRICS if m["name"] in want]


def write_exec(out: Path):
    root = out / "exec"
    if root.exists():
        shutil.rmtree(root)
    sets = exec_sets()
    for set_name, names in sets.items():
        mdir = root / "kpic" / set_name / "models"
        mdir.mkdir(parents=True)
        (mdir / "sources.yml").write_text(kpic_source_yaml("__ORDERS_PATH__"))
        (mdir / "metrics.yml").write_text(
            "metrics:\n" + "\n".join(kpic_metric_yaml(m) for m in needed(names)) + "\n"
        )
        (mdir / "kpis.yml").write_text(
            "kpis:\n" + "\n".join(kpic_kpi_yaml(f"kpi_{x}", x, [], ["channel"]) for x in names) + "\n"
        )
    db = root / "dbt"
    write_dbt_project(db, "select * from read_parquet('orders.parquet')\n")
    write_mf_metrics(db, EXEC_METRICS)
    kinds = {m["name"]: m["kind"] for m in EXEC_METRICS}
    (root / "sets.json").write_text(
        json.dumps(
            {
                "sets": sets,
                "kinds": kinds,
                "first_day": FIRST_DAY,
                "last_day": LAST_DAY,
                "database": DB_NAME,
            },
            indent=1,
        )
        + "\n"
    )
    return sets


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--metrics", default="10,30,100,300,1000")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for n in [int(x) for x in args.metrics.split(",") if x]:
        nm, nk = write_compile(args.out, n)
        print(f"compile/n{n}: {nm} metrics, {nk} KPIs")
    sets = write_exec(args.out)
    print(f"exec: {len(sets['all'])} metrics, sets: {', '.join(sets)}")


if __name__ == "__main__":
    main()
