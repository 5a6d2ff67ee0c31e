#!/usr/bin/env bash
# Shared helpers for the scripts; source it. ensure_venv creates .venv on first use and
# reinstalls only when the requirements file changes.

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$ROOT_DIR/.venv}"
PY="$VENV_DIR/bin/python"

say() { printf '%s\n' "$*" >&2; }

stamp_for() {  # the marker an install of requirements file $1 leaves, keyed by its content
  printf '%s/.installed-%s-%s' "$VENV_DIR" "$1" "$(cat "$ROOT_DIR/$1" "$ROOT_DIR/requirements.txt" | sha256sum | cut -c1-16)"
}

ensure_venv() {
  local reqs="${1:-requirements.txt}"
  [ -f "$(stamp_for "$reqs")" ] && return 0
  # the dev requirements include the runtime ones
  [ "$reqs" = requirements.txt ] && [ -f "$(stamp_for requirements-dev.txt)" ] && return 0
  if [ ! -x "$PY" ]; then
    say "setup: creating $VENV_DIR (first run)"
    # Debian ships venv separately (python3-venv); fall back to virtualenv from PyPI.
    if ! python3 -m venv "$VENV_DIR" >/dev/null 2>&1; then
      rm -rf "$VENV_DIR"
      python3 -m pip install --quiet --user virtualenv >/dev/null 2>&1 \
        || python3 -m pip install --quiet --break-system-packages --user virtualenv
      python3 -m virtualenv --quiet "$VENV_DIR"
    fi
  fi
  say "setup: installing $reqs into $VENV_DIR"
  "$PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT_DIR/$reqs"
  rm -f "$VENV_DIR/.installed-$reqs-"*
  touch "$(stamp_for "$reqs")"
}
