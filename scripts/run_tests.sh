#!/usr/bin/env bash
# Payment suite runner: named load-test profiles, headless, with reports and an SLO verdict.
#
#   ./scripts/run_tests.sh <profile> [extra locust args]
#   ./scripts/run_tests.sh help
#
# Exit status: 0 pass, 1 thresholds breached / unexpected failures / run integrity in doubt,
# 2 usage or configuration error, 3 target unreachable.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"

# One table drives both the help text and the mapping.
# name | users | spawn rate | run time | user classes ("-" = all, weighted) | shape | description
PROFILES=(
  "smoke|5|5|30s|-|-|Quick check of every user class against the targets (the main job)"
  "basic|20|2|60s|-|-|Basic mixed load: all four user classes by weight"
  "volume|200|20|5m|PaymentServiceUser|-|High volume on the PaymentService (short waits)"
  "banking|50|5|3m|BankingAPIUser|-|BankingAPI only: authorize, capture, refund, settle, batch"
  "failures|20|5|2m|FailureSimulationUser|-|Bad input and error paths; every expected error checked"
  "realistic|100|5|10m|RealisticTrafficUser|-|Casual, power and business personas with think times"
  "stress|500|25|20m|-|shapes/stress.py|Stepped ramp until errors or p95 break (LoadTestShape)"
  "spike|200|200|3m|-|shapes/spike.py|Base load, sudden spike, recovery (LoadTestShape)"
  "endurance|50|5|30m|-|-|30-minute soak: latency drift, memory, money over time"
  "distributed|100|10|2m|-|-|Master + WORKERS local worker processes (no Docker)"
  "race|9|9|60s|RefundRaceUser CaptureRaceUser IdempotencyStormUser|race_scenarios.py|Concurrent refunds, captures, idempotency storms; money reconciled"
)
# Profiles that change the default wait times (unless MIN/MAX_WAIT_TIME are set).
FAST_WAITS="smoke volume stress spike"
COMMANDS="help ui compare docker docker-volume docker-banking docker-failures stop-docker"

