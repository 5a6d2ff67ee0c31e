#!/usr/bin/env bash
# Payment suite runner: named load-test profiles, headless, with reports and an SLO verdict.
#
#   ./scripts/run_tests.sh <profile> [extra locust args]
#   ./scripts/run_tests.sh list [--json] | help
#
# The profiles are the entries of profiles.toml; `python -m profiles plan <profile>` turns one into
# the Locust command after validating every setting (config.py), and this script runs it.
# Exit status (docs/reports.md#exit-status): 0 pass, 1 threshold breached or unexpected failures,
# 2 usage or configuration error, 3 target unreachable, 4 money mismatch, 5 run integrity in doubt
# (the most severe wins: 4, 5, 1). Locust's status (the master's, the container's) passes through unchanged.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"

SANDBOX_PID=""
LOCUST_PID=""
WORKER_PIDS=()

stdlib_python() {  # list/help need only the standard library: no virtualenv required
  if [ -x "$PY" ]; then printf '%s' "$PY"; else printf '%s' python3; fi
}

cleanup() {
  local pid
  for pid in "${WORKER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$SANDBOX_PID" ] && kill -0 "$SANDBOX_PID" 2>/dev/null; then
    say "sandbox: stopping (started for this run)"
    kill -TERM "$SANDBOX_PID" 2>/dev/null || true
    wait "$SANDBOX_PID" 2>/dev/null || true
  fi
}

forward_signal() {
  # Let Locust shut down gracefully: it writes every report before exiting.
  if [ -n "$LOCUST_PID" ]; then kill -TERM "$LOCUST_PID" 2>/dev/null || true; fi
}

start_sandbox() {
  local which="$1" bank_url="${2:-}" log="$PLAN_REPORT_DIR/sandbox.log" i
  say "sandbox: nothing answers on the default targets; starting the bundled sandbox ($which) for this run"
  if [ "$which" = "payment" ]; then
    "$PY" -m sandbox payment --bank-url "$bank_url" >"$log" 2>&1 &
  else
    "$PY" -m sandbox "$which" >"$log" 2>&1 &
  fi
  SANDBOX_PID=$!
  for i in $(seq 1 100); do
    if grep -q "listening" "$log" 2>/dev/null && { [ "$which" != both ] || [ "$(grep -c listening "$log")" -ge 2 ]; }; then
      return 0
    fi
    kill -0 "$SANDBOX_PID" 2>/dev/null || break
    sleep 0.2
    : "$i"
  done
  say "sandbox: failed to start:"; cat "$log" >&2
  exit 3
}

# Sets PLAN_* (and exports the profile's environment) for profile $1; "$2" is plan or ui.
load_plan() {
  local kind="$1" name="$2" plan
  shift 2
  plan="$("$PY" -m profiles "$kind" "$name" "$@")" || exit $?
  eval "$plan"
}

print_command() {
  local word
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:,=@%+-]+$ ]]; then printf '%s ' "$word"; else printf '%q ' "$word"; fi
  done
  printf '\n'
}

preflight() {
  local pre pre_rc=0 heavy=()
  [ "$PLAN_HEAVY" = 1 ] && heavy=(--heavy)
  pre="$("$PY" preflight.py --profile "$PLAN_NAME" --needs "$PLAN_NEEDS" "${heavy[@]}")" || pre_rc=$?
  case "$pre_rc" in
    0) ;;
    10) # shellcheck disable=SC2086 # "payment <url>" splits into its two words on purpose
        start_sandbox $pre ;;
    *) exit "$pre_rc" ;;
  esac
}

run_locust() {  # runs PLAN_CMD in the background, forwarding signals; returns its exit status
  local rc=0
  trap forward_signal INT TERM
  "${PLAN_CMD[@]}" &
  LOCUST_PID=$!
  wait "$LOCUST_PID" || rc=$?
  # A signal interrupts the first wait; wait again for Locust to finish writing its reports.
  while kill -0 "$LOCUST_PID" 2>/dev/null; do wait "$LOCUST_PID" || rc=$?; done
  trap - INT TERM
  return "$rc"
}

