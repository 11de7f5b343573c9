#!/usr/bin/env bash
# Makes sure the host programs the tests and the bench run exist: PostgreSQL 15
# (initdb, pg_ctl, postgres, pg_basebackup), redis-server, and wrk (`make bench`
# drives the API with it from the host; installed here so a bench run never
# installs anything itself), and Debian's headless Chromium with its driver, which
# tests/e2e_patroni/test_overview_browser.py drives through Selenium.
# Why: tests/service starts a real primary, a streaming replica and Redis on
# loopback, without Docker. Debian's packages would start system-wide
# instances on install; a temporary policy-rc.d stops that, so nothing
# listens on 5432/6379 that `make up` needs.
set -euo pipefail

log() { echo "ensure-test-servers: $*" >&2; }

have_pg() {
  command -v pg_basebackup >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_basebackup >/dev/null 2>&1
}
missing=()
have_pg || missing+=(postgresql-15)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  log "missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
  exit 1
fi
log "installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
}
