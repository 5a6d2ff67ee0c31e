#!/usr/bin/env bash
# Payment suite runner: named load-test profiles, headless, with reports and an SLO verdict.
#
#   ./scripts/run_tests.sh <profile> [extra locust args]
#   ./scripts/run_tests.sh list [--json] | help
#
# The profiles are the entries of profiles.toml; `python -m profiles plan <profile>` turns one into
# the Locust command after validating every setting (config.py), and this script runs it.
# Exit status: 0 pass, 1 thresholds breached / unexpected failures / money / run integrity in doubt,
# 2 usage or configuration error, 3 target unreachable.
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
  local i
  for i in $(seq 1 "$PLAN_WORKERS"); do
    "${PLAN_WORKER_CMD[@]}" >"$PLAN_REPORT_DIR/$PLAN_NAME-worker-$i.log" 2>&1 &
    WORKER_PIDS+=($!)
  done
  if [ "$PLAN_WORKERS" -gt 0 ]; then printf '%s\n' "${WORKER_PIDS[@]}" >"$PLAN_REPORT_DIR/$PLAN_NAME-workers.pids"; fi
  say "run: profile $PLAN_NAME, $PLAN_SUMMARY -> $PLAN_REPORT_DIR/"
  run_locust
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

run_docker() {
  local profile="$1"
  if ! docker info >/dev/null 2>&1; then
    say "docker: no Docker engine is reachable; use the 'distributed' profile for master + workers without Docker"
    exit 3
  fi
  if [ -n "$profile" ]; then
    local prefix="${profile%-test}"
    docker_compose -f docker-compose.locust.yml --profile "$profile" up "$prefix-master" "$prefix-worker" \
      --scale "$prefix-worker=${WORKERS:-2}"
  else
    docker_compose -f docker-compose.locust.yml up --scale "worker=${WORKERS:-2}"
  fi
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
      ensure_venv requirements.txt
      exec "$PY" -m reporting.compare --report-dir "${REPORT_DIR:-reports}" "$1" ;;
    history)
      ensure_venv requirements.txt
      exec "$PY" -m reporting.history --report-dir "${REPORT_DIR:-reports}" "$@" ;;
    docker) run_docker "" ;;
    docker-volume) run_docker volume-test ;;
    docker-banking) run_docker banking-test ;;
    docker-failures) run_docker failure-test ;;
    stop-docker) docker_compose -f docker-compose.locust.yml --profile '*' down --remove-orphans ;;
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
