#!/usr/bin/env python3
"""MetricFlow's compile step in process (bench/README.md, "MetricFlow").

Run with the benchmark's virtualenv (bench/metricflow/setup.sh):

    VENV/bin/python bench/metricflow/mf_explain.py --project DBT_DIR \
        --metrics a,b,c | --metrics-file FILE  [--group-by metric_time__month] \
        [--dialects duckdb,postgres,...] [--repeat R] [--sql-out FILE] [--json FILE]

Reads DBT_DIR/target/semantic_manifest.json (written by `dbt parse`), builds
MetricFlow's engine as `mf query` does (SemanticManifestLookup, then
MetricFlowEngine), but with a SQL client that only names the dialect and its
renderer (no warehouse connection, no `dbt debug`), and times
`MetricFlowEngine.explain()`: the query's dataflow plan, the SQL plan and its
rendering, the same call `mf query --explain` makes. The SQL is what the CLI
prints (`sql_statement.without_descriptions.sql`).

Timed separately (seconds, wall clock, in this process):
  import    importing metricflow and its dependencies
  manifest  reading and parsing semantic_manifest.json
  lookup    SemanticManifestLookup (the semantic graph)
  engine    MetricFlowEngine for the dialect
  explain   each explain() call; the first is cold, later ones reuse caches
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

T0 = time.perf_counter()

DIALECTS = ["duckdb", "postgres", "snowflake", "bigquery", "databricks", "redshift", "trino"]


def write_sets(args) -> int:
    from dbt_metricflow.cli.dbt_connectors.adapter_backed_client import SupportedAdapterTypes
    from metricflow.engine.metricflow_engine import MetricFlowEngine, MetricFlowQueryRequest
    from metricflow_semantics.model.dbt_manifest_parser import parse_manifest_from_dbt_generated_manifest
    from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

    raw = (args.project / "target" / "semantic_manifest.json").read_text()
    lookup = SemanticManifestLookup(parse_manifest_from_dbt_generated_manifest(manifest_json_string=raw))
    engine = MetricFlowEngine(
        semantic_manifest_lookup=lookup, sql_client=ExplainOnlyClient(SupportedAdapterTypes("duckdb"))
    )
    sets = json.loads(args.sets_json.read_text())["sets"]
    args.sql_dir.mkdir(parents=True, exist_ok=True)
    for name, metrics in sets.items():
        for suffix, group_by in (
            ("month", ["metric_time__month"]),
            ("month_channel", ["metric_time__month", "order__channel"]),
        ):
            request = MetricFlowQueryRequest.create(metric_names=metrics, group_by_names=group_by)
            sql = engine.explain(mf_request=request).sql_statement.without_descriptions.sql
            (args.sql_dir / f"{name}.{suffix}.sql").write_text(sql + "\n")
    print(f"wrote MetricFlow's SQL for {len(sets)} sets into {args.sql_dir}", file=sys.stderr)
    return 0


class ExplainOnlyClient:
    """A SqlClient that can render SQL but never runs any."""

    def __init__(self, adapter):
        self._adapter = adapter
        self._renderer = adapter.sql_plan_renderer

    @property
    def sql_engine_type(self):
        return self._adapter.sql_engine_type

    @property
    def sql_plan_renderer(self):
        return self._renderer

    def render_bind_parameter_key(self, key):
        return f"${key}"

    def query(self, *a, **k):
        raise RuntimeError("explain only")

    execute = dry_run = query

    def close(self):
        pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--project", required=True, type=Path)
    ap.add_argument("--metrics")
    ap.add_argument("--metrics-file", type=Path)
    ap.add_argument("--group-by", default="metric_time__month")
    ap.add_argument("--dialects", default="duckdb")
    ap.add_argument("--repeat", type=int, default=1, help="explain() calls per dialect")
    ap.add_argument("--sql-out", type=Path, help="write the (first dialect's) SQL here")
    ap.add_argument("--json", type=Path, help="write the timings here (default: stdout)")
    ap.add_argument(
        "--sets-json",
        type=Path,
        help="instead: for every set of generate.py's exec/sets.json, write SQL-DIR/<set>.month.sql "
        "(grouped by metric_time__month) and <set>.month_channel.sql (and order__channel), DuckDB",
    )
    ap.add_argument("--sql-dir", type=Path)
    args = ap.parse_args()
    if args.sets_json:
        return write_sets(args)
    if args.metrics_file:
        metrics = [x.strip() for x in args.metrics_file.read_text().split() if x.strip()]
    else:
        metrics = [x for x in (args.metrics or "").split(",") if x]
    if not metrics:
        ap.error("no metrics")
    dialects = [d for d in args.dialects.split(",") if d]
    for d in dialects:
        if d not in DIALECTS:
            ap.error(f"MetricFlow has no dialect {d!r} (it has {', '.join(DIALECTS)})")

    t = time.perf_counter()
    from dbt_metricflow.cli.dbt_connectors.adapter_backed_client import SupportedAdapterTypes
    from metricflow.engine.metricflow_engine import MetricFlowEngine, MetricFlowQueryRequest
    from metricflow_semantics.model.dbt_manifest_parser import parse_manifest_from_dbt_generated_manifest
    from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

    out = {"metrics": len(metrics), "group_by": args.group_by, "import": time.perf_counter() - t}

    t = time.perf_counter()
    raw = (args.project / "target" / "semantic_manifest.json").read_text()
    manifest = parse_manifest_from_dbt_generated_manifest(manifest_json_string=raw)
    out["manifest"] = time.perf_counter() - t
    t = time.perf_counter()
    lookup = SemanticManifestLookup(manifest)
    out["lookup"] = time.perf_counter() - t

    group_by = [g for g in args.group_by.split(",") if g]
    out["engine"] = {}
    out["explain"] = {}
    out["sql_chars"] = {}
    for d in dialects:
        t = time.perf_counter()
        engine = MetricFlowEngine(
            semantic_manifest_lookup=lookup, sql_client=ExplainOnlyClient(SupportedAdapterTypes(d))
        )
        out["engine"][d] = time.perf_counter() - t
        times = []
        sql = ""
        for _ in range(args.repeat):
            t = time.perf_counter()
            request = MetricFlowQueryRequest.create(metric_names=metrics, group_by_names=group_by)
            result = engine.explain(mf_request=request)
            sql = result.sql_statement.without_descriptions.sql
            times.append(time.perf_counter() - t)
        out["explain"][d] = times
        out["sql_chars"][d] = len(sql)
        if args.sql_out and d == dialects[0]:
            args.sql_out.parent.mkdir(parents=True, exist_ok=True)
            args.sql_out.write_text(sql + "\n")
    out["process"] = time.perf_counter() - T0
    text = json.dumps(out)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
