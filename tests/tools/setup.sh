#!/usr/bin/env bash
# Sets up the real tools of the ecosystem tests (issue 6): dbt, MetricFlow
# and headless Chromium.
#   - the virtualenv of bench/metricflow/setup.sh (dbt-core below 1.12,
#     dbt-duckdb, dbt-metricflow, metricflow; created once, pinned);
#   - Chromium from Debian (`apt-get install chromium`) when none is found.
#
# Usage:   eval "$(tests/tools/setup.sh)"
# stdout gets only `export` lines:
#   KPIC_DBT_VENV   the venv (its bin/ has dbt and mf); absent when it failed
#   KPIC_CHROMIUM   a headless-capable Chromium binary; absent when none
# Progress goes to stderr. One tool failing does not stop the other; the
# tests that need a missing tool fail when KPIC_TOOLS=1 (CI) and skip
# otherwise.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
log() { printf '[tools/setup] %s\n' "$*" >&2; }

if venv="$("$ROOT/bench/metricflow/setup.sh" | tail -n 1)" && [ -x "$venv/bin/dbt" ]; then
  echo "export KPIC_DBT_VENV='$venv'"
else
  log "the dbt/MetricFlow virtualenv could not be built"
fi

find_chromium() {
  for c in chromium chromium-browser google-chrome; do
    if command -v "$c" > /dev/null; then command -v "$c"; return 0; fi
  done
  return 1
}
if ! chrome="$(find_chromium)"; then
  sudo=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo > /dev/null; then sudo=(sudo -n); fi
  log "apt-get install chromium"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium < /dev/null >&2 || true
  chrome="$(find_chromium)" || chrome=""
fi
if [ -n "$chrome" ]; then
  echo "export KPIC_CHROMIUM='$chrome'"
else
  log "Chromium could not be installed"
fi
