#!/usr/bin/env bash
# Run the test suite (creates .venv with the dev requirements on first use).
#   ./scripts/test.sh                 all tests
#   ./scripts/test.sh -m "not faults" skip the slower fault scenarios
#   ./scripts/test.sh tests/sandbox   one folder
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"
ensure_venv requirements-dev.txt
exec "$PY" -m pytest "$@"
