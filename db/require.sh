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
# apt waits for a lock another apt holds (a shared machine, an unattended
# upgrade) instead of failing at once: APT_LOCK_TIMEOUT seconds (default
# 600). `apt-get update` ignores DPkg::Lock::Timeout, so the script waits
# for the lists lock itself, for as long.
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

apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" "$@"
}

# apt_update refreshes the package lists, waiting for another apt-get update
# to release the lists lock (apt-get update fails at once when it is held).
apt_update() {
  local deadline=$((SECONDS + APT_LOCK_TIMEOUT)) out said=""
  while :; do
    if out=$(apt_get update -q 2>&1); then return 0; fi
    if ! grep -q 'Could not get lock' <<<"$out" || [ "$SECONDS" -ge "$deadline" ]; then
      printf '%s\n' "$out" >&2
      return 1
    fi
    [ -n "$said" ] || log "another apt holds the package lists; waiting for it"
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
  if apt_get install "${opts[@]}" "$@" >&2; then return 0; fi
  log "apt-get install failed; updating the package lists and trying again"
  apt_update && apt_get install "${opts[@]}" "$@" >&2
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
