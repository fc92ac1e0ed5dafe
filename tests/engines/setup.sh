#!/usr/bin/env bash
# Sets up the engines for the differential tests (tests/engines/engine.py):
#   - a Python virtualenv with tests/engines/requirements.txt (pyspark, chdb,
#     psycopg, sqlglot, pyarrow) at ${KPIC_VENV:-$HOME/.cache/kpic-venv};
#     pip runs only when the requirements changed (stamp file in the venv);
#   - Java for Spark (installs default-jre-headless with apt when missing);
#   - PostgreSQL: installed with apt when no initdb is found, then a throwaway
#     cluster in ${KPIC_PGDATA:-$HOME/.cache/kpic-pg} (moved under /tmp when
#     the postgres user cannot reach it) listening on 127.0.0.1 only, port
#     ${KPIC_PGPORT:-54329}, trust auth; a server already answering there is
#     reused.
#
# Usage:   eval "$(tests/engines/setup.sh)"
# stdout gets only `export` lines:
#   KPIC_PYTHON   the venv's python (absent when the venv could not be built)
#   KPIC_PG_DSN   libpq DSN of the cluster (absent when Postgres could not start)
#   KPIC_ENGINES_READY  space-separated engines that are usable: postgres spark clickhouse
# All progress and errors go to stderr. One engine failing does not stop the
# others; the script exits 0 unless it was called wrongly.
# Idempotent; when everything is in place it takes about a second.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQ="$HERE/requirements.txt"
VENV="${KPIC_VENV:-$HOME/.cache/kpic-venv}"
PGDATA_WANTED="${KPIC_PGDATA:-$HOME/.cache/kpic-pg}"
PGPORT="${KPIC_PGPORT:-54329}"

log() { printf '[engines/setup] %s\n' "$*" >&2; }

APT_UPDATED=0
apt_install() {
  # apt_install PKG... : installs Debian packages (root only).
  if ! command -v apt-get > /dev/null; then
    log "apt-get not found; cannot install $*"
    return 1
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo > /dev/null; then sudo=(sudo -n); else
      log "not root and no sudo; cannot install $*"
      return 1
    fi
  fi
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" < /dev/null >&2
}

# ---------------------------------------------------------------- Python venv
PYTHON_OK=0
setup_venv() {
  local base_python
  base_python="$(command -v python3 || true)"
  if [ -z "$base_python" ]; then
    log "python3 not found"
    return 1
  fi
  local vpy="$VENV/bin/python"
  if [ -x "$vpy" ] && ! "$vpy" -c 'import sys' > /dev/null 2>&1; then
    log "venv at $VENV is broken; recreating"
    rm -rf "$VENV"
  fi
  if [ ! -x "$vpy" ]; then
    log "creating virtualenv $VENV"
    mkdir -p "$(dirname "$VENV")"
    if ! "$base_python" -m venv "$VENV" >&2; then
      # Debian's own python3 needs python3-venv for `-m venv`.
      rm -rf "$VENV"
      apt_install python3-venv || return 1
      "$base_python" -m venv "$VENV" >&2 || return 1
    fi
  fi
  local want have=""
  want="$( (cat "$REQ"; "$vpy" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
  [ -f "$VENV/.kpic-requirements.sha256" ] && have="$(cat "$VENV/.kpic-requirements.sha256")"
  if [ "$want" != "$have" ]; then
    log "pip install -r $REQ (a few minutes the first time)"
    "$vpy" -m pip install --disable-pip-version-check -q -r "$REQ" >&2 || return 1
    echo "$want" > "$VENV/.kpic-requirements.sha256"
  else
    log "venv up to date ($VENV)"
  fi
}

if setup_venv; then
  PYTHON_OK=1
else
  log "ERROR: the Python virtualenv could not be set up: no engine can run"
fi

ENGINES=()

# ---------------------------------------------------------------- ClickHouse (chdb)
if [ "$PYTHON_OK" -eq 1 ]; then
  if "$VENV/bin/python" -c 'import chdb, pyarrow' > /dev/null 2>&1; then
    ENGINES+=(clickhouse)
  else
    log "ERROR: clickhouse unavailable: 'import chdb' fails in $VENV"
  fi
fi

# ---------------------------------------------------------------- Spark (pyspark + Java)
setup_spark() {
  "$VENV/bin/python" -c 'import pyspark, pyarrow' > /dev/null 2>&1 || {
    log "'import pyspark' fails in $VENV"
    return 1
  }
  local java=""
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    java="$JAVA_HOME/bin/java"
  else
    java="$(command -v java || true)"
  fi
  if [ -z "$java" ]; then
    log "java not found; installing default-jre-headless"
    apt_install default-jre-headless || return 1
    java="$(command -v java || true)"
    [ -n "$java" ] || return 1
  fi
  local ver
  ver="$("$java" -version 2>&1 | head -1)"
  log "java: $ver"
  # pyspark 4.x needs Java 17 or later.
  local major
  major="$(printf '%s\n' "$ver" | sed -E 's/.*version "([0-9]+).*/\1/')"
  if [ -n "$major" ] && [ "$major" -lt 17 ] 2> /dev/null; then
    log "Java $major is too old for Spark 4 (needs 17+)"
    return 1
  fi
}
if [ "$PYTHON_OK" -eq 1 ]; then
  if setup_spark; then
    ENGINES+=(spark)
  else
    log "ERROR: spark unavailable (see above)"
  fi
fi

# ---------------------------------------------------------------- PostgreSQL
PG_BIN=""
find_pg_bin() {
  local cand=""
  # Prefer the newest Debian-layout install; then whatever initdb is on PATH.
  cand="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  if [ -n "$cand" ] && [ -x "$cand/initdb" ] && [ -x "$cand/pg_ctl" ]; then
    PG_BIN="$cand"
    return 0
  fi
  if command -v initdb > /dev/null && command -v pg_ctl > /dev/null; then
    PG_BIN="$(dirname "$(readlink -f "$(command -v initdb)")")"
    return 0
  fi
  return 1
}

