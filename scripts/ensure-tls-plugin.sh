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
# Neither the sources nor the binary ever enter this repository. The steps are
# plugin-build.sh's, shared with ensure-docker-plugin.sh; here: the sources and module edits.
set -euo pipefail

PLUGIN=tls
VERSION=${TLS_PLUGIN_VERSION:-5.5.1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENDOR=${PGHA_VENDOR:-$ROOT/../shared/vendor}/pulumi-tls
CACHE=${PGHA_CACHE:-$HOME/.cache/pgha}/pulumi-tls-v$VERSION
SRC_TGZ=pulumi-tls-$VERSION.tar.gz
# The archive as SOURCES.md records it; a changed archive is not built.
declare -A SOURCES=([$SRC_TGZ]=869f875a042a8560720e493c2965fd7bb73bb6dbff83713c005c5e98457ff6c4)
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

COMPILE_COLD="about 9 min on 2 cores"
# shellcheck source=scripts/plugin-build.sh
source "$ROOT/scripts/plugin-build.sh"

prepare_sources() {
    local src=$1 r edits=()
    tar -C "$src" -xzf "$VENDOR/$SRC_TGZ" --strip-components=1
    [[ -d $src/provider ]] || die "$SRC_TGZ has no provider/ directory"
    generate_schema "$src" "about 4 min"
    for r in "${REPLACES[@]}"; do edits+=(-replace "$r"); done
    (cd "$src/provider" && go mod edit "${edits[@]}")
}

ensure_plugin "$@"
