# pgha: one-command entry points. `make up` deploys the dev stack, `make test`
# proves everything against a throwaway stack; both run `make setup` first.
SHELL := /bin/bash
STACK ?= dev
# Nodes of the throwaway stack the e2e tests deploy.
PGHA_TEST_NODES ?= pg-0 pg-1
ENV := source scripts/env.sh &&

.PHONY: setup up down destroy backup backups restore test test-fast test-unit test-service test-e2e test-e2e-patroni test-e2e-sentinel test-e2e-multihost alerts dashboard hosts-up hosts-down lint failover patronictl shell preview outputs clean bench drill chaos chaos-patroni bench-multihost chaos-sentinel sentinel-failover docs docs-build docs-figures

setup:
	./scripts/setup.sh

up: setup
	$(ENV) ./scripts/stack-up.sh $(STACK)

preview: setup
	$(ENV) pulumi preview --stack $(STACK)

outputs:
	$(ENV) pulumi stack output --stack $(STACK)

# pgha:monitoring: the alerts firing now (Alertmanager's API), and the URL of the cluster
# overview page Prometheus serves (docs/observability.md).
alerts:
	@$(ENV) python -m pgha_testkit.alerts alerts --stack $(STACK)

dashboard:
	@$(ENV) python -m pgha_testkit.alerts dashboard --stack $(STACK)

# pulumi_docker's Image leaves its tags behind on destroy; drop them too (the
# layers stay as build cache, so the next `make up` builds in seconds).
down destroy:
	$(ENV) pulumi destroy --yes --stack $(STACK)
	-docker image rm --no-prune $(foreach r,postgres haproxy redis api etcd redis-ha monitoring,pgha-$(STACK)-$(r):latest) 2>/dev/null
	@if docker volume inspect pgha-$(STACK)-backup-data >/dev/null 2>&1; then \
	  echo "kept the backup repository: volume pgha-$(STACK)-backup-data (restore from it with pgha:restoreFrom $(STACK); remove it with docker volume rm)"; fi

# pgha:backup: a backup now (TYPE=full, diff or incr; default full), and the list of
# backups with the archived WAL range and the recovery window. Both run in the stack's
# repository container, which holds the cipher passphrase and runs every backup.
backup:
	docker exec pgha-$(STACK)-backup pgha-backup now $(or $(TYPE),full)

backups:
	docker exec pgha-$(STACK)-backup pgha-backup info

# Restore is a new stack: `make restore FROM=dev TO=restored TARGET=2026-12-07T14:03:00Z`
# (TARGET defaults to latest) sets pgha:restoreFrom and pgha:restoreTarget on stack TO,
# copies FROM's repository passphrase into TO's pgha:restorePassphrase, and runs `up`.
# Give TO its own ports (pgha:apiPort and the others) first if FROM still runs.
restore: setup
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make restore FROM=dev TO=restored [TARGET=RFC3339|latest]" >&2; exit 2; }
	$(ENV) pulumi stack select --create $(TO) >/dev/null && \
	  pulumi config set --stack $(TO) pgha:restoreFrom $(FROM) && \
	  pulumi config set --stack $(TO) pgha:restoreTarget $(or $(TARGET),latest) && \
	  pulumi config get --stack $(FROM) pgha:backupPassphrase | pulumi config set --secret --stack $(TO) pgha:restorePassphrase && \
	  ./scripts/stack-up.sh $(TO)

# Fail over (or switch over) to another node through stack config.
failover:
	@test -n "$(TO)" || { echo "usage: make failover TO=pg-1" >&2; exit 2; }
	$(ENV) pulumi config set --stack $(STACK) pgha:primary $(TO) && pulumi up --yes --skip-preview --stack $(STACK)

# Patroni's view of a failoverMode=patroni stack, run in its first running node:
# `make patronictl ARGS=list`, or e.g. ARGS="switchover --candidate pg-1 --force".
patronictl:
	@node=$$(docker ps -q --filter label=pgha.stack=pgha-$(STACK) --filter label=pgha.role=postgres | head -n1); \
	test -n "$$node" || { echo "no running PostgreSQL node in stack $(STACK)" >&2; exit 1; }; \
	docker exec -i "$$node" patronictl -c /run/patroni/patroni.yml $(or $(ARGS),list)

# Lint, format and types: the same checks pre-commit runs on each commit.
lint: setup
	$(ENV) ruff check . && ruff format --check . && mypy

test-unit:
	$(ENV) pytest -q -m unit

test-service:
	$(ENV) pytest -q -m service

# Unit and service tests only: no Docker, no Pulumi stack, and under a minute: the
# `slow` recovery scenarios, which hold real servers down for seconds, run in `make test`.
test-fast: setup
	$(ENV) pytest -q -m "(unit or service) and not slow"

