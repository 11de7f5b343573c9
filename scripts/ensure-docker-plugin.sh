#!/usr/bin/env bash
# ensure-docker-plugin.sh - make `pulumi plugin ls` list the official docker
# resource plugin (pulumi-docker) at $DOCKER_PLUGIN_VERSION; idempotent.
#
# Why this exists: the plugin is normally downloaded by `pulumi plugin install`
# from Pulumi's release site, which machines that reach only package registries
# cannot do, and the Go module proxy refuses the provider's own module. So:
#   1. the normal path first: `pulumi plugin install resource docker <v>`
#      (fails in about 2 s where the download site does not resolve);
#   2. else, if the unmodified public sources are present ($PGHA_VENDOR, see
#      its SOURCES.md), check their sha256 and build the plugin with Go
#      (its dependencies come from the module proxy), cached per version
#      outside the repository, and install it with `--file`;
#   3. else fail with one message naming both ways.
# `--build-only` does step 2 without the CLI (no install): setup.sh runs it
# beside the CLI build when the release site is unreachable, so the two
# cold builds overlap instead of adding up.
# Neither the sources nor the binary ever enter this repository. The steps are
# plugin-build.sh's, shared with ensure-tls-plugin.sh; here: the sources and their patches.
set -euo pipefail

PLUGIN=docker
VERSION=${DOCKER_PLUGIN_VERSION:-5.1.0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENDOR=${PGHA_VENDOR:-$ROOT/../shared/vendor}/pulumi-docker
CACHE=${PGHA_CACHE:-$HOME/.cache/pgha}/pulumi-docker-v$VERSION
PROVIDER_SRC=pulumi-docker-$VERSION.tar.gz
UPSTREAM_SRC=terraform-provider-docker-5074970c.tar.gz
# The archives as SOURCES.md records them; a changed archive is not built.
declare -A SOURCES=(
    [$PROVIDER_SRC]=e5f9659497ac7cd34c7d130462d49483a91ea920243ff2ffb092704a4cae6ae4
    [$UPSTREAM_SRC]=6407e93fd078b27d3c28a3115e74dccf52e965eb006eb49e09273099c5ae93c0
)
COMPILE_COLD="about 5 min on 2 cores"
# shellcheck source=scripts/plugin-build.sh
source "$ROOT/scripts/plugin-build.sh"

prepare_sources() {
    local src=$1 p
    mkdir -p "$src/upstream"
    tar -C "$src" -xzf "$VENDOR/$PROVIDER_SRC" --strip-components=1
    tar -C "$src/upstream" -xzf "$VENDOR/$UPSTREAM_SRC" --strip-components=1
    # The provider's go.mod replaces the Terraform provider with ../upstream,
    # patched as the provider's own build does.
    for p in "$src"/patches/*.patch; do
        patch -s -d "$src/upstream" -p1 <"$p"
    done
    generate_schema "$src" "about 90 s"
}

ensure_plugin "$@"
