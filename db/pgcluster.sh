#!/usr/bin/env bash
# Manages a local PostgreSQL cluster owned by this project, for `make run`
# and `make test`. PostgreSQL refuses to run as root, so as root every
# server command runs as the `postgres` OS user.
#
#   db/pgcluster.sh start DIR        init (first time) and start; prints the URL
#   db/pgcluster.sh stop DIR         stop it (the data stays for the next run)
#   db/pgcluster.sh status DIR       exit 0 when it is running
#   db/pgcluster.sh throwaway -- CMD start a cluster in a temp folder, run CMD with
#                                    KEYHUB_TEST_DATABASE_URL set, then remove it
set -euo pipefail

log() { printf 'pgcluster: %s\n' "$*" >&2; }

find_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  # Installs Debian's postgresql package as root (waiting for another apt).
  "$(dirname "$0")/require.sh" postgresql
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  log "PostgreSQL server binaries (initdb, pg_ctl) not found."
  log "Install them (Debian/Ubuntu: sudo apt-get install postgresql; macOS: brew install postgresql@15),"
  log "set PG_BINDIR to their folder, or set DATABASE_URL to a server of your own."
  exit 1
}

BINDIR=""
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Ports below Linux's ephemeral range (32768–60999): a port in it can be
# held by a TIME-WAIT socket that a connect test does not see, and the
# server then fails to bind.
# Ports in TRIED (space-separated) are skipped: one seen free that the
# server could not bind.
TRIED=" "
pick_port() {
  local p
  for p in $(seq 15432 15532) ; do
    case "$TRIED" in *" $p "*) continue ;; esac
    if port_free "$p"; then echo "$p"; return; fi
  done
  log "no free port between 15432 and 15532"; exit 1
}

start() {
  local dir=$1
  BINDIR=$(find_bindir)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; chmod 700 "$dir"; fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initdb in $dir/data"
    as_owner "$BINDIR/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  local port
  if as_owner "$BINDIR/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    port=$(cat "$dir/port")
    log "reusing the running cluster on port $port"
  else
    port=$(cat "$dir/port" 2>/dev/null || true)
    if [ -z "$port" ] || ! port_free "$port"; then port=$(pick_port); fi
    # A port seen free can be taken before the server binds it (another
    # cluster starting at the same moment picks the same one): then the
    # next free port is tried, a few times.
    local attempt seen
    for attempt in 1 2 3 4 5; do
      echo "$port" | as_owner tee "$dir/port" >/dev/null
      seen=$({ cat "$dir/server.log" 2>/dev/null || true; } | wc -l)
      # fsync off: this cluster is for development and tests, never for data
      # that must survive a crash.
      if as_owner "$BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null 2>&1; then
        break
      fi
      if [ "$attempt" = 5 ] || ! tail -n "+$((seen + 1))" "$dir/server.log" | grep -q 'could not create any TCP/IP sockets'; then
        tail -n 20 "$dir/server.log" >&2; exit 1
      fi
      log "port $port was taken meanwhile; trying another"
      TRIED="$TRIED$port "
      port=$(pick_port)
    done
    log "started PostgreSQL on 127.0.0.1:$port (data: $dir/data)"
  fi
  if ! as_owner "$BINDIR/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='keyhub'" | grep -q 1; then
    as_owner "$BINDIR/createdb" -h 127.0.0.1 -p "$port" -U postgres keyhub
  fi
  echo "postgres://postgres@127.0.0.1:$port/keyhub?sslmode=disable"
}

stop() {
  local dir=$1
  BINDIR=$(find_bindir)
  if [ -f "$dir/data/PG_VERSION" ] && as_owner "$BINDIR/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_owner "$BINDIR/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null && log "stopped PostgreSQL ($dir)"
  fi
}

status() {
  local dir=$1
  BINDIR=$(find_bindir)
  [ -f "$dir/data/PG_VERSION" ] && as_owner "$BINDIR/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

THROWAWAY_DIR=""
throwaway() {
  THROWAWAY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/keyhub-pg.XXXXXX")
  chmod 755 "$THROWAWAY_DIR"
  trap 'stop "$THROWAWAY_DIR/cluster" || true; rm -rf "$THROWAWAY_DIR"' EXIT
  local url
  url=$(start "$THROWAWAY_DIR/cluster")
  KEYHUB_TEST_DATABASE_URL=$url "$@"
}

cmd=${1:-}
case "$cmd" in
  start) start "${2:?usage: $0 start DIR}" ;;
  stop) stop "${2:?usage: $0 stop DIR}" ;;
  status) status "${2:?usage: $0 status DIR}" ;;
  throwaway) shift; [ "${1:-}" = "--" ] && shift; throwaway "$@" ;;
  *) echo "usage: $0 start DIR | stop DIR | status DIR | throwaway -- CMD..." >&2; exit 2 ;;
esac
