#!/usr/bin/env bash
# The multi-host test bed: N Docker-in-Docker "hosts" on one machine (`make hosts-up`,
# `make hosts-down`). Why: pgha:hosts places nodes on separate Docker engines, and the
# tests need several engines with their own addresses without several machines.
#
#   scripts/hosts.sh up [N]     # idempotent; prints one line per host: name url address
#   scripts/hosts.sh down [N]   # removes the hosts, their volumes and the network
#   scripts/hosts.sh env [N]    # the same lines as `up`, for hosts already running
#
# Each host is a container `<PGHA_HOSTS_NAME>-<i>` (i = 1..N, name default pgha-host)
# from images/dind, with:
#   - its own data root, the named volume `<name>-<i>-docker`;
#   - a fixed address 172.31.240.(10+i) on the network `pgha-hosts` (created here,
#     subnet PGHA_HOSTS_SUBNET, chosen to be unlikely to clash);
#   - its engine API published on 127.0.0.1:(PGHA_HOSTS_PORT_BASE + i), plain TCP:
#     the entrypoint refuses it from anywhere but this machine;
#   - the base image loaded into it (no registry is needed on the hosts).
# Two beds on one machine (two people, two checkouts) need their own PGHA_HOSTS_NAME,
# PGHA_HOSTS_NETWORK, PGHA_HOSTS_SUBNET and PGHA_HOSTS_PORT_BASE; the name must start
# with `pgha-` (the tests name a host by what follows it).
# Flags: --privileged fails here (see ../shared/notes/measured-here.md), so the host
# gets every capability but SYS_RESOURCE, no seccomp, writable /sys and /proc paths, all
# devices in its cgroup and a private cgroup namespace; --init so `docker stop` is quick.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMD=${1:-up}
N=${2:-${PGHA_HOSTS:-3}}
NET=${PGHA_HOSTS_NETWORK:-pgha-hosts}
SUBNET=${PGHA_HOSTS_SUBNET:-172.31.240.0/24}
PORT_BASE=${PGHA_HOSTS_PORT_BASE:-23750}
HOST_NAME=${PGHA_HOSTS_NAME:-pgha-host}
BASE_IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
IMAGE=pgha-dind:latest
prefix=${SUBNET%.*}

log() { echo "hosts: $*" >&2; }
name() { echo "$HOST_NAME-$1"; }
address() { echo "$prefix.$((10 + $1))"; }
url() { echo "tcp://127.0.0.1:$((PORT_BASE + $1))"; }

wait_engine() {  # wait_engine <i>
  local i=$1 t=0
  until docker -H "$(url "$i")" info >/dev/null 2>&1; do
    t=$((t + 1))
    if [ "$t" -gt 120 ]; then
      log "$(name "$i"): engine not answering after 60 s"; docker logs --tail 30 "$(name "$i")" >&2
      return 1
    fi
    sleep 0.5
  done
}

up() {
  "$ROOT/scripts/ensure-base-image.sh"
  # The classic builder: the host CLI may have no buildx plugin (BuildKit needs it).
  log "image $IMAGE (images/dind)"
  DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" \
    "$ROOT/images/dind" >/dev/null
  docker network inspect "$NET" >/dev/null 2>&1 \
    || docker network create --driver bridge --subnet "$SUBNET" --label pgha.hosts=1 "$NET" >/dev/null
  for i in $(seq 1 "$N"); do
    local n
    n=$(name "$i")
    if ! docker container inspect "$n" >/dev/null 2>&1; then
      docker volume create --label pgha.hosts=1 "$n-docker" >/dev/null
      docker run -d --name "$n" --hostname "$n" --label pgha.hosts=1 --init \
        --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt systempaths=unconfined \
        --device-cgroup-rule 'a *:* rwm' --cgroupns private \
        --network "$NET" --ip "$(address "$i")" \
        -p "127.0.0.1:$((PORT_BASE + i)):2375" \
        -v "$n-docker:/var/lib/docker" \
        "$IMAGE" >/dev/null
    elif [ "$(docker container inspect -f '{{.State.Running}}' "$n")" != true ]; then
      docker start "$n" >/dev/null
    fi
  done
  for i in $(seq 1 "$N"); do
    wait_engine "$i"
    local h
    h=$(url "$i")
    if ! docker -H "$h" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
      docker save "$BASE_IMAGE" | docker -H "$h" load -q >/dev/null
    fi
    log "$(name "$i") $h $(address "$i") storage=$(docker -H "$h" info -f '{{.Driver}}')"
  done
  list
}

list() {
  for i in $(seq 1 "$N"); do echo "$(name "$i") $(url "$i") $(address "$i")"; done
}

down() {
  for i in $(seq 1 "$N"); do
    docker rm -f "$(name "$i")" >/dev/null 2>&1 || true
    docker volume rm "$(name "$i")-docker" >/dev/null 2>&1 || true
  done
  docker network rm "$NET" >/dev/null 2>&1 || true
  log "removed $N hosts"
}

case "$CMD" in
  up) up ;;
  down) down ;;
  env) list ;;
  *) echo "usage: $0 up|down|env [N]" >&2; exit 2 ;;
esac
