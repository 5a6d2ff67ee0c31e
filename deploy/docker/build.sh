#!/usr/bin/env bash
# Build the suite's image, payment-load-suite:2.47.0 (SUITE_IMAGE), from the checkout.
#
#   deploy/docker/build.sh
#
# The base is SUITE_BASE_IMAGE when set; else the official locustio/locust:2.47.0 when it is here or
# can be pulled; else the local base of deploy/docker/local-base.sh (Debian with Python 3.11, made
# once with debootstrap; that step needs root). How this machine reaches PyPI goes in as build
# arguments, used by the build stage only: PIP_INDEX_URL / PIP_EXTRA_INDEX_URL (their http(s) URLs),
# PIP_TRUSTED_HOST, and EXTRA_CA_CERTS (default: the certificates in /usr/local/share/ca-certificates).
# The docker commands of scripts/run_tests.sh run this first; a rebuild reuses Docker's layer cache.
set -euo pipefail
cd "$(dirname "$0")/../.."

image="${SUITE_IMAGE:-payment-load-suite:2.47.0}"
official="locustio/locust:2.47.0"
local_base="payment-suite-base:bookworm"
say() { printf 'build: %s\n' "$*" >&2; }

base="${SUITE_BASE_IMAGE:-}"
if [ -z "$base" ]; then
  if docker image inspect "$official" >/dev/null 2>&1 || timeout 300 docker pull -q "$official" >/dev/null 2>&1; then
    base="$official"
  else
    say "$official cannot be pulled here; building on the local base $local_base"
    deploy/docker/local-base.sh "$local_base" || exit 3
    base="$local_base"
  fi
fi

args=(--build-arg "BASE_IMAGE=$base" --label payment-load-suite=image)
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL; do
  urls=()
  for url in ${!var:-}; do case "$url" in http://*|https://*) urls+=("$url") ;; esac; done
  if [ "${#urls[@]}" -gt 0 ]; then args+=(--build-arg "$var=${urls[*]}"); fi
done
if [ -n "${PIP_TRUSTED_HOST:-}" ]; then args+=(--build-arg "PIP_TRUSTED_HOST=$PIP_TRUSTED_HOST"); fi
certs="${EXTRA_CA_CERTS:-}"
if [ -z "$certs" ]; then
  for crt in /usr/local/share/ca-certificates/*.crt; do [ -f "$crt" ] && certs+="$(cat "$crt")"$'\n'; done
fi
if [ -n "$certs" ]; then args+=(--build-arg "EXTRA_CA_CERTS=$certs"); fi

started=$SECONDS
docker build -q "${args[@]}" -t "$image" . >/dev/null
# Earlier builds of the image, dangling now, would otherwise pile up build after build.
docker image prune -f --filter label=payment-load-suite=image >/dev/null 2>&1 || true
say "$image on $base ($((SECONDS - started)) s)"
