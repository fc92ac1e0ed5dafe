#!/usr/bin/env bash
# RUN SPEED benchmark of `kpic run` (bench/README.md, section "Run speed"):
# builds kpic and the example in release mode, then runs
# examples/run_speed.rs with any arguments given here, e.g.
#
#   bench/run_speed.sh                          # 1M, 10M and 50M fact rows, 3 rounds
#   bench/run_speed.sh --sizes 1M --repeat 5 --phases
#
# The target dir is fixed: the bundled DuckDB is built there once.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kpic-target}"
cargo build --release --bin kpic --example run_speed
exec "$CARGO_TARGET_DIR/release/examples/run_speed" --kpic "$CARGO_TARGET_DIR/release/kpic" "$@"