run_load_profile() {
  load_plan plan "$@"
  if [ "$PLAN_DRY_RUN" = 1 ]; then
    print_command "${PLAN_CMD[@]}"
    if [ "$PLAN_WORKERS" -gt 0 ]; then printf '%s x %s\n' "$PLAN_WORKERS" "${PLAN_WORKER_CMD[*]}"; fi
    return 0
  fi
  preflight
  local i rc=0
  # The previous run's files go aside until this run has written its summary (report_set.py):
  # the folder then holds one run's complete set, never a mix of two.
  "$PY" -m report_set aside "$PLAN_NAME" "$PLAN_REPORT_DIR"
  for i in $(seq 1 "$PLAN_WORKERS"); do
    "${PLAN_WORKER_CMD[@]}" >"$PLAN_REPORT_DIR/$PLAN_NAME-worker-$i.log" 2>&1 &
    WORKER_PIDS+=($!)
  done
  if [ "$PLAN_WORKERS" -gt 0 ]; then printf '%s\n' "${WORKER_PIDS[@]}" >"$PLAN_REPORT_DIR/$PLAN_NAME-workers.pids"; fi
  say "run: profile $PLAN_NAME, $PLAN_SUMMARY -> $PLAN_REPORT_DIR/"
  run_locust || rc=$?
  for i in "${WORKER_PIDS[@]}"; do kill "$i" 2>/dev/null || true; wait "$i" 2>/dev/null || true; done
  "$PY" -m report_set finish "$PLAN_NAME" "$PLAN_REPORT_DIR"
  return "$rc"
}

run_ui() {
  local name="${1:-smoke}"
  [ "$#" -gt 0 ] && shift
  load_plan ui "$name" "$@"
  if [ "$PLAN_DRY_RUN" = 1 ]; then print_command "${PLAN_CMD[@]}"; return 0; fi
  preflight
  say "ui: http://${WEB_HOST:-127.0.0.1}:${WEB_PORT:-8089} (Ctrl-C to stop; the summary is written on exit)"
  run_locust
}

docker_compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"
  elif command -v docker-compose >/dev/null 2>&1; then docker-compose "$@"
  else say "docker: neither 'docker compose' nor docker-compose is installed"; exit 3
  fi
}

run_docker() {  # $1: compose profile ("" = the UI master); ends with the master's exit status
  local profile="$1" master=master worker=worker rc waiter logs_pid cid
  local files=(-f docker-compose.locust.yml)
  if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    say "docker: no Docker engine is reachable; use the 'distributed' profile for master + workers without Docker"
    exit 3
  fi
  ensure_venv requirements.txt
  "$PY" -c 'import config; config.get_settings()' || exit $?  # a bad setting: one line, exit 2
  if [ -n "$profile" ]; then
    master="${profile%-test}-master" worker="${profile%-test}-worker"
    files+=(--profile "$profile")
  fi
  mkdir -p "${REPORT_DIR:-reports}"  # created by us, not by Docker: the containers write as its owner
  say "docker: $master + ${WORKERS:-2} x $worker (docker-compose.locust.yml${profile:+, profile $profile})"
  deploy/docker/build.sh || exit 3  # the image of every service (a local base where locustio/locust cannot be pulled)
  docker_compose "${files[@]}" up -d --scale "$worker=${WORKERS:-2}" "$master" "$worker" || exit 3
  cid="$(docker_compose "${files[@]}" ps -q "$master")"
  [ -n "$cid" ] || { say "docker: $master did not start"; exit 3; }
  docker_compose "${files[@]}" logs -f "$master" "$worker" &
  logs_pid=$!
  # Ctrl-C / SIGTERM: stop the master gracefully (it writes every report), then end as it did.
  trap 'say "docker: stopping $master"; docker_compose "${files[@]}" stop -t 60 "$master" >/dev/null 2>&1 || true' INT TERM
  docker wait "$cid" >/dev/null &
  waiter=$!
  while kill -0 "$waiter" 2>/dev/null; do wait "$waiter" || true; done
  trap - INT TERM
  rc="$(docker inspect -f '{{.State.ExitCode}}' "$cid")"
  kill "$logs_pid" 2>/dev/null || true
  wait "$logs_pid" 2>/dev/null || true
  docker_compose "${files[@]}" stop -t 30 >/dev/null 2>&1 || true  # its workers and the sandbox
  say "docker: $master exited with status $rc (reports in ${REPORT_DIR:-reports}/)"
  return "$rc"
}

stop_docker() {  # every service of every profile of the compose file
  local profiles=() p
  for p in $(docker_compose -f docker-compose.locust.yml config --profiles); do profiles+=(--profile "$p"); done
  docker_compose -f docker-compose.locust.yml "${profiles[@]}" down --remove-orphans
}

# Settings the master/worker commands use, validated (one line per bad variable, exit 2).
distributed_settings() {
  local values
  values="$("$PY" -c 'from config import get_settings as g
s = g()
print(s.master_host, s.master_port, s.master_bind_host, s.expect_workers or s.workers)')" || exit $?
  read -r MASTER_HOST_V MASTER_PORT_V MASTER_BIND_V EXPECT_WORKERS_V <<<"$values"
}

