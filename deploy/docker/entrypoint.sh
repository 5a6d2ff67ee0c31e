#!/bin/sh
# Entrypoint of the suite's image (installed as /usr/local/bin/suite-entrypoint).
#
# - Arguments that start with "-" are Locust's: `locust ARGS` runs; any other command runs as given.
# - A LOCUST_<OPTION> variable that is set beats `--<option>=value` on the command line, so the
#   compose files' profile defaults (--users=${USERS:-200}) give way to LOCUST_USERS, LOCUST_SPAWN_RATE,
#   LOCUST_RUN_TIME, ... as Locust's own precedence would not (its command line wins over its
#   environment). Empty LOCUST_* variables (compose passes unset ones through as "") are dropped.
# - SUITE_STANDBY_IF="host ...": when one of those hosts resolves (a headless test master of the same
#   compose project is running), this service is not needed: it says so and idles without running
#   Locust until it is stopped (exit 0). Idling, not exiting: `up --exit-code-from <test master>`
#   stops everything at the first container that exits.
# - Started as root, it runs the command as the owner of ./reports (the host user, when reports/ is a
#   bind mount), so the reports are the host user's files; SUITE_RUN_AS=uid:gid chooses another.
# - A worker (--worker --master-host=H) that ends cleanly stays until H is gone (at most
#   SUITE_WORKER_LINGER_S, default 300 s): the master then exits first, so `up --exit-code-from
#   <master>` reports the master's verdict after its summary is written, not a worker's exit.
set -eu

for name in $(env | sed -n 's/^\(LOCUST_[A-Z0-9_]*\)=$/\1/p'); do unset "$name"; done

if [ -n "${SUITE_STANDBY_IF:-}" ]; then
  sleep "${SUITE_STANDBY_WAIT_S:-2}"
  for host in $SUITE_STANDBY_IF; do
    if getent hosts "$host" >/dev/null 2>&1; then
      echo "suite: '$host' is running in this compose project (a headless test set): this service stands by, idle"
      trap 'exit 0' TERM INT
      while :; do sleep 3600 & wait $! || true; done
    fi
  done
fi

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  # Locust's arguments: drop --option=value where LOCUST_OPTION is set.
  count=$#
  while [ "$count" -gt 0 ]; do
    arg=$1
    shift
    count=$((count - 1))
    case "$arg" in
      --*=*)
        option=${arg%%=*}
        var=LOCUST_$(printf '%s' "${option#--}" | tr 'a-z-' 'A-Z_')
        if env | grep -q "^$var="; then continue; fi ;;
    esac
    set -- "$@" "$arg"
  done
  set -- locust "$@"
fi

master_host=""
case " $* " in *" --worker "*)
  for arg in "$@"; do case "$arg" in --master-host=*) master_host=${arg#--master-host=} ;; esac; done ;;
esac

if [ "$(id -u)" = 0 ]; then
  owner=${SUITE_RUN_AS:-$(stat -c %u:%g reports 2>/dev/null || echo 0:0)}
  if [ "$owner" != 0:0 ]; then
    if [ "$(stat -c %u "${HOME:-/}" 2>/dev/null)" != "${owner%%:*}" ]; then export HOME=/tmp; fi
    set -- python3 -c 'import os, sys
uid, gid = (int(x) for x in sys.argv[1].split(":"))
os.setgroups([]); os.setgid(gid); os.setuid(uid)
os.execvp(sys.argv[2], sys.argv[2:])' "$owner" "$@"
  fi
fi

if [ -z "$master_host" ]; then exec "$@"; fi
"$@" &
child=$!
stopping=0
trap 'stopping=1; kill -TERM "$child" 2>/dev/null || true' TERM INT
rc=0
wait "$child" || rc=$?
while kill -0 "$child" 2>/dev/null; do rc=0; wait "$child" || rc=$?; done  # a trapped signal ends the first wait
if [ "$rc" = 0 ] && [ "$stopping" = 0 ]; then
  waited=0
  while [ "$waited" -lt "${SUITE_WORKER_LINGER_S:-300}" ] && getent hosts "$master_host" >/dev/null 2>&1; do
    sleep 1 & wait $! || true
    [ "$stopping" = 0 ] || break
    waited=$((waited + 1))
  done
fi
exit "$rc"
