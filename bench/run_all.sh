#!/usr/bin/env bash
# Run the benchmarks (installs nginx with njs, wrk and the Python deps first). Loopback only.
#   ./bench/run_all.sh                 the short ones: startup, generator efficiency, memory and
#                                      scaling, metrics cost, sandbox throughput
#   ./bench/run_all.sh --long          also the long ones: the generator soak (10 minutes) and the
#                                      open-model bench (bench/open_model.py, about 14 minutes)
#   PROCESSES="1 2 4 8 11" ./bench/run_all.sh   scaling on a bigger machine
# Never run from here: the calibration bench (python -m bench.calibration, its own section of
# docs/performance.md) and the endurance-profile memory pairs (20+ minutes each, two at once; the
# procedure is in bench/results/generator_endurance_memory.json).
set -euo pipefail
cd "$(dirname "$0")/.."
long=false
case "${1:-}" in
  "") ;;
  --long) long=true ;;
  *) echo "run_all.sh: unknown argument '$1' (allowed: --long)" >&2; exit 2 ;;
esac
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ensure_venv requirements-dev.txt
if ! command -v wrk >/dev/null || [ ! -f /usr/lib/nginx/modules/ngx_http_js_module.so ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-http-js wrk
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-http-js wrk
  fi
fi
"$PY" -m bench.startup
"$PY" -m bench.generator efficiency
"$PY" -m bench.generator memory
# shellcheck disable=SC2086 # a list of numbers
"$PY" -m bench.generator scaling --processes ${PROCESSES:-1}
"$PY" -m bench.metrics_cost
"$PY" -m bench.sandbox_throughput
if "$long"; then
  "$PY" -m bench.generator soak
  "$PY" bench/open_model.py
fi
echo "results in bench/results/"
