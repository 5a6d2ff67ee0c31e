#!/usr/bin/env bash
# Run every benchmark (installs nginx with njs, wrk and the Python deps first). Loopback only.
#   ./bench/run_all.sh                 all, default sizes
#   PROCESSES="1 2 4 8 11" ./bench/run_all.sh   scaling on a bigger machine
set -euo pipefail
cd "$(dirname "$0")/.."
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
"$PY" -m bench.sandbox_throughput
echo "results in bench/results/"
