#!/usr/bin/env bash
# build-pulumi.sh - provide the Pulumi CLI and its Python language host in
# $ROOT/.tools/bin (pulumi, pulumi-language-python, pulumi-language-python-exec,
# pulumi-resource-pulumi-python: the host of Python dynamic providers).
#
# Why this exists: on this project's machines only package registries are
# reachable. No registry ships the Pulumi CLI itself (the PyPI `pulumi` package
# is only the Python SDK, the npm `pulumi` package is a downloader), so the
# CLI and language host are compiled from their Go modules via the Go module
# proxy configured in `go env GOPROXY`.
#
# Order of preference:
#   1. a `pulumi` of exactly $PULUMI_VERSION already on PATH (e.g. an official
#      install): it and its sibling language host are linked, nothing is built;
#   2. binaries already built into the per-version cache (outside the repo):
#      they are (re)installed in a second or two;
#   3. otherwise they are built (cold: several minutes on 2 cores) into the
#      cache, with the Go module and build caches kept there too, and installed.
#
# Environment knobs (all optional):
#   PULUMI_VERSION                CLI version to build                 (3.274.1)
#   PULUMI_LANGHOST_VERSION       version of the module
#                                 .../sdk/python/cmd/pulumi-language-python/v3
#                                 to try for the Python language host  ($PULUMI_VERSION)
#   PULUMI_LANGHOST_FALLBACK_SDK  sdk/v3 release to take the language host from
#                                 when that module is not served; the newest
#                                 sdk/v3 release that still carries the host
#                                 in-module and that the proxy serves  (3.68.0)
#   PGHA_CACHE                    cache root                 ($HOME/.cache/pgha)
#   PGHA_PULUMI_FORCE_BUILD=1     ignore a pulumi on PATH and the binary cache
set -euo pipefail

