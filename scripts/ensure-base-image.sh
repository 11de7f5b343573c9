#!/usr/bin/env bash
# Makes sure the base image every pgha image builds FROM exists locally.
# Why: there may be no container registry. The normal path (image present, or
# `docker pull` works) is tried first; otherwise a minimal Debian root is built
# with debootstrap from the mirror the host's apt already uses, then
# `docker import`ed and tagged, so `FROM debian:bookworm-slim` resolves locally.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
SUITE=${DEBIAN_SUITE:-bookworm}
CACHE_DIR=${PGHA_CACHE:-$HOME/.cache/pgha}

log() { echo "ensure-base-image: $*" >&2; }

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  exit 0
fi
if timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
  log "pulled $BASE_IMAGE"
  exit 0
fi

# The first http(s) mirror apt is configured with, in either sources format.
apt_mirror() {
  local files
  files=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$files" ] || return 0
  # shellcheck disable=SC2086
  grep -hE '^(deb |URIs:)' $files 2>/dev/null \
    | grep -v security \
    | grep -oE 'https?://[^ ]+' \
    | head -n 1
}
MIRROR=${DEBIAN_MIRROR:-$(apt_mirror)}
if [ -z "$MIRROR" ]; then
  log "cannot find an apt mirror in /etc/apt/sources*; set DEBIAN_MIRROR"
  exit 1
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null \
    || { apt-get -o DPkg::Lock::Timeout=600 update -qq \
         && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null; }
fi

mkdir -p "$CACHE_DIR"
ROOTFS=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
trap 'rm -rf "$ROOTFS"' EXIT
log "debootstrap $SUITE from $MIRROR (about 30 s)"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
  || { tail -n 20 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
# Slim the image the way the official -slim variant does: no apt lists, docs or man pages.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* \
  "$ROOTFS"/var/cache/apt/*.bin
tar -C "$ROOTFS" -c . | docker import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
log "imported $BASE_IMAGE ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE") bytes)"
