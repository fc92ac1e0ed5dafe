#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (`.ci/run` calls it; README,
# Tests). Usage: fuzz/run.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
# (KPIC_FUZZ_ARGS adds libFuzzer options, e.g. "-jobs=4 -workers=4".)
#
# - nightly and cargo-fuzz are installed when missing (a clear failure when
#   nightly cannot be installed);
# - builds into $CARGO_TARGET_DIR/fuzz (default ~/.cache/kpic-target/fuzz),
#   without a sanitizer (kpic and its compile path are safe Rust; the
#   findings are panics, hangs, stack overflows and memory blow-ups, which
#   libFuzzer catches without one, at several times the speed), and with
#   debug assertions (overflow checks) as cargo-fuzz does by default;
# - the seed corpus is regenerated from the repository's projects
#   (fuzz/seed-corpus.sh); what the fuzzer learns is kept in
#   $CARGO_TARGET_DIR/fuzz/corpus/<target>, so runs on a warm machine start
#   where the last one stopped;
# - a crash, panic, timeout (20 s for one input) or out-of-memory (2 GB)
#   leaves its input in fuzz/artifacts/<target>/ and fails the script.
#   Reproduce with `cargo +nightly fuzz run -s none <target> <artifact>`,
#   then add the input to tests/it/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(load compile)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: installing the nightly toolchain (cargo-fuzz needs it)"
  if ! rustup toolchain install nightly --profile minimal; then
    echo "fuzz: FAILED: the nightly toolchain is not installed and 'rustup toolchain install nightly' failed;" >&2
    echo "fuzz: install it by hand (rustup toolchain install nightly --profile minimal) and re-run." >&2
    exit 1
  fi
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

target_root="${CARGO_TARGET_DIR:-$HOME/.cache/kpic-target}"
fuzz_dir="$target_root/fuzz"
flags=(-s none --target-dir "$fuzz_dir")
read -r -a extra <<< "${KPIC_FUZZ_ARGS:-}"
# The harness's project directory: tmpfs when there is one (fast deletes).
work="$(mktemp -d "$( [ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/kpic-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export KPIC_FUZZ_DIR="$work"

fuzz/seed-corpus.sh "$fuzz_dir/seeds"
cargo +nightly fuzz build "${flags[@]}"

failed=()
for t in "${targets[@]}"; do
  mkdir -p "$fuzz_dir/corpus/$t" "fuzz/artifacts/$t"
  echo "fuzz: $t for ${seconds}s"
  log="$work/$t.log"
  if ! cargo +nightly fuzz run "${flags[@]}" "$t" "$fuzz_dir/corpus/$t" "$fuzz_dir/seeds" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 "${extra[@]}" > "$log" 2>&1; then
    failed+=("$t")
    # The report: libFuzzer's lines from the first crash on.
    sed -n '/^==[0-9]*== \|^thread .* panicked\|ERROR: libFuzzer/,$p' "$log" | grep -v '^"' | head -80
  fi
  grep -E '^(Done|stat::(average_exec_per_sec|new_units_added|peak_rss_mb))' "$log" || true
  if [ -n "$(ls -A "fuzz/artifacts/$t")" ]; then
    echo "fuzz: $t: artifacts in fuzz/artifacts/$t:" && ls "fuzz/artifacts/$t"
    [[ " ${failed[*]} " == *" $t "* ]] || failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/; see fuzz/run.sh for how to reproduce)" >&2
  exit 1
fi
echo "fuzz: ok"