PULUMI_VERSION=${PULUMI_VERSION:-3.274.1}
PULUMI_VERSION=${PULUMI_VERSION#v}
PULUMI_LANGHOST_VERSION=${PULUMI_LANGHOST_VERSION:-$PULUMI_VERSION}
PULUMI_LANGHOST_VERSION=${PULUMI_LANGHOST_VERSION#v}
PULUMI_LANGHOST_FALLBACK_SDK=${PULUMI_LANGHOST_FALLBACK_SDK:-3.68.0}
PULUMI_LANGHOST_FALLBACK_SDK=${PULUMI_LANGHOST_FALLBACK_SDK#v}
PGHA_PULUMI_FORCE_BUILD=${PGHA_PULUMI_FORCE_BUILD:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=$ROOT/.tools/bin
CACHE=${PGHA_CACHE:-$HOME/.cache/pgha}/pulumi-v$PULUMI_VERSION
CACHE_BIN=$CACHE/bin
LOG_DIR=$CACHE/logs

PKG_MOD=github.com/pulumi/pulumi/pkg/v3
SDK_MOD=github.com/pulumi/pulumi/sdk/v3
CLI_MAIN=$PKG_MOD/cmd/pulumi
LANGHOST_MOD=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
LANGHOST_FALLBACK_MAIN=$SDK_MOD/python/cmd/pulumi-language-python
EXEC_SCRIPT_REL=python/cmd/pulumi-language-python-exec
# Runs Python dynamic providers (pgha's failover resource, infra/failover.py).
DYNAMIC_SCRIPT_REL=python/dist/pulumi-resource-pulumi-python
VERSION_VAR=$SDK_MOD/go/common/version.Version

BINARIES=(pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python)

log() { printf 'build-pulumi: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Install $1 as $BIN_DIR/$2 atomically (copy to a temp name, then rename);
# skipped when the installed file is already identical.
install_bin() {
    local src=$1 dst=$BIN_DIR/$2 tmp
    if [[ -f $dst && ! -L $dst ]] && cmp -s "$src" "$dst"; then
        return 0
    fi
    tmp=$(mktemp "$BIN_DIR/.$2.XXXXXX")
    cp "$src" "$tmp"
    chmod 0755 "$tmp"
    mv -f "$tmp" "$dst"
}

# Install a binary found outside our cache as a symlink (atomic rename too).
link_bin() {
    local src=$1 dst=$BIN_DIR/$2
    ln -sfn "$src" "$dst.tmp.$$"
    mv -fT "$dst.tmp.$$" "$dst"
}

mkdir -p "$BIN_DIR"

# --- 1. an exact-version pulumi already on PATH ----------------------------
if [[ $PGHA_PULUMI_FORCE_BUILD != 1 ]] && found=$(command -v pulumi 2>/dev/null); then
    real=$(readlink -f "$found")
    case $real in
        "$BIN_DIR"/* | "$CACHE"/*) ;;   # that is our own install: use the cache path
        *)
            have=$("$real" version 2>/dev/null || true)
            if [[ $have == "v$PULUMI_VERSION" ]]; then
                dir=$(dirname "$real")
                lh=$dir/pulumi-language-python
                [[ -x $lh ]] || lh=$(command -v pulumi-language-python 2>/dev/null || true)
                ex=$dir/pulumi-language-python-exec
                [[ -f $ex ]] || ex=$(command -v pulumi-language-python-exec 2>/dev/null || true)
                if [[ -n $lh && -n $ex ]]; then
                    link_bin "$real" pulumi
                    link_bin "$(readlink -f "$lh")" pulumi-language-python
                    link_bin "$(readlink -f "$ex")" pulumi-language-python-exec
                    dy=$dir/pulumi-resource-pulumi-python
                    [[ -f $dy ]] && link_bin "$(readlink -f "$dy")" pulumi-resource-pulumi-python
                    log "using pulumi $have found at $real (nothing built)"
                    exit 0
                fi
                log "pulumi $have on PATH lacks a Python language host; building instead"
            fi
            ;;
    esac
fi

# --- 2. binaries already in the cache ------------------------------------------
mkdir -p "$CACHE_BIN" "$LOG_DIR"

# One build at a time per version (a second caller waits, then reuses it).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.lock"
    flock 9
fi

cache_complete() {
    local b
    for b in "${BINARIES[@]}"; do [[ -s $CACHE_BIN/$b ]] || return 1; done
}

install_from_cache() {
    local b v
    for b in "${BINARIES[@]}"; do install_bin "$CACHE_BIN/$b" "$b"; done
    v=$("$BIN_DIR/pulumi" version 2>/dev/null || true)
    [[ $v == "v$PULUMI_VERSION" ]] ||
        die "installed $BIN_DIR/pulumi reports '$v', expected v$PULUMI_VERSION (remove $CACHE_BIN to rebuild)"
    log "installed pulumi $v into $BIN_DIR"
    [[ -f $CACHE_BIN/BUILD-INFO ]] && sed 's/^/build-pulumi:   /' "$CACHE_BIN/BUILD-INFO" >&2
    return 0
}

if [[ $PGHA_PULUMI_FORCE_BUILD != 1 ]] && cache_complete; then
    install_from_cache
    exit 0
fi

# --- 3. build ------------------------------------------------------------------
command -v go >/dev/null 2>&1 || die "Go toolchain not found on PATH (needed to build pulumi)"
command -v jq >/dev/null 2>&1 || die "jq not found on PATH (needed to read go.mod JSON; apt-get install jq)"

# Keep every Go cache inside the per-version cache, out of the repo, and make
# sure nothing of an enclosing workspace or vendor setting leaks in.
export GOMODCACHE=$CACHE/gomodcache
export GOCACHE=$CACHE/gocache
export GOWORK=off GO111MODULE=on CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

# Run a quiet step: output goes to a log, shown (tail) only on failure.
step() {
    local name=$1; shift
    local logf=$LOG_DIR/$name.log
    if ! "$@" >"$logf" 2>&1; then
        log "step '$name' failed: $*"
        tail -n 40 "$logf" | sed 's/^/    /' >&2
        log "full log: $logf"
        return 1
    fi
}

# Print the go.mod path of module@version after downloading it; on refusal
# print nothing, leave the error in $LOG_DIR/download-<name>.log, return 1.
download_mod() {
    local modver=$1 name=$2 out
    out=$(go mod download -json "$modver" 2>"$LOG_DIR/download-$name.log") || true
    printf '%s\n' "$out" >>"$LOG_DIR/download-$name.log"
    if [[ -z $out ]] || [[ $(jq -r '.Error // empty' <<<"$out") != "" ]]; then
        return 1
    fi
    jq -r '.GoMod' <<<"$out"
}

download_error() {
    jq -r '.Error // empty' "$LOG_DIR/download-$1.log" 2>/dev/null | head -n 1 || true
}

# Create a wrapper module in $1 that requires module $2 at version $3 and
# imports package $4. Replace directives of $2's go.mod ($5) are carried over:
# a replace pointing at a local directory (a sibling module of the same
# repository) becomes a requirement of that module at the same version; any
# other replace is copied as is.
make_wrapper() {
    local dir=$1 mod=$2 ver=$3 main=$4 gomod=$5 old oldv new newv target
    rm -rf "$dir"
    mkdir -p "$dir"
    (
        cd "$dir"
        go mod init pgha.invalid/pulumi-build >/dev/null 2>&1
        go mod edit -require="$mod@v$ver"
        while IFS='|' read -r old oldv new newv; do
            if [[ -z $newv && ( $new == .* || $new == /* ) ]]; then
                go mod edit -require="$old@v$ver"
            else
                target=$old
                [[ -n $oldv ]] && target=$old@$oldv
                if [[ -n $newv ]]; then
                    go mod edit -replace="$target=$new@$newv"
                else
                    go mod edit -replace="$target=$new"
                fi
            fi
        done < <(go mod edit -json "$gomod" |
            jq -r '(.Replace // [])[] | [.Old.Path, (.Old.Version // ""), .New.Path, (.New.Version // "")] | join("|")')
        printf '//go:build tools\n\n// Package tools pins the program built from this module.\npackage tools\n\nimport _ "%s"\n' \
            "$main" >tools.go
    )
}

# Build package $2 in wrapper dir $1 into $CACHE_BIN/$3 (atomically), with
# the version variable set to $4.
build_main() {
    local dir=$1 main=$2 out=$3 ver=$4 tmp
    tmp=$(mktemp "$CACHE_BIN/.$out.XXXXXX")
    (
        cd "$dir"
        step "tidy-$out" go mod tidy &&
            step "build-$out" go build -trimpath -o "$tmp" \
                -ldflags "-s -w -X $VERSION_VAR=v$ver" "$main"
    ) || { rm -f "$tmp"; return 1; }
    chmod 0755 "$tmp"
    mv -f "$tmp" "$CACHE_BIN/$out"
}

cd "$CACHE"
info=()
start=$SECONDS
log "building pulumi v$PULUMI_VERSION into $CACHE (cold build: several minutes)"

# 3a. the CLI
if [[ $PGHA_PULUMI_FORCE_BUILD == 1 || ! -s $CACHE_BIN/pulumi ]]; then
    gomod=$(download_mod "$PKG_MOD@v$PULUMI_VERSION" pkg) ||
        die "the module proxy refused $PKG_MOD@v$PULUMI_VERSION: $(download_error pkg)
  (set PULUMI_VERSION to another release, e.g. 3.274.0)"
    make_wrapper "$CACHE/src/cli" "$PKG_MOD" "$PULUMI_VERSION" "$CLI_MAIN" "$gomod"
    grep -q "$SDK_MOD v$PULUMI_VERSION" "$CACHE/src/cli/go.mod" ||
        (cd "$CACHE/src/cli" && go mod edit -require="$SDK_MOD@v$PULUMI_VERSION")
    log "compiling $CLI_MAIN@v$PULUMI_VERSION"
    build_main "$CACHE/src/cli" "$CLI_MAIN" pulumi "$PULUMI_VERSION" || die "building the pulumi CLI failed"
    log "  pulumi built ($((SECONDS - start))s)"
fi
info+=("pulumi: $CLI_MAIN@v$PULUMI_VERSION")

# 3b. the Python language host
if [[ $PGHA_PULUMI_FORCE_BUILD == 1 || ! -s $CACHE_BIN/pulumi-language-python ]]; then
    t=$SECONDS
    if gomod=$(download_mod "$LANGHOST_MOD@v$PULUMI_LANGHOST_VERSION" langhost); then
        make_wrapper "$CACHE/src/langhost" "$LANGHOST_MOD" "$PULUMI_LANGHOST_VERSION" "$LANGHOST_MOD" "$gomod"
        lh_main=$LANGHOST_MOD lh_ver=$PULUMI_LANGHOST_VERSION
    else
        log "the module proxy refused $LANGHOST_MOD@v$PULUMI_LANGHOST_VERSION:"
        log "  $(download_error langhost)"
        log "falling back to the language host inside $SDK_MOD@v$PULUMI_LANGHOST_FALLBACK_SDK"
        gomod=$(download_mod "$SDK_MOD@v$PULUMI_LANGHOST_FALLBACK_SDK" langhost-fallback) ||
            die "the module proxy refused $SDK_MOD@v$PULUMI_LANGHOST_FALLBACK_SDK: $(download_error langhost-fallback)"
        make_wrapper "$CACHE/src/langhost" "$SDK_MOD" "$PULUMI_LANGHOST_FALLBACK_SDK" "$LANGHOST_FALLBACK_MAIN" "$gomod"
        lh_main=$LANGHOST_FALLBACK_MAIN lh_ver=$PULUMI_LANGHOST_FALLBACK_SDK
    fi
    log "compiling $lh_main@v$lh_ver"
    build_main "$CACHE/src/langhost" "$lh_main" pulumi-language-python "$lh_ver" ||
        die "building the Python language host failed"
    printf 'pulumi-language-python: %s@v%s\n' "$lh_main" "$lh_ver" >"$CACHE_BIN/.langhost-info"
    log "  pulumi-language-python built ($((SECONDS - t))s)"
fi
[[ -f $CACHE_BIN/.langhost-info ]] && info+=("$(cat "$CACHE_BIN/.langhost-info")")

# 3c. the Python exec shim, a script shipped inside the sdk/v3 module
download_mod "$SDK_MOD@v$PULUMI_VERSION" sdk >/dev/null ||
    die "the module proxy refused $SDK_MOD@v$PULUMI_VERSION: $(download_error sdk)"
for rel in "$EXEC_SCRIPT_REL" "$DYNAMIC_SCRIPT_REL"; do
    src=$GOMODCACHE/$SDK_MOD@v$PULUMI_VERSION/$rel
    [[ -f $src ]] || die "$rel not found in $SDK_MOD@v$PULUMI_VERSION ($src)"
    tmp=$(mktemp "$CACHE_BIN/.script.XXXXXX")
    cp "$src" "$tmp"
    chmod 0755 "$tmp"
    mv -f "$tmp" "$CACHE_BIN/$(basename "$rel")"
    info+=("$(basename "$rel"): $SDK_MOD@v$PULUMI_VERSION/$rel")
done

printf '%s\n' "${info[@]}" >"$CACHE_BIN/BUILD-INFO"
log "build finished in $((SECONDS - start))s"
install_from_cache
