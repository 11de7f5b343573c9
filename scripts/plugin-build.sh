# plugin-build.sh - the skeleton that ensure-docker-plugin.sh and ensure-tls-plugin.sh share
# (sourced by them, never run): install a Pulumi resource plugin from Pulumi's release site,
# else build it from unmodified, checksummed public sources with Go, once per version.
#
# Why one skeleton: both plugins take the same three steps (the release site, else the
# vendored sources, else one error naming both ways); only their sources, the way they
# are prepared for `go build`, and their timings differ. The caller sets:
#   PLUGIN (docker | tls), VERSION, VENDOR (its sources' folder), CACHE (per version),
#   SOURCES (an associative array: archive -> sha256, as its SOURCES.md records them),
#   COMPILE_COLD (how long a cold compile takes, for the log),
# and defines prepare_sources SRC: unpack the checked archives into SRC and make
# SRC/provider buildable (generate_schema is there for it).

log() { printf '%s-plugin: %s\n' "$PLUGIN" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

installed() {
    pulumi plugin ls --json 2>/dev/null |
        jq -e --arg n "$PLUGIN" --arg v "$VERSION" \
            'any(.[]; .name == $n and .kind == "resource" and .version == $v)' >/dev/null
}

# generate_schema SRC COLD: the provider's schema, which its build embeds.
generate_schema() {
    log "generating the schema (cold: $2)"
    (cd "$1/provider/cmd/pulumi-resource-$PLUGIN" && VERSION=$VERSION go run ./generate.go) \
        >"$CACHE/generate.log" 2>&1 || { tail -n 30 "$CACHE/generate.log" >&2; die "schema generation failed"; }
}

check_sources() {
    local f
    for f in "${!SOURCES[@]}"; do
        [[ -f $VENDOR/$f ]] || die "cannot download the plugin and no sources at $VENDOR/$f.
  Either give this machine access to Pulumi's release site (pulumi plugin install resource $PLUGIN $VERSION),
  or set PGHA_VENDOR to a directory holding pulumi-$PLUGIN/{${!SOURCES[*]}}."
        echo "${SOURCES[$f]}  $VENDOR/$f" | sha256sum -c --quiet - ||
            die "$VENDOR/$f does not match the sha256 in SOURCES.md; refusing to build it"
    done
}

build() {
    local bin=$1 src=$CACHE/src start=$SECONDS
    check_sources
    command -v go >/dev/null || die "Go is needed to build the plugin from sources"
    export GOMODCACHE=$CACHE/gomodcache GOCACHE=$CACHE/gocache
    export GOWORK=off GO111MODULE=on CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
    rm -rf "$src" && mkdir -p "$src"
    prepare_sources "$src"
    log "compiling (cold: $COMPILE_COLD)"
    mkdir -p "$CACHE/bin"
    # Build the package, not the module graph: the graph names modules the proxy
    # refuses that the plugin binary does not need.
    (cd "$src/provider" && go build -trimpath \
        -ldflags "-s -w -X github.com/pulumi/pulumi-$PLUGIN/provider/v5/pkg/version.Version=$VERSION" \
        -o "$bin.tmp" "./cmd/pulumi-resource-$PLUGIN") >"$CACHE/build.log" 2>&1 ||
        { tail -n 30 "$CACHE/build.log" >&2; die "building pulumi-resource-$PLUGIN failed"; }
    mv -f "$bin.tmp" "$bin"
    log "built in $((SECONDS - start)) s"
}

# ensure_plugin [--build-only]: the three steps; --build-only builds without the CLI (no
# install), so setup.sh can run it beside the CLI's own cold build.
ensure_plugin() {
    local build_only=false
    [[ ${1:-} == --build-only ]] && build_only=true
    if ! $build_only; then
        installed && { log "$PLUGIN $VERSION already installed"; exit 0; }
        # 1. The path a user with internet access has.
        local install_log=${TMPDIR:-/tmp}/pgha-$PLUGIN-plugin-install.log
        if pulumi plugin install resource "$PLUGIN" "$VERSION" >"$install_log" 2>&1; then
            log "installed $PLUGIN $VERSION from Pulumi's release site"
            exit 0
        fi
        log "download of $PLUGIN $VERSION failed ($(tail -n 1 "$install_log")); building from sources"
    fi
    # 2. Build from the vendored sources, once per version.
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    local bin=$CACHE/bin/pulumi-resource-$PLUGIN
    [[ -s $bin ]] || build "$bin"
    $build_only && exit 0
    pulumi plugin install resource "$PLUGIN" "$VERSION" --file "$bin" >/dev/null
    installed || die "pulumi plugin ls does not list $PLUGIN $VERSION after installing $bin"
    log "installed $PLUGIN $VERSION built from $VENDOR"
}