usage() {
  cat <<USAGE
usage: $(basename "$0") <profile> [extra locust args]

Load profiles:
USAGE
  local row name users rate time classes shape desc
  for row in "${PROFILES[@]}"; do
    IFS='|' read -r name users rate time classes shape desc <<<"$row"
    printf '  %-12s %-58s (%s users, %s/s, %s)\n' "$name" "$desc" "$users" "$rate" "$time"
  done
  cat <<USAGE

Other commands:
  ui [profile]       the web UI (http://127.0.0.1:8089, WEB_PORT) with the class picker; a profile sets
                     its default users and spawn rate. WEB_HOST=0.0.0.0 exposes it and then requires
                     --web-login with WEB_USERNAME and WEB_PASSWORD set
  compare <profile>  compare the last run of <profile> with its last passing run
  docker             distributed run in Docker: master + 2 workers (docker-compose.locust.yml)
  docker-volume      compose profile volume-test (PaymentServiceUser, high volume)
  docker-banking     compose profile banking-test (BankingAPIUser)
  docker-failures    compose profile failure-test (FailureSimulationUser)
  stop-docker        stop every compose service of the suite
  help               this text

Overrides (environment): USERS, SPAWN_RATE, RUN_TIME (e.g. 90s, 5m, 1h30m), LOCUST_HOST (the
PaymentService), WORKERS (distributed, default 2), REPORT_DIR (default reports), DRY_RUN=1 (print
the locust command only), ALLOW_REMOTE_TARGET=yes (heavy profiles against a non-local host).
Targets, token and test data come from .env / the environment (see .env.example).

Reports: REPORT_DIR/<profile>-report.html, <profile>_stats.csv, <profile>_stats_history.csv,
<profile>_failures.csv, <profile>_exceptions.csv, <profile>.json, <profile>-summary.json/.md.
Exit status: 0 pass, 1 fail (thresholds, failures, integrity), 2 usage/config, 3 target unreachable.
USAGE
}

die_usage() { say "error: $*"; say "run '$(basename "$0") help' for the profiles and overrides"; exit 2; }

profile_row() {
  local row
  for row in "${PROFILES[@]}"; do
    [ "${row%%|*}" = "$1" ] && { printf '%s\n' "$row"; return 0; }
  done
  return 1
}

check_overrides() {
  [[ -z "${USERS:-}" || "$USERS" =~ ^[1-9][0-9]*$ ]] || die_usage "USERS='$USERS' must be a positive integer"
  [[ -z "${SPAWN_RATE:-}" || "$SPAWN_RATE" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ && ! "$SPAWN_RATE" =~ ^0*\.?0*$ ]] \
    || die_usage "SPAWN_RATE='$SPAWN_RATE' must be a positive number (users per second)"
  [[ -z "${RUN_TIME:-}" || "$RUN_TIME" =~ ^([0-9]+h)?([0-9]+m)?([0-9]+s?)?$ && "$RUN_TIME" =~ [0-9] ]] \
    || die_usage "RUN_TIME='$RUN_TIME' must be a duration like 90s, 5m or 1h30m"
  [[ -z "${WORKERS:-}" || "$WORKERS" =~ ^[1-9][0-9]?$ ]] || die_usage "WORKERS='$WORKERS' must be 1..99"
  [[ -z "${LOCUST_HOST:-}" || "$LOCUST_HOST" =~ ^https?://[^/]+ ]] \
    || die_usage "LOCUST_HOST='$LOCUST_HOST' must be an http:// or https:// URL"
  return 0
}

SANDBOX_PID=""
LOCUST_PID=""
WORKER_PIDS=()

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
  local which="$1" bank_url="${2:-}" log="$REPORT_DIR/sandbox.log" i
  mkdir -p "$REPORT_DIR"
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

run_load_profile() {
  local name="$1"; shift
  local row users rate time classes shape desc files needs rc
  row="$(profile_row "$name")"
  IFS='|' read -r name users rate time classes shape desc <<<"$row"
  users="${USERS:-$users}"; rate="${SPAWN_RATE:-$rate}"; time="${RUN_TIME:-$time}"
  files="locustfile.py"
  [ "$shape" != "-" ] && files="$files,$shape"  # a LoadTestShape module, or the race scenarios
  needs="payment,bank"

  local -a cmd=("$PY" -m locust -f "$files" --headless -u "$users" -r "$rate" -t "$time"
    --profile-name "$name" --report-dir "$REPORT_DIR" --html "$REPORT_DIR/$name-report.html"
    --csv "$REPORT_DIR/$name" --json-file "$REPORT_DIR/$name" --stop-timeout 10)
  if [ "$classes" != "-" ]; then
    # shellcheck disable=SC2206 # classes are plain words
    cmd+=($classes)
    [ "$classes" = "BankingAPIUser" ] && needs="bank"
  fi
  if [[ " $FAST_WAITS " == *" $name "* ]]; then
    export MIN_WAIT_TIME="${MIN_WAIT_TIME:-100}" MAX_WAIT_TIME="${MAX_WAIT_TIME:-500}"
    export THINK_TIME_SCALE="${THINK_TIME_SCALE:-0.05}"
  fi
  local workers="${WORKERS:-2}"
  if [ "$name" = "distributed" ]; then
    cmd+=(--master --master-bind-host 127.0.0.1 --expect-workers "$workers" --expect-workers-max-wait 60)
  fi
  cmd+=("$@")

  if [ -n "${DRY_RUN:-}" ]; then
    local word
    for word in "${cmd[@]}"; do
      if [[ "$word" =~ ^[A-Za-z0-9_./:,=@%+-]+$ ]]; then printf '%s ' "$word"; else printf '%q ' "$word"; fi
    done
    printf '\n'
    if [ "$name" = "distributed" ]; then
      printf '%s x %s\n' "$workers" "$PY -m locust -f $files --worker --master-host 127.0.0.1"
    fi
    return 0
  fi

  local pre pre_rc=0
  pre="$("$PY" preflight.py --profile "$name" --needs "$needs")" || pre_rc=$?
  case "$pre_rc" in
    0) ;;
    10) # shellcheck disable=SC2086 # "payment <url>" splits into its two words on purpose
        start_sandbox $pre ;;
    *) exit "$pre_rc" ;;
  esac

  mkdir -p "$REPORT_DIR"
  trap forward_signal INT TERM
  if [ "$name" = "distributed" ]; then
    local i
    for i in $(seq 1 "$workers"); do
      "$PY" -m locust -f "$files" --worker --master-host 127.0.0.1 >"$REPORT_DIR/$name-worker-$i.log" 2>&1 &
      WORKER_PIDS+=($!)
    done
    printf '%s\n' "${WORKER_PIDS[@]}" >"$REPORT_DIR/$name-workers.pids"
  fi
  say "run: profile $name, $users users at $rate/s for $time -> $REPORT_DIR/"
  "${cmd[@]}" &
  LOCUST_PID=$!
  rc=0
  wait "$LOCUST_PID" || rc=$?
  # A signal interrupts the first wait; wait again for Locust to finish writing its reports.
  while kill -0 "$LOCUST_PID" 2>/dev/null; do wait "$LOCUST_PID" || rc=$?; done
  trap - INT TERM
  return "$rc"
}

