#!/usr/bin/env bash
# Brings this machine to the point where `pulumi up` works; idempotent.
# Why one script: a fresh machine may have only package registries (no
# container registry, no Pulumi download), so each piece is brought up from
# what is reachable, and a second run only checks and costs seconds:
#   1. a Docker engine (Debian's docker.io, dockerd started if none answers)
#   2. the base image debian:bookworm-slim (pulled, or debootstrapped)
#   3. the project venv with pinned deps, and the API image's wheelhouse
#   4. PostgreSQL and Redis binaries for the service tests (Debian packages)
#   5. the Pulumi CLI and Python language host (built from the Go module proxy)
#   6. the official docker resource plugin (downloaded, or built from the
#      vendored public sources: scripts/ensure-docker-plugin.sh)
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

# pip runs only when the pinned requirements change.
step "python venv (.venv)"
[ -x "$ROOT/.venv/bin/python" ] || "$PYTHON" -m venv "$ROOT/.venv"
reqs=$("$ROOT/.venv/bin/python" - "$ROOT/pyproject.toml" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["dev"]))
PY
)
stamp="$ROOT/.venv/.pgha-reqs"
if [ "$(cat "$stamp" 2>/dev/null)" != "$reqs" ]; then
  # shellcheck disable=SC2086
  "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check $(echo "$reqs" | tr '\n' ' ')
  echo "$reqs" >"$stamp"
fi
# The Pulumi program (infra/) as an editable package: the program, the dynamic
# failover provider's process and the tests all import it as `infra`.
if ! (cd / && "$ROOT/.venv/bin/python" -c 'import infra, pathlib, sys; sys.exit(pathlib.Path(infra.__file__).parent != pathlib.Path(sys.argv[1]))' "$ROOT/infra") 2>/dev/null; then
  "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT"
fi

# The API image cannot reach PyPI over HTTPS (no CA bundle inside), so its
# wheels are built here and copied into the build context.
step "API wheelhouse (service/.wheels)"
wheels="$ROOT/service/.wheels"
want=$(sha256sum "$ROOT/service/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$wheels/.stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$wheels"
  "$ROOT/.venv/bin/pip" wheel -q --disable-pip-version-check -r "$ROOT/service/requirements.txt" -w "$wheels"
  echo "$want" >"$wheels/.stamp"
fi

step "servers for the service tests"
"$ROOT/scripts/ensure-test-servers.sh"

step "pulumi toolchain (.tools/bin)"
if ! command -v jq >/dev/null 2>&1 || ! command -v go >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq jq golang-go >/dev/null
fi
"$ROOT/scripts/build-pulumi.sh"

# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"
step "pulumi docker provider plugin"
"$ROOT/scripts/ensure-docker-plugin.sh"
step "ready: $(pulumi version) with $(python --version)"
