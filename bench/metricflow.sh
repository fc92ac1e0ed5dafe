#!/usr/bin/env bash
# METRICFLOW benchmark (bench/README.md, section "MetricFlow"): kpic against
# MetricFlow on compile time (1,000 metrics and 200 KPIs, all dialects;
# growth from 10 to 1,000 metrics) and on execution time (~20 metrics by
# month, and by month and channel, at 1M and 10M orders).
#
#   bench/metricflow.sh                                   # everything: about 1 h on 2 vCPUs
#   bench/metricflow.sh --sizes 1M --metrics 10,100       # a quick look
#   bench/metricflow.sh --skip-compile --sizes 10M --repeat 1 --profile
#
# Options: --sizes LIST (rows of orders; default 1M,10M), --metrics LIST
# (compile benchmark; default 10,30,100,300,1000), --repeat R (default 3),
# --skip-compile, --skip-exec, --profile (where kpic's and MetricFlow's
# execution time goes), --keep-going (time even when the values differ),
# --memory-limit SIZE (DuckDB's, every side; default 2GB, kpic's default).
# Results (text and JSON) go to $CARGO_TARGET_DIR/mf_bench/results/ too.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kpic-target}"
SIZES=1M,10M
METRICS=10,30,100,300,1000
REPEAT=3
COMPILE=1
EXEC=1
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sizes) SIZES="$2"; shift 2 ;;
    --sizes=*) SIZES="${1#*=}"; shift ;;
    --metrics) METRICS="$2"; shift 2 ;;
    --metrics=*) METRICS="${1#*=}"; shift ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --repeat=*) REPEAT="${1#*=}"; shift ;;
    --skip-compile) COMPILE=0; shift ;;
    --skip-exec) EXEC=0; shift ;;
    --profile|--keep-going) EXTRA+=("$1"); shift ;;
    --memory-limit) EXTRA+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

OUT="$CARGO_TARGET_DIR/mf_bench"
PROJECTS="$OUT/projects"
RESULTS="$OUT/results"
mkdir -p "$RESULTS"

echo "== setup: MetricFlow's virtualenv" >&2
VENV="$(bench/metricflow/setup.sh | tail -n 1)"

echo "== build: kpic and examples/metricflow_exec.rs (release)" >&2
cargo build --release --bin kpic --example metricflow_exec
KPIC="$CARGO_TARGET_DIR/release/kpic"
EXAMPLE="$CARGO_TARGET_DIR/release/examples/metricflow_exec"

echo "== projects: bench/metricflow/generate.py" >&2
# the execution projects are always written; the compile ones for --metrics
python3 bench/metricflow/generate.py --out "$PROJECTS" --metrics "$([[ $COMPILE == 1 ]] && echo "$METRICS" || echo "")"

if [[ $COMPILE == 1 ]]; then
  echo "== compile benchmark" >&2
  python3 bench/metricflow/compile_bench.py --projects "$PROJECTS" --venv "$VENV" --kpic "$KPIC" \
    --inproc "$EXAMPLE" --metrics "$METRICS" --repeat "$REPEAT" --json "$RESULTS/compile.json" \
    | tee "$RESULTS/compile.txt"
fi

if [[ $EXEC == 1 ]]; then
  echo "== MetricFlow's SQL for the execution benchmark (dbt parse, then mf explain per set)" >&2
  (cd "$PROJECTS/exec/dbt" && "$VENV/bin/dbt" parse --quiet --profiles-dir . --project-dir .)
  "$VENV/bin/python" bench/metricflow/mf_explain.py --project "$PROJECTS/exec/dbt" \
    --sets-json "$PROJECTS/exec/sets.json" --sql-dir "$PROJECTS/exec/mf_sql"
  echo "== execution benchmark" >&2
  "$EXAMPLE" --kpic "$KPIC" --dir "$OUT" --projects "$PROJECTS" --sizes "$SIZES" --repeat "$REPEAT" \
    ${EXTRA[@]+"${EXTRA[@]}"} | tee "$RESULTS/exec.txt"
fi
