#!/usr/bin/env bash
# A local base image for the suite's Dockerfile, for machines that cannot pull locustio/locust:
# Debian bookworm (minbase) with Python 3.11, venv and the CA certificates of this host, made with
# debootstrap from the Debian mirror apt already uses.
#
#   sudo deploy/docker/local-base.sh [image]        default image: payment-suite-base:bookworm
#   docker build --build-arg BASE_IMAGE=payment-suite-base:bookworm -t payment-load-suite:2.47.0 .
#
# Needs root, debootstrap and a running Docker engine. The root filesystem is cached as a tarball in
# SUITE_CACHE_DIR (default /var/cache/payment-load-suite), keyed by the recipe below and the host's
# extra CA certificates (/usr/local/share/ca-certificates), so a second run only imports it.
# DEBIAN_MIRROR overrides the mirror.
set -euo pipefail

image="${1:-payment-suite-base:bookworm}"
cache="${SUITE_CACHE_DIR:-/var/cache/payment-load-suite}"
say() { printf 'local-base: %s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  say "$image is present"
  exit 0
fi

mirror_from_apt() {  # the first Debian (not security) mirror of apt's sources
  local uri
  uri="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | grep '/debian/*$' | head -n1 || true)"
  [ -n "$uri" ] || uri="$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | grep '/debian/*$' | head -n1 || true)"
  printf '%s' "${uri:-http://deb.debian.org/debian}"
}

extra_certs=()
for crt in /usr/local/share/ca-certificates/*.crt; do [ -f "$crt" ] && extra_certs+=("$crt"); done
recipe="bookworm minbase python3,python3-venv,python3-pip,ca-certificates"
key="$( { printf '%s\n' "$recipe"; cat /dev/null "${extra_certs[@]}"; } | sha256sum | cut -c1-16)"
tarball="$cache/base-bookworm-$key.tar"

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { say "debootstrap is not installed (apt-get install debootstrap)"; exit 3; }
  mirror="${DEBIAN_MIRROR:-$(mirror_from_apt)}"
  root="$(mktemp -d /var/tmp/suite-base.XXXXXX)"
  trap 'rm -rf "$root"' EXIT
  say "debootstrap bookworm from $mirror (about a minute)"
  debootstrap --variant=minbase --include="${recipe#bookworm minbase }" \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; exit 3; }
  rm -f "$root.log"
  if [ "${#extra_certs[@]}" -gt 0 ]; then
    cp "${extra_certs[@]}" "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  mkdir -p "$cache"
  tar -C "$root" -c . >"$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
  find "$cache" -name 'base-bookworm-*.tar' ! -name "${tarball##*/}" -delete  # older keys
fi
say "importing $tarball as $image"
docker import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