PG_USER=""  # the OS user that owns and runs the cluster
as_pg() {
  # as_pg CMD... : runs CMD as the cluster's OS user.
  # (cd / first: the postgres user may not be able to read the caller's cwd)
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u "$PG_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

pg_answers() {
  # Does a server accept `user=postgres` on 127.0.0.1:$PGPORT?
  if [ -x "$PG_BIN/psql" ]; then
    PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -A -t -w \
      "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
      -c 'select 1' > /dev/null 2>&1
  elif [ "$PYTHON_OK" -eq 1 ]; then
    "$VENV/bin/python" - "$PGPORT" > /dev/null 2>&1 << 'EOF'
import sys, psycopg
psycopg.connect(f"host=127.0.0.1 port={sys.argv[1]} user=postgres dbname=postgres connect_timeout=3").close()
EOF
  else
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"
  fi
}

pg_dir_usable() {
  # pg_dir_usable DIR : can the cluster user create/write DIR (all parents traversable)?
  local dir="$1"
  mkdir -p "$dir" 2> /dev/null || return 1
  if [ "$(id -u)" -eq 0 ]; then chown "$PG_USER" "$dir" 2> /dev/null || return 1; fi
  chmod 700 "$dir" 2> /dev/null || return 1
  as_pg test -w "$dir" -a -x "$dir" 2> /dev/null
}

setup_postgres() {
  if ! find_pg_bin; then
    log "no initdb found; installing PostgreSQL with apt"
    apt_install postgresql || return 1
    find_pg_bin || { log "initdb still not found after apt-get install"; return 1; }
  fi
  log "postgres binaries: $PG_BIN ($("$PG_BIN/postgres" --version 2> /dev/null || echo '?'))"

  if [ "$(id -u)" -eq 0 ]; then
    PG_USER=postgres
    if ! id "$PG_USER" > /dev/null 2>&1; then
      log "creating system user $PG_USER"
      useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$PG_USER" || return 1
    fi
  else
    PG_USER="$(id -un)"
  fi

  if pg_answers; then
    log "a server already answers on 127.0.0.1:$PGPORT; reusing it"
    return 0
  fi

  local pgdata="$PGDATA_WANTED"
  if ! pg_dir_usable "$pgdata"; then
    local fallback
    fallback="/tmp/kpic-pg-$(id -u)-$PGPORT"
    log "$PG_USER cannot use $pgdata (parent not traversable?); using $fallback"
    rmdir "$pgdata" 2> /dev/null || true
    pgdata="$fallback"
    pg_dir_usable "$pgdata" || { log "$PG_USER cannot use $pgdata either"; return 1; }
  fi

  local major
  major="$("$PG_BIN/postgres" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')"
  local started=0
  if [ -f "$pgdata/PG_VERSION" ] && [ "$(cat "$pgdata/PG_VERSION")" = "$major" ]; then
    log "starting existing cluster in $pgdata"
    # A stale postmaster.pid after a machine restart is handled by pg_ctl.
    if as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 start \
      < /dev/null >&2 && pg_answers; then
      started=1
    else
      log "existing cluster did not start; recreating it (log tail follows)"
      tail -n 5 "$pgdata/server.log" >&2 2> /dev/null || true
      as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -m immediate stop < /dev/null > /dev/null 2>&1 || true
    fi
  fi
  if [ "$started" -eq 0 ]; then
    log "initdb $pgdata"
    find "$pgdata" -mindepth 1 -delete 2> /dev/null || rm -rf "${pgdata:?}"/* || true
    pg_dir_usable "$pgdata" || return 1
    as_pg "$PG_BIN/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      --no-sync < /dev/null > /dev/null 2> "$pgdata.initdb.err" \
      || as_pg "$PG_BIN/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C \
        --no-sync < /dev/null > /dev/null 2> "$pgdata.initdb.err" \
      || { cat "$pgdata.initdb.err" >&2; return 1; }
    rm -f "$pgdata.initdb.err"
    cat >> "$pgdata/postgresql.conf" << EOF

# --- kpic differential tests: throwaway local cluster ---
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = ''
timezone = 'UTC'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 20
shared_buffers = 128MB
EOF
    # Trust for TCP on loopback only (initdb -A trust also adds local lines).
    cat > "$pgdata/pg_hba.conf" << 'EOF'
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   127.0.0.1/32   trust
EOF
    chmod 600 "$pgdata/pg_hba.conf"
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$pgdata/pg_hba.conf"
    log "starting new cluster on 127.0.0.1:$PGPORT"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 start < /dev/null >&2; then
      tail -n 20 "$pgdata/server.log" >&2 2> /dev/null || true
      return 1
    fi
  fi
  pg_answers || { log "server started but does not answer on 127.0.0.1:$PGPORT"; return 1; }
}

PG_OK=0
if setup_postgres; then
  PG_OK=1
  ENGINES+=(postgres)
else
  log "ERROR: postgres unavailable (see above); KPIC_PG_DSN not exported"
fi

# ---------------------------------------------------------------- result
if [ "$PYTHON_OK" -eq 1 ]; then
  printf 'export KPIC_PYTHON=%q\n' "$VENV/bin/python"
fi
if [ "$PG_OK" -eq 1 ]; then
  printf 'export KPIC_PG_DSN=%q\n' "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres"
fi
printf 'export KPIC_ENGINES_READY=%q\n' "${ENGINES[*]:-}"
log "usable engines: ${ENGINES[*]:-none}"
