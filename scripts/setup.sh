#!/usr/bin/env bash
# Brings this machine to the point where `pulumi up` works; idempotent.
# Why one script: a fresh machine may have only package registries (no
# container registry, no Pulumi download), so each piece is brought up from
# what is reachable, and a second run only checks and costs seconds:
#   1. a Docker engine (Debian's docker.io, dockerd started if none answers)
#   2. the base image debian:bookworm-slim (pulled, or debootstrapped)
#   3. the project venv with pinned deps, and the API image's wheelhouse
#   4. PostgreSQL, Redis and wrk on the host for the tests and the bench, and promtool
#   5. the Pulumi CLI and Python language host (built from the Go module proxy)
#   6. the official docker and tls resource plugins (downloaded, or built from
#      the vendored public sources: scripts/ensure-docker-plugin.sh,
#      scripts/ensure-tls-plugin.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
BASE_IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
CACHE_DIR=${PGHA_CACHE:-$HOME/.cache/pgha}
export PGHA_CACHE=$CACHE_DIR

step() { echo "setup: $*" >&2; }
mkdir -p "$CACHE_DIR"

step "docker engine"
"$ROOT/scripts/ensure-docker.sh"

step "base image $BASE_IMAGE"
BASE_IMAGE=$BASE_IMAGE "$ROOT/scripts/ensure-base-image.sh"

# pip runs only when a pin changes: pyproject.toml (extras) or the two
# requirements files it reads its dependencies from. The project itself goes
# in editable: the Pulumi program, the dynamic failover provider's process and
# the tests import `infra` and `pgha_testkit` as installed packages.
step "python venv (.venv)"
[ -x "$ROOT/.venv/bin/python" ] || "$PYTHON" -m venv "$ROOT/.venv"
stamp="$ROOT/.venv/.pgha-reqs"
want=$(cat "$ROOT/pyproject.toml" "$ROOT/infra/requirements.txt" "$ROOT/service/requirements.txt" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check -e "$ROOT[dev,bench,docs]"
  echo "$want" >"$stamp"
fi

# Images cannot reach PyPI over HTTPS (no CA bundle inside), so their wheels are
# built here and copied into the build context; rebuilt when the pins change.
wheelhouse() {  # wheelhouse <requirements.txt> <dir>
  local want
  want=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$(cat "$2/.stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$2"
    "$ROOT/.venv/bin/pip" wheel -q --disable-pip-version-check -r "$1" -w "$2"
    echo "$want" >"$2/.stamp"
  fi
}
step "API wheelhouse (service/.wheels)"
wheelhouse "$ROOT/service/requirements.txt" "$ROOT/service/.wheels"
step "Patroni wheelhouse (images/postgres/.wheels)"
wheelhouse "$ROOT/images/postgres/requirements.txt" "$ROOT/images/postgres/.wheels"

step "host programs for the tests and the bench"
"$ROOT/scripts/ensure-test-servers.sh"
# promtool for the alert rules' unit tests: unpacked from Debian's .deb, never installed.
"$ROOT/scripts/ensure-promtool.sh"

step "pulumi toolchain (.tools/bin)"
if ! command -v jq >/dev/null 2>&1 || ! command -v go >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq jq golang-go >/dev/null
fi
# Where Pulumi's release site is unreachable, the plugins will be built from
# sources anyway: start those builds now, beside the CLI's, so the cold builds
# (about 6, 6 and 13 minutes) overlap. A warm cache makes them no-ops.
prebuild=()
if ! curl -fsS -m 5 -o /dev/null https://get.pulumi.com 2>/dev/null; then
  "$ROOT/scripts/ensure-docker-plugin.sh" --build-only &
  prebuild+=($!)
  "$ROOT/scripts/ensure-tls-plugin.sh" --build-only &
  prebuild+=($!)
fi
"$ROOT/scripts/build-pulumi.sh"
for pid in "${prebuild[@]}"; do wait "$pid"; done

# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"
step "pulumi docker provider plugin"
"$ROOT/scripts/ensure-docker-plugin.sh"
step "pulumi tls provider plugin"
"$ROOT/scripts/ensure-tls-plugin.sh"
step "ready: $(pulumi version) with $(python --version)"
