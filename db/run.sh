#!/usr/bin/env bash
# The body of `make run` and `make stop`: keyhub serve on LISTEN_ADDR
# (default localhost:8080) with the project's PostgreSQL cluster
# (db/pgcluster.sh, in PG_DIR) unless DATABASE_URL is set, and dev-mode
# sign-in unless SUPABASE_URL is set.
#
#   db/run.sh serve KEYHUB_BINARY   what make run does
#   db/run.sh stop                  stop every make run of this checkout, then the cluster
#
# Every way of stopping a run ends the same way: keyhub shuts down
# gracefully, then the cluster is stopped unless another make run still
# uses it (each run registers in .keyhub/run/; the last one out stops it),
# and the run exits 0 without make printing an error:
#   - Ctrl-C, SIGTERM to make (make passes it on), to this script or to
#     the whole process group: the signal is passed to keyhub once;
#   - make killed with SIGKILL: the kernel sends this script SIGTERM
#     (setpriv's parent-death signal, see the Makefile);
#   - this script killed with SIGKILL: it is only a thin shell around a
#     second copy of itself ("serve-inner", which the kernel then sends
#     SIGTERM the same way), so the cleanup still runs;
#   - anything harsher (the inner copy killed with SIGKILL, a reboot): keyhub
#     gets SIGTERM from the kernel, and the cluster, left running, is stopped
#     by the next make run to leave, or by make stop.
set -euo pipefail

log() { printf 'make run: %s\n' "$*" >&2; }

SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$SELF")/.."
PG_DIR=${PG_DIR:-.keyhub/pg}
RUN_DIR=$(dirname "$PG_DIR")/run # .keyhub/run: one file per live make run

# pdeathsig CMD... &: starts CMD in the background, sent SIGTERM by the
# kernel when this process dies (Linux; elsewhere without that guarantee).
# It execs, so $! is CMD itself, not a subshell between: a signal sent to
# $! reaches CMD, and CMD's parent is this script.
pdeathsig() {
  if command -v setpriv >/dev/null 2>&1; then
    exec setpriv --pdeathsig TERM -- "$@"
  fi
  exec "$@"
}

# lock serializes registering and leaving, so a run starting while the
# last one leaves does not find its cluster stopped under it. Commands run
# under it get 9>&-: PostgreSQL would inherit the descriptor and hold the
# lock for as long as it runs.
lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
}
unlock() { exec 9>&-; }

# alive PID: a make run of this checkout is running as PID.
alive() {
  kill -0 "$1" 2>/dev/null && ps -o args= -p "$1" 2>/dev/null | grep -q 'run\.sh serve-inner'
}

# cluster_users prints the live runs registered as using the cluster,
# removing the files of runs that died without leaving.
cluster_users() {
  local f pid
  for f in "$RUN_DIR"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(basename "$f" .pid)
    if alive "$pid"; then
      grep -qx cluster "$f" && echo "$pid"
    else
      rm -f "$f"
    fi
  done
  return 0
}

