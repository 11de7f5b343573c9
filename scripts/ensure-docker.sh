#!/usr/bin/env bash
# Makes sure a Docker engine answers on this host.
# Why: every pgha resource is a container, and CI machines start with only the
# docker client. The normal path (an engine already running) is tried first;
# otherwise Debian's docker.io is installed and dockerd is started in the
# background with its log in ${PGHA_STATE:-$HOME/.cache/pgha}/dockerd.log.
set -euo pipefail

STATE_DIR=${PGHA_STATE:-$HOME/.cache/pgha}
DOCKERD_LOG=${DOCKERD_LOG:-$STATE_DIR/dockerd.log}
DOCKER_WAIT_SECONDS=${DOCKER_WAIT_SECONDS:-60}

log() { echo "ensure-docker: $*" >&2; }

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  log "no Docker engine answers and we are not root."
  log "Start one yourself (e.g. 'sudo systemctl start docker') or add your user to the docker group."
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq docker.io >/dev/null
fi

# systemd is not PID 1 in containers and CI sandboxes, so start dockerd directly.
if ! pgrep -x dockerd >/dev/null 2>&1; then
  mkdir -p "$STATE_DIR"
  log "starting dockerd (log: $DOCKERD_LOG)"
  nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
fi

for _ in $(seq "$DOCKER_WAIT_SECONDS"); do
  if docker info >/dev/null 2>&1; then
    log "engine up: $(docker version --format '{{.Server.Version}}')"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within ${DOCKER_WAIT_SECONDS}s; last log lines:"
tail -n 20 "$DOCKERD_LOG" >&2 || true
exit 1
