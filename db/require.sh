#!/usr/bin/env bash
# Makes sure the Debian packages that `make run` and `make test` use are
# installed: the one place that knows how to find each program and how to
# install it, so every test that runs a real server (PostgreSQL, Redis,
# Chromium, nginx, caddy, ...) finds the same thing in the same way.
#
#   db/require.sh PACKAGE...   e.g. db/require.sh postgresql redis-server nginx
#
# A package counts as present when its program is found (on PATH, or in
# /usr/sbin and /sbin, which a non-root PATH lacks; PostgreSQL's server
# binaries in /usr/lib/postgresql/*/bin). What is missing is installed with
# one apt-get when running as root; otherwise the script prints the command.
#
# Missing packages then mean skipped tests on a laptop, but a failure in CI
# (CI set): a CI run that silently skips the browser or proxy tests proves
# nothing.
#
# apt waits for a lock another apt or dpkg holds (a shared machine, an
# unattended upgrade) instead of failing at once: APT_LOCK_TIMEOUT seconds
# (default 600). DPkg::Lock::Timeout covers only dpkg's locks; the
# package lists' lock (`apt-get update`) and the download directory's
# (taken by an install once it has something to fetch, and held alone by
# a download-only apt) fail at once, so every apt-get runs again while it
# fails on one of those, for as long.
set -euo pipefail

log() { printf 'require: %s\n' "$*" >&2; }

APT_LOCK_TIMEOUT=${APT_LOCK_TIMEOUT:-600}

present() {
  local pkg=$1
  if [ "$pkg" = postgresql ]; then
    if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ]; then return 0; fi
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then return 0; fi
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
    return
  fi
  # Every other package is named after its program.
  PATH="$PATH:/usr/sbin:/sbin" command -v "$pkg" >/dev/null 2>&1
}

# apt_get runs apt-get in the C locale: apt_get_waiting reads its errors.
apt_get() {
  LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" "$@"
}

# apt_get_waiting is apt_get (its output on stderr as it comes), run again
# every 2 s while it fails on a lock another apt holds, until
# APT_LOCK_TIMEOUT has passed. Only the final `E:` lines count: apt prints
# "Could not get lock" also while it waits for dpkg's locks by itself.
apt_get_waiting() {
  local deadline=$((SECONDS + APT_LOCK_TIMEOUT)) out status said=""
  out=$(mktemp) || return 1
  while :; do
    status=0
    apt_get "$@" 2>&1 | tee "$out" >&2 || status=${PIPESTATUS[0]}
    if [ "$status" -eq 0 ] || ! grep -qE '^E: (Could not get lock|Unable to lock|Unable to acquire)' "$out" ||
      [ "$SECONDS" -ge "$deadline" ]; then
      rm -f "$out"
      return "$status"
    fi
    [ -n "$said" ] || log "another apt holds a lock apt-get does not wait for; trying again until it is free (up to ${APT_LOCK_TIMEOUT}s)"
    said=1
    sleep 2
  done
}

install() {
  log "installing Debian packages: $* (apt waits up to ${APT_LOCK_TIMEOUT}s for another apt)"
  local opts=(-y -q)
  # docker-compose recommends docker.io, a whole container engine the
  # `config` check does not use; the others' recommends (Chromium's fonts
  # and sandbox) are wanted.
  case " $* " in *" docker-compose "*) opts+=(--no-install-recommends) ;; esac
  # The lists are fetched only when the install cannot find a package
  # (a fresh container has none): one update, then one more try.
  if apt_get_waiting install "${opts[@]}" "$@"; then return 0; fi
  log "apt-get install failed; updating the package lists and trying again"
  apt_get_waiting update -q && apt_get_waiting install "${opts[@]}" "$@"
}

if [ "$#" -eq 0 ]; then
  echo "usage: $0 PACKAGE..." >&2
  exit 2
fi

missing=()
for pkg in "$@"; do
  present "$pkg" || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  install "${missing[@]}" || log "apt-get install ${missing[*]} failed"
  still=()
  for pkg in "${missing[@]}"; do
    present "$pkg" || still+=("$pkg")
  done
  missing=(${still[@]+"${still[@]}"})
  [ "${#missing[@]}" -eq 0 ] && exit 0
fi

log "missing: ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]})"
if [ -n "${CI:-}" ]; then
  log "CI is set: a missing package is a failure, not a skipped test"
  exit 1
fi
log "the tests that need them will skip"