targets_for_remote_run() {  # the targets must answer; a sandbox on this machine's loopback would not do
  local pre_rc=0 heavy=()
  [ "$PLAN_HEAVY" = 1 ] && heavy=(--heavy)
  "$PY" preflight.py --profile "$PLAN_NAME" --needs "$PLAN_NEEDS" "${heavy[@]}" >/dev/null || pre_rc=$?
  if [ "$pre_rc" = 10 ]; then
    say "target unreachable: nothing answers at the sandbox defaults; start the targets where every machine reaches"
    say "them (python -m sandbox --host 0.0.0.0) and set PAYMENT_SERVICE_URL / BANKING_API_URL to that address"
    exit 3
  fi
  [ "$pre_rc" = 0 ] || exit "$pre_rc"
}

run_master() {  # master <profile> [extra locust args]: workers come from other machines
  local name="${1:-}"
  [ -n "$name" ] || { say "error: master needs a profile name (run_tests.sh master smoke)"; exit 2; }
  shift
  distributed_settings
  local bind=(--master-bind-host "$MASTER_BIND_V")
  load_plan plan "$name" "$@" --master "${bind[@]}" --master-bind-port "$MASTER_PORT_V" \
    --expect-workers "$EXPECT_WORKERS_V" --expect-workers-max-wait 300
  if [ "$PLAN_DRY_RUN" = 1 ]; then print_command "${PLAN_CMD[@]}"; return 0; fi
  targets_for_remote_run
  say "master: profile $PLAN_NAME, $PLAN_SUMMARY; waiting for $EXPECT_WORKERS_V workers on ${MASTER_BIND_V}:$MASTER_PORT_V -> $PLAN_REPORT_DIR/"
  local rc=0
  "$PY" -m report_set aside "$PLAN_NAME" "$PLAN_REPORT_DIR"  # as run_load_profile: one run's set, never two
  run_locust || rc=$?
  "$PY" -m report_set finish "$PLAN_NAME" "$PLAN_REPORT_DIR"
  return "$rc"
}

run_worker() {  # worker [profile]: the profile's locustfiles and wait times, the master's load
  local name="${1:-basic}" locustfiles="" i
  [ "$#" -gt 0 ] && shift
  distributed_settings
  load_plan plan "$name" "$@"  # its extra arguments (an extra locustfile for RATE_CLASS) checked too
  for i in "${!PLAN_CMD[@]}"; do [ "${PLAN_CMD[$i]}" = -f ] && locustfiles="${PLAN_CMD[$((i + 1))]}"; done
  PLAN_CMD=("$PY" -m locust -f "$locustfiles" --worker --master-host "$MASTER_HOST_V" --master-port "$MASTER_PORT_V" "$@")
  if [ "$PLAN_DRY_RUN" = 1 ]; then print_command "${PLAN_CMD[@]}"; return 0; fi
  targets_for_remote_run
  say "worker: connecting to $MASTER_HOST_V:$MASTER_PORT_V (profile $PLAN_NAME)"
  run_locust
}

main() {
  local profile="${1:-}"
  if [ -z "$profile" ]; then "$(stdlib_python)" -m profiles help >&2; exit 2; fi
  shift
  case "$profile" in
    help|-h|--help) exec "$(stdlib_python)" -m profiles help ;;
    list) exec "$(stdlib_python)" -m profiles list "$@" ;;
    compare)
      [ -n "${1:-}" ] || { say "error: compare needs a profile name"; exit 2; }
      if [ ! -f "${REPORT_DIR:-reports}/$1-summary.json" ]; then  # nothing to compare is not a mistake
        say "compare: no run of '$1' in ${REPORT_DIR:-reports}/ yet, so nothing to compare; run ./scripts/run_tests.sh $1"
        exit 0
      fi
      ensure_venv requirements.txt
      exec "$PY" -m reporting.compare --report-dir "${REPORT_DIR:-reports}" "$1" ;;
    history)
      ensure_venv requirements.txt
      exec "$PY" -m reporting.history --report-dir "${REPORT_DIR:-reports}" "$@" ;;
    docker|docker-*)
      local docker_rc=0 set=""
      # docker-<profile>: the compose profile named by the profile's `compose` entry (profiles.toml)
      if [ "$profile" != docker ]; then set="$("$(stdlib_python)" -m profiles compose "$profile")" || exit 2; fi
      run_docker "$set" || docker_rc=$?
      exit "$docker_rc" ;;
    stop-docker) stop_docker ;;
    master|worker)
      ensure_venv requirements.txt
      local dist_rc=0
      if [ "$profile" = master ]; then run_master "$@" || dist_rc=$?; else run_worker "$@" || dist_rc=$?; fi
      exit "$dist_rc" ;;
    ui)
      ensure_venv requirements.txt
      trap cleanup EXIT
      local ui_rc=0
      run_ui "$@" || ui_rc=$?
      exit "$ui_rc" ;;
    *)
      ensure_venv requirements.txt
      trap cleanup EXIT
      local rc=0
      run_load_profile "$profile" "$@" || rc=$?
      exit "$rc" ;;
  esac
}

main "$@"
