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
# Neither the sources nor the binary ever enter this repository.
set -euo pipefail

VERSION=${DOCKER_PLUGIN_VERSION:-5.1.0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENDOR=${PGHA_VENDOR:-$ROOT/../shared/vendor}/pulumi-docker
CACHE=${PGHA_CACHE:-$HOME/.cache/pgha}/pulumi-docker-v$VERSION
PROVIDER_SRC=pulumi-docker-$VERSION.tar.gz
UPSTREAM_SRC=terraform-provider-docker-5074970c.tar.gz
# The archives as SOURCES.md records them; a changed archive is not built.
declare -A SHA256=(
    [$PROVIDER_SRC]=e5f9659497ac7cd34c7d130462d49483a91ea920243ff2ffb092704a4cae6ae4
    [$UPSTREAM_SRC]=6407e93fd078b27d3c28a3115e74dccf52e965eb006eb49e09273099c5ae93c0
)

log() { printf 'docker-plugin: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

installed() {
    pulumi plugin ls --json 2>/dev/null |
        jq -e --arg v "$VERSION" 'any(.[]; .name == "docker" and .kind == "resource" and .version == $v)' >/dev/null
}

BUILD_ONLY=false
[[ ${1:-} == --build-only ]] && BUILD_ONLY=true

if ! $BUILD_ONLY; then
installed && { log "docker $VERSION already installed"; exit 0; }

# 1. The path a user with internet access has.
if pulumi plugin install resource docker "$VERSION" >"${TMPDIR:-/tmp}/pgha-plugin-install.log" 2>&1; then
    log "installed docker $VERSION from Pulumi's release site"
    exit 0
fi
log "download of docker $VERSION failed ($(tail -n 1 "${TMPDIR:-/tmp}/pgha-plugin-install.log")); building from sources"
fi

# 2. Build from the vendored sources, once per version.
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
bin=$CACHE/bin/pulumi-resource-docker
if [[ ! -s $bin ]]; then
    for f in "$PROVIDER_SRC" "$UPSTREAM_SRC"; do
        [[ -f $VENDOR/$f ]] || die "cannot download the plugin and no sources at $VENDOR/$f.
  Either give this machine access to Pulumi's release site (pulumi plugin install resource docker $VERSION),
  or set PGHA_VENDOR to a directory holding pulumi-docker/{$PROVIDER_SRC,$UPSTREAM_SRC}."
        echo "${SHA256[$f]}  $VENDOR/$f" | sha256sum -c --quiet - ||
            die "$VENDOR/$f does not match the sha256 in SOURCES.md; refusing to build it"
    done
    command -v go >/dev/null || die "Go is needed to build the plugin from sources"
    export GOMODCACHE=$CACHE/gomodcache GOCACHE=$CACHE/gocache
    export GOWORK=off GO111MODULE=on CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
    src=$CACHE/src
    rm -rf "$src" && mkdir -p "$src/upstream"
    tar -C "$src" -xzf "$VENDOR/$PROVIDER_SRC" --strip-components=1
    tar -C "$src/upstream" -xzf "$VENDOR/$UPSTREAM_SRC" --strip-components=1
    # The provider's go.mod replaces the Terraform provider with ../upstream,
    # patched as the provider's own build does.
    for p in "$src"/patches/*.patch; do
        patch -s -d "$src/upstream" -p1 <"$p"
    done
    start=$SECONDS
    log "generating the schema (cold: about 90 s)"
    (cd "$src/provider/cmd/pulumi-resource-docker" && VERSION=$VERSION go run ./generate.go) \
        >"$CACHE/generate.log" 2>&1 || { tail -n 30 "$CACHE/generate.log" >&2; die "schema generation failed"; }
    log "compiling (cold: about 5 min on 2 cores)"
    mkdir -p "$CACHE/bin"
    # Build the package, not the module graph: the graph names modules the
    # proxy refuses (pulumi-java) that the plugin binary does not need.
    (cd "$src/provider" && go build -trimpath \
        -ldflags "-s -w -X github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version=$VERSION" \
        -o "$bin.tmp" ./cmd/pulumi-resource-docker) >"$CACHE/build.log" 2>&1 ||
        { tail -n 30 "$CACHE/build.log" >&2; die "building pulumi-resource-docker failed"; }
    mv -f "$bin.tmp" "$bin"
    log "built in $((SECONDS - start)) s"
fi
$BUILD_ONLY && exit 0
pulumi plugin install resource docker "$VERSION" --file "$bin" >/dev/null
installed || die "pulumi plugin ls does not list docker $VERSION after installing $bin"
log "installed docker $VERSION built from $VENDOR"