run_ui() {
  local name="${1:-smoke}" row users rate time classes shape desc files host
  [ "$#" -gt 0 ] && shift
  row="$(profile_row "$name")" || die_usage "unknown profile '$name' for ui"
  IFS='|' read -r name users rate time classes shape desc <<<"$row"
  files="locustfile.py"
  [ "$shape" != "-" ] && files="$files,$shape"
  host="${WEB_HOST:-127.0.0.1}"
  local -a cmd=("$PY" -m locust -f "$files" --class-picker --web-host "$host" --web-port "${WEB_PORT:-8089}"
    -u "${USERS:-$users}" -r "${SPAWN_RATE:-$rate}" --profile-name "ui-$name" --report-dir "$REPORT_DIR")
  case "$host" in
    127.*|localhost|::1) ;;
    *) cmd+=(--web-login) ;;  # exposed: a login is required (the locustfile refuses to start without one)
  esac
  cmd+=("$@")
  if [ -n "${DRY_RUN:-}" ]; then printf '%s\n' "${cmd[*]}"; return 0; fi
  local pre pre_rc=0
  pre="$("$PY" preflight.py --profile "ui" --needs payment,bank)" || pre_rc=$?
  case "$pre_rc" in
    0) ;;
    10) # shellcheck disable=SC2086 # "payment <url>" splits into its two words on purpose
        start_sandbox $pre ;;
    *) exit "$pre_rc" ;;
  esac
  say "ui: http://$host:${WEB_PORT:-8089} (Ctrl-C to stop; the summary is written on exit)"
  trap forward_signal INT TERM
  "${cmd[@]}" &
  LOCUST_PID=$!
  local rc=0
  wait "$LOCUST_PID" || rc=$?
  while kill -0 "$LOCUST_PID" 2>/dev/null; do wait "$LOCUST_PID" || rc=$?; done
  return "$rc"
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
  [ -n "$profile" ] || { usage; exit 2; }
  shift
  REPORT_DIR="${REPORT_DIR:-reports}"
  case "$profile" in
    help|-h|--help) usage; exit 0 ;;
  esac
  check_overrides
  case "$profile" in
    compare)
      [ -n "${1:-}" ] || die_usage "compare needs a profile name"
      ensure_venv requirements.txt
      exec "$PY" -m reporting.compare --report-dir "$REPORT_DIR" "$1" ;;
    ui)
      ensure_venv requirements.txt
      trap cleanup EXIT
      local ui_rc=0
      run_ui "$@" || ui_rc=$?
      exit "$ui_rc" ;;
    docker) run_docker "" ;;
    docker-volume) run_docker volume-test ;;
    docker-banking) run_docker banking-test ;;
    docker-failures) run_docker failure-test ;;
    stop-docker) docker_compose -f docker-compose.locust.yml --profile '*' down --remove-orphans ;;
    *)
      profile_row "$profile" >/dev/null || die_usage "unknown profile '$profile' (profiles: $(
        for r in "${PROFILES[@]}"; do printf '%s ' "${r%%|*}"; done)| commands: $COMMANDS)"
      ensure_venv requirements.txt
      trap cleanup EXIT
      local rc=0
      run_load_profile "$profile" "$@" || rc=$?
      exit "$rc" ;;
  esac
}

main "$@"