port_free() { ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_child PID: waits for a child of this shell, through interruptions by
# trapped signals; returns its exit status.
wait_child() {
  local status
  while :; do
    if wait "$1"; then status=0; else status=$?; fi
    kill -0 "$1" 2>/dev/null || return "$status"
  done
}

# serve: the thin outer copy. It only passes signals on to the inner copy,
# which the kernel also signals if this one is killed outright. It runs
# under its own parent-death signal, so killing make outright stops it too.
serve() {
  if command -v setpriv >/dev/null 2>&1; then
    exec setpriv --pdeathsig TERM -- "$SELF" serve-outer "$@"
  fi
  serve_outer "$@"
}

serve_outer() {
  local inner
  pdeathsig "$SELF" serve-inner "$@" &
  inner=$!
  trap 'kill -TERM "$inner" 2>/dev/null || true' TERM INT HUP
  wait_child "$inner"
}

USING=""     # "cluster" once this run is registered as using the cluster
KEYHUB_PID=""
STOPPING=""

leave() {
  trap '' TERM INT HUP # the cleanup runs to its end
  lock
  rm -f "$RUN_DIR/$$.pid"
  if [ "$USING" = cluster ]; then
    if [ -z "$(cluster_users)" ]; then
      db/pgcluster.sh stop "$PG_DIR" 9>&- || true
    else
      log "another make run still uses the database; leaving it running"
    fi
  fi
  unlock
}

on_signal() {
  STOPPING=1
  if [ -n "$KEYHUB_PID" ]; then kill -TERM "$KEYHUB_PID" 2>/dev/null || true; fi
}

serve_inner() {
  local keyhub=$1 host port p next="" status
  export LISTEN_ADDR=${LISTEN_ADDR:-localhost:8080}
  host=${LISTEN_ADDR%:*} port=${LISTEN_ADDR##*:}
  host=${host:-127.0.0.1}
  if ! port_free "$host" "$port"; then
    for p in $(seq $((port + 1)) $((port + 20))); do
      if port_free "$host" "$p"; then next=$p; break; fi
    done
    log "$LISTEN_ADDR is already in use (another make run? make stop stops every one)."
    [ -n "$next" ] && log "a second server: LISTEN_ADDR=${LISTEN_ADDR%:*}:$next make run"
    exit 1
  fi

  trap on_signal TERM INT HUP
  trap leave EXIT
  lock
  if [ -z "${DATABASE_URL:-}" ]; then
    echo cluster >"$RUN_DIR/$$.pid"
    USING=cluster
    DATABASE_URL=$(db/pgcluster.sh start "$PG_DIR" 9>&-)
    export DATABASE_URL
  else
    echo external >"$RUN_DIR/$$.pid"
  fi
  unlock
  if [ -z "${SUPABASE_URL:-}${SUPABASE_JWKS_URL:-}" ]; then export KEYHUB_DEV=1; fi
  # No load balancer in front of a dev server: nothing to drain for.
  export SHUTDOWN_DRAIN_DELAY=${SHUTDOWN_DRAIN_DELAY:-0}

  "$keyhub" migrate up &
  KEYHUB_PID=$!
  if wait_child "$KEYHUB_PID"; then status=0; else status=$?; fi
  KEYHUB_PID=""
  if [ -n "$STOPPING" ]; then exit 0; fi # stopped while migrating: no error
  [ "$status" = 0 ] || exit "$status"

  pdeathsig "$keyhub" serve &
  KEYHUB_PID=$!
  if wait_child "$KEYHUB_PID"; then status=0; else status=$?; fi
  KEYHUB_PID=""
  # Stopped by a signal, keyhub shut down gracefully and exits 0; a
  # failure (an address taken meanwhile, a bad setting) keeps its status.
  exit "$status"
}

# stop: every make run of this checkout shuts down as on Ctrl-C; then the
# cluster, which a run killed outright may have left running, is stopped.
stop() {
  local f pid pids=() deadline
  mkdir -p "$RUN_DIR"
  for f in "$RUN_DIR"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(basename "$f" .pid)
    if alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    else
      rm -f "$f"
    fi
  done
  # Each run waits for keyhub's graceful shutdown (SHUTDOWN_TIMEOUT, 15 s
  # by default) before it leaves.
  deadline=$((SECONDS + 60))
  for pid in ${pids[@]+"${pids[@]}"}; do
    while alive "$pid"; do
      if [ "$SECONDS" -ge "$deadline" ]; then log "run $pid did not stop within 60 s"; exit 1; fi
      sleep 0.1
    done
    log "stopped the make run with pid $pid"
  done
  lock
  if [ -z "$(cluster_users)" ]; then db/pgcluster.sh stop "$PG_DIR" 9>&-; fi
  unlock
}

cmd=${1:-}
case "$cmd" in
  serve) shift; serve "${1:?usage: $0 serve KEYHUB_BINARY}" ;;
  serve-outer) shift; serve_outer "$1" ;;
  serve-inner) shift; serve_inner "$1" ;;
  stop) stop ;;
  *) echo "usage: $0 serve KEYHUB_BINARY | stop" >&2; exit 2 ;;
esac
