#!/usr/bin/env bash
# Writes the fuzz targets' seed corpus into DIR (default fuzz/seeds),
# built from the repository's projects rather than checked in:
#   - every model file alone (a marker-less input is models/m.yml);
#   - every project as one multi-file input (the harness's `#@ path`
#     markers, fuzz/src/lib.rs): kpic.yml, models/**/*.yml, macros/**/*.sql
#     and data files (text cut to 40 lines, binary empty), for fixtures/projects/*,
#     fixtures/invalid/*, src/cli/init_template and the repository's own
#     example project.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$repo/fuzz/seeds}"
rm -rf "$out"
mkdir -p "$out"

name_of() { # a relative path as a flat file name
  if [ "$1" = "$repo" ]; then
    printf example
  else
    printf '%s' "${1#"$repo"/}" | tr '/' '_'
  fi
}

# One multi-file input for the project at $1.
bundle() {
  local dir="$1" dest
  dest="$out/project_$(name_of "$dir")"
  : > "$dest"
  (
    cd "$dir"
    {
      if [ -f kpic.yml ]; then echo kpic.yml; fi
      if [ -d models ]; then
        find models -type f \( -name '*.yml' -o -name '*.yaml' \) | sort
      fi
      if [ -d macros ]; then find macros -type f -name '*.sql' | sort; fi
      # Data files (the repository's own test trees and fixture projects
      # are not part of its example).
      find . \( -path ./target -o -path ./models -o -path ./macros -o -path ./src \
        -o -path ./tests -o -path ./docs -o -path ./bench -o -path ./fuzz -o -path ./examples \
        -o -path ./fixtures/invalid -o -path ./fixtures/projects -o -path ./.git \) -prune -o \
        -type f \( -name '*.csv' -o -name '*.txt' -o -name '*.json' -o -name '*.gz' -o -name '*.parquet' \) \
        -print | sort
    } | sed 's|^\./||' | while read -r f; do
      printf '#@ %s\n' "$f"
      # Definitions whole. Data: the compile path checks that a source's
      # file exists but reads none (no catalog), so binary data goes in
      # empty and long text (target files are read) is cut to 40 lines.
      case "$f" in
        *.yml | *.yaml | *.sql) lines=1000000 ;;
        *.gz | *.parquet) lines=0 ;;
        *) lines=40 ;;
      esac
      head -n "$lines" "$f"
      # A file without a final newline would swallow the next marker.
      if [ -n "$(head -n "$lines" "$f" | tail -c1)" ]; then echo; fi
    done
  ) > "$dest"
}

for dir in "$repo"/fixtures/projects/* "$repo"/fixtures/invalid/* "$repo/src/cli/init_template" "$repo"; do
  if [ -d "$dir" ]; then bundle "$dir"; fi
done

# Every model file on its own.
find "$repo/fixtures" "$repo/models" "$repo/src/cli/init_template" \
  -type f \( -name '*.yml' -o -name '*.yaml' \) -path '*models/*' -print |
  while read -r f; do
    cp "$f" "$out/file_$(name_of "$f")"
  done
# kpic.yml files too (as the default file they are model files, which the
# loader refuses; the fuzzer can prepend a marker).
find "$repo/fixtures" -type f -name kpic.yml -print | while read -r f; do
  { echo '#@ kpic.yml'; cat "$f"; } > "$out/kpicyml_$(name_of "$f")"
done

echo "$(find "$out" -type f | wc -l) seeds in $out" >&2
