#!/usr/bin/env bash
# SPEED benchmark of `kpic explain` (bench/README.md, section "Speed"):
# builds kpic and the example in release mode, then runs
# examples/explain_speed.rs with any arguments given here, e.g.
#
#   bench/speed.sh                     # 10M rows, 3 rounds
#   bench/speed.sh --rows 1M --repeat 5
#
# The target dir is fixed: the bundled DuckDB is built there once.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kpic-target}"
cargo build --release --bin kpic --example explain_speed
exec "$CARGO_TARGET_DIR/release/examples/explain_speed" --kpic "$CARGO_TARGET_DIR/release/kpic" "$@"
