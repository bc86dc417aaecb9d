#!/usr/bin/env bash
# Runs a throwaway Redis for `make test`: the rate-limit tests that need one
# (internal/ratelimit, internal/httpapi) read KEYHUB_TEST_REDIS_URL. As root,
# Debian's redis-server package is installed when missing (db/require.sh).
#
#   db/redis.sh throwaway -- CMD   start redis-server on a free loopback port in a
#                                  temp folder, run CMD with KEYHUB_TEST_REDIS_URL
#                                  set, then stop it and remove the folder
set -euo pipefail

log() { printf 'redis: %s\n' "$*" >&2; }

find_server() {
  if command -v redis-server >/dev/null 2>&1; then command -v redis-server; return; fi
  # Installs Debian's redis-server package as root (waiting for another apt).
  "$(dirname "$0")/require.sh" redis-server
  if command -v redis-server >/dev/null 2>&1; then command -v redis-server; return; fi
  log "redis-server not found. Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)."
  exit 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  local p
  for p in $(seq 16379 16479); do
    if port_free "$p"; then echo "$p"; return; fi
  done
  log "no free port between 16379 and 16479 (below the ephemeral range, where TIME-WAIT sockets can hold a port)"; exit 1
}

REDIS_DIR=""
REDIS_PID=""
cleanup() {
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
  if [ -n "$REDIS_DIR" ]; then rm -rf "$REDIS_DIR"; fi
}

throwaway() {
  local server dir port
  server=$(find_server)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/keyhub-redis.XXXXXX")
  port=$(pick_port)
  # No persistence: the data is test buckets, gone with the folder.
  "$server" --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --logfile "$dir/redis.log" --daemonize no &
  REDIS_PID=$! REDIS_DIR=$dir
  trap cleanup EXIT
  local i
  for i in $(seq 1 100); do
    if ! port_free "$port"; then break; fi
    if ! kill -0 "$REDIS_PID" 2>/dev/null; then cat "$dir/redis.log" >&2 || true; log "redis-server did not start"; exit 1; fi
    sleep 0.05
  done
  log "started redis-server on 127.0.0.1:$port"
  KEYHUB_TEST_REDIS_URL="redis://127.0.0.1:$port/0" "$@"
}

cmd=${1:-}
case "$cmd" in
  throwaway) shift; [ "${1:-}" = "--" ] && shift; throwaway "$@" ;;
  *) echo "usage: $0 throwaway -- CMD..." >&2; exit 2 ;;
esac
