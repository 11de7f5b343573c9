#!/usr/bin/env bash
# ensure-tls-plugin.sh - make `pulumi plugin ls` list the official tls resource
# plugin (pulumi-tls) at $TLS_PLUGIN_VERSION; idempotent.
#
# Why this exists: the stack CA that signs the backup repository's TLS server
# and client certificates is declared with pulumi-tls, whose plugin is normally
# downloaded by `pulumi plugin install` from Pulumi's release site, which
# machines that reach only package registries cannot do. So, as for the docker
# plugin (ensure-docker-plugin.sh):
#   1. the normal path first: `pulumi plugin install resource tls <v>`;
#   2. else, if the unmodified public sources are present ($PGHA_VENDOR, see
#      pulumi-tls/SOURCES.md), check their sha256 and build the plugin with Go,
#      cached per version outside the repository, and install it with `--file`.
#      The tag pins three pseudo-versions that the module proxy refuses; they
#      are replaced by the neighbours SOURCES.md records as working (two of
#      them are used only by code generation, not by the running provider);
#   3. else fail with one message naming both ways.
# `--build-only` does step 2 without the CLI (no install), so setup.sh can run
# it beside the other cold builds (about 13 min cold on 2 cores).
# Neither the sources nor the binary ever enter this repository.
set -euo pipefail

VERSION=${TLS_PLUGIN_VERSION:-5.5.1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENDOR=${PGHA_VENDOR:-$ROOT/../shared/vendor}/pulumi-tls
CACHE=${PGHA_CACHE:-$HOME/.cache/pgha}/pulumi-tls-v$VERSION
SRC_TGZ=pulumi-tls-$VERSION.tar.gz
# The archive as SOURCES.md records it; a changed archive is not built.
SHA256=869f875a042a8560720e493c2965fd7bb73bb6dbff83713c005c5e98457ff6c4
# Module substitutes (from => to) that SOURCES.md records as working with 5.5.1.
# pkg and sdk stay at 3.253.0: pulumi-yaml 1.38.0 would lift them to a version
# that breaks the bridge's dotnet and java code generators.
REPLACES=(
    github.com/hashicorp/terraform-provider-tls@v1.2.1-0.20260513075833-609226f53114=github.com/hashicorp/terraform-provider-tls@v1.2.1-0.20260130152455-857b38cda3fc
    github.com/pulumi/pulumi-yaml@v1.37.1-0.20260717123218-294c561f47f4=github.com/pulumi/pulumi-yaml@v1.38.0
    github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3@v3.107.4-0.20260720135410-6a2eb2585b50=github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3@v3.107.3
    github.com/pulumi/pulumi/pkg/v3=github.com/pulumi/pulumi/pkg/v3@v3.253.0
    github.com/pulumi/pulumi/sdk/v3=github.com/pulumi/pulumi/sdk/v3@v3.253.0
)

log() { printf 'tls-plugin: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

installed() {
    pulumi plugin ls --json 2>/dev/null |
        jq -e --arg v "$VERSION" 'any(.[]; .name == "tls" and .kind == "resource" and .version == $v)' >/dev/null
}

BUILD_ONLY=false
[[ ${1:-} == --build-only ]] && BUILD_ONLY=true

if ! $BUILD_ONLY; then
installed && { log "tls $VERSION already installed"; exit 0; }

# 1. The path a user with internet access has.
if pulumi plugin install resource tls "$VERSION" >"${TMPDIR:-/tmp}/pgha-tls-plugin-install.log" 2>&1; then
    log "installed tls $VERSION from Pulumi's release site"
    exit 0
fi
log "download of tls $VERSION failed ($(tail -n 1 "${TMPDIR:-/tmp}/pgha-tls-plugin-install.log")); building from sources"
fi

# 2. Build from the vendored sources, once per version.
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
bin=$CACHE/bin/pulumi-resource-tls
if [[ ! -s $bin ]]; then
    [[ -f $VENDOR/$SRC_TGZ ]] || die "cannot download the plugin and no sources at $VENDOR/$SRC_TGZ.
  Either give this machine access to Pulumi's release site (pulumi plugin install resource tls $VERSION),
  or set PGHA_VENDOR to a directory holding pulumi-tls/$SRC_TGZ."
    echo "$SHA256  $VENDOR/$SRC_TGZ" | sha256sum -c --quiet - ||
        die "$VENDOR/$SRC_TGZ does not match the sha256 in SOURCES.md; refusing to build it"
    command -v go >/dev/null || die "Go is needed to build the plugin from sources"
    export GOMODCACHE=$CACHE/gomodcache GOCACHE=$CACHE/gocache
    export GOWORK=off GO111MODULE=on CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
    src=$CACHE/src
    rm -rf "$src" && mkdir -p "$src"
    tar -C "$src" -xzf "$VENDOR/$SRC_TGZ" --strip-components=1
    [[ -d $src/provider ]] || die "$SRC_TGZ has no provider/ directory"
    start=$SECONDS
    log "generating the schema (cold: about 4 min)"
    (cd "$src/provider/cmd/pulumi-resource-tls" && VERSION=$VERSION go run ./generate.go) \
        >"$CACHE/generate.log" 2>&1 || { tail -n 30 "$CACHE/generate.log" >&2; die "schema generation failed"; }
    edits=()
    for r in "${REPLACES[@]}"; do edits+=(-replace "$r"); done
    (cd "$src/provider" && go mod edit "${edits[@]}")
    log "compiling (cold: about 9 min on 2 cores)"
    mkdir -p "$CACHE/bin"
    (cd "$src/provider" && go build -trimpath \
        -ldflags "-s -w -X github.com/pulumi/pulumi-tls/provider/v5/pkg/version.Version=$VERSION" \
        -o "$bin.tmp" ./cmd/pulumi-resource-tls) >"$CACHE/build.log" 2>&1 ||
        { tail -n 30 "$CACHE/build.log" >&2; die "building pulumi-resource-tls failed"; }
    mv -f "$bin.tmp" "$bin"
    log "built in $((SECONDS - start)) s"
fi
$BUILD_ONLY && exit 0
pulumi plugin install resource tls "$VERSION" --file "$bin" >/dev/null
installed || die "pulumi plugin ls does not list tls $VERSION after installing $bin"
log "installed tls $VERSION built from $VENDOR"