test-e2e: setup
	$(ENV) PGHA_TEST_NODES="$(PGHA_TEST_NODES)" pytest -q tests/e2e

# The same kind of throwaway stack in failoverMode patroni (Patroni + 3-member etcd).
test-e2e-patroni: setup
	$(ENV) PGHA_TEST_NODES="$(PGHA_TEST_NODES)" pytest -q tests/e2e_patroni

# cacheMode sentinel (Redis primary, replica, 3 Sentinels), including the stale-read
# history test across a cache failover.
test-e2e-sentinel: setup
	$(ENV) PGHA_TEST_NODES="$(PGHA_TEST_NODES)" pytest -q tests/e2e_sentinel

# The multi-host test bed: N Docker-in-Docker hosts (scripts/hosts.sh; N=3 by default).
N ?= 3
hosts-up: setup
	./scripts/hosts.sh up $(N)

hosts-down:
	./scripts/hosts.sh down $(N)

# A stack spread over the 3 test-bed hosts (pgha:hosts): placement, streaming across hosts,
# MISS then HIT, a host failure, then two API hosts and one of them killed. Brings the hosts
# up itself; `make hosts-down` removes them (PGHA_HOSTS_NAME and friends: scripts/hosts.sh).
test-e2e-multihost: hosts-up
	$(ENV) PGHA_TEST_NODES="pg-0 pg-1 pg-2" pytest -q tests/e2e_multihost

# Every tier but e2e_patroni and e2e_sentinel, which have their own targets (and their own
# lines in .ci/run).
test: lint docs-build
	$(ENV) pytest -q tests --ignore=tests/e2e_patroni --ignore=tests/e2e_sentinel --ignore=tests/e2e_multihost

# The docs site (mkdocs.yml; docs/ has one page per topic). `make docs` serves it on
# 127.0.0.1:8100 only (8000 is the dev stack's API). `make docs-build` is part of `make
# test`: it fails when a generated figure no longer matches bench/results/published/ or
# when --strict finds a broken link, anchor or page; the site lands in site/ (git-ignored).
# NO_MKDOCS_2_WARNING: mkdocs-material's end-of-life banner, printed on every build.
DOCS_ENV := $(ENV) NO_MKDOCS_2_WARNING=1
docs: setup
	$(DOCS_ENV) mkdocs serve --strict

docs-build: setup
	$(ENV) python scripts/docs_figures.py --check
	$(DOCS_ENV) mkdocs build --strict

# Rewrites the generated figure tables in README.md and docs/ from bench/results/published/.
docs-figures:
	$(ENV) python scripts/docs_figures.py

# Measurements against a deployed stack (default: dev; `make up` first).
# Reports land in bench/results/; figures are never test assertions.
bench: setup
	$(ENV) python -m bench.perf.run --stack $(STACK)

# The backup and restore drill (issue 22): backup, PITR, operator error, total loss and, in
# failoverMode patroni, replicas from the repository; on throwaway stacks it destroys.
# `make drill ARGS="--quick"` on a small database, ARGS="--mode patroni" for Patroni.
drill: setup
	$(ENV) python -m bench.drill $(ARGS)

# The manual-failover fault matrix against a deployed stack (default dev), including the
# backup repository; ARGS="--quick", "--cells ...", or "--throwaway" (a stack of its own).
chaos: setup
	$(ENV) python -m bench.chaos --stack $(STACK) $(ARGS)

# failoverMode patroni broken on purpose (leader kills in sync and async mode, Patroni's
# default timings for comparison, switchovers, the kill/stop/pause/partition matrix with
# the backup repository; ARGS="--quick" for one of each series), on a throwaway 3-node
# stack it deploys and destroys itself: about 15 minutes.
chaos-patroni: setup
	$(ENV) python -m bench.chaos.patroni $(ARGS)

# cacheMode sentinel broken on purpose (kill, stop, pause of the Redis primary, the replica
# and one Sentinel; two Sentinels down, alone and with the primary; the primary kill 10
# times for the median; ARGS="--quick": one kill and a replica pause) under a stale-read
# history, on a throwaway stack it deploys and destroys itself (ARGS="--stack NAME" uses
# a deployed sentinel stack): about 15 minutes.
chaos-sentinel: setup
	$(ENV) python -m bench.chaos.sentinel $(ARGS)

# Redis primary kills with no other load, one GET every 100 ms: kill to first HIT, 5 runs.
sentinel-failover: setup
	$(ENV) python -m bench.sentinel_failover $(ARGS)

shell:
	@echo "run: source scripts/env.sh"

clean:
	rm -rf .tools .venv service/.wheels site

# Host-failure RTO over 3 fresh DinD hosts (median of 3) next to the single-host container
# kill, and the cold `pulumi up` time: bench/results/multihost-<time>.md (about 20 minutes).
bench-multihost: setup
	$(ENV) python -m bench.multihost $(ARGS)
