#!/usr/bin/env bash
# MetricFlow benchmark (bench/README.md, section "MetricFlow"): creates the
# virtualenv with MetricFlow, its dbt CLI and the DuckDB adapter, once.
#
#   bench/metricflow/setup.sh            # prints the venv's path on the last line
#   MF_VENV=DIR bench/metricflow/setup.sh
#
# Idempotent: an existing venv with the pinned versions is kept. PyPI is the
# only source (dbt-core is held below 1.12: newer dbt-core's parser cannot be
# installed offline). The pins are the versions this benchmark was written
# and measured with (2026-11-24).
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kpic-target}"
VENV="${MF_VENV:-$CARGO_TARGET_DIR/mf-venv}"
PINS=(
  "metricflow==0.213.0"
  "dbt-metricflow==0.15.0"
  "dbt-duckdb==1.11.1"
  "dbt-core==1.11.16"
  "duckdb==2.0.1"
)
stamp="$VENV/.kpic-bench-pins"
want="$(printf '%s\n' "${PINS[@]}")"
if [[ -x "$VENV/bin/mf" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "MetricFlow venv up to date: $VENV" >&2
else
  echo "creating the MetricFlow venv in $VENV (about 1 minute)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}" >&2
  printf '%s\n' "$want" > "$stamp"
fi
"$VENV/bin/pip" list --disable-pip-version-check 2>/dev/null \
  | grep -iE '^(metricflow|dbt-metricflow|dbt-core|dbt-duckdb|dbt-semantic-interfaces|duckdb|sqlglot) ' >&2
echo "$VENV"
