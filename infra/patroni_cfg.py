"""Renders one node's Patroni config (failoverMode patroni): a pure function, unit-tested.

The result is JSON, which is YAML too, so Patroni reads it as its config file; the node
writes it to a tmpfs at start (images/postgres/pgha-patroni). It holds no password:
Patroni reads those from PATRONI_* env (`secret_env`). What it sets mirrors what
images/postgres/pgha-entrypoint does in manual mode (the same roles, pg_hba, WAL and
slot settings), so the API sees the same database in both modes; Patroni then owns
initdb, cloning, pg_rewind, replication slots and pg_hba.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infra.backup_cfg import RESTORE_CONFIG_PATH, STANZA, archive_parameters

PG_PORT = 5432
REST_PORT = 8008
PG_BIN_DIR = "/usr/lib/postgresql/15/bin"
DATA_ROOT = "/var/lib/postgresql/data"
PGDATA = f"{DATA_ROOT}/pgdata"
SOCKET_DIR = "/var/run/postgresql"
CONFIG_PATH = "/run/patroni/patroni.yml"
POST_BOOTSTRAP = "/usr/local/bin/pgha-post-bootstrap"
RESTORE_BOOTSTRAP = "/usr/local/bin/pgha-restore-bootstrap"
# The same role names as manual mode (images/postgres/pgha-lib.sh).
REPLICATION_USER = "replicator"
REWIND_USER = "rewinder"
APP_USER = "pgha"
APP_DB = "pgha"
# User of the REST API's unsafe endpoints (POST /switchover, PATCH /config, ...).
REST_USER = "patroni"

# Failure detection. Goal: a new leader within about 6 s of a leader's death, so that
# with HAProxy's checks and the API's reconnect the first write succeeds within 10 s.
# The leader lock is an etcd lease; after a kill it lapses TTL_S after its last
# renewal, i.e. TTL_S - LOOP_WAIT_S/2 = 5.5 s later on average (ttl 10 measured
# 8.9-9.5 s on a bare pair, too slow once HAProxy is added). The price is tolerance:
# a leader that cannot renew for TTL_S - LOOP_WAIT_S = 5 s (a stalled process, an etcd
# fsync stuck on a busy disk) loses the lock and the cluster fails over needlessly.
TTL_S = 6
# How often each node runs its HA loop and renews its lease. 1 s costs one small
# etcd write per node per second; a longer loop would eat into TTL_S's margin.
LOOP_WAIT_S = 1
# How long one etcd or PostgreSQL call is retried before it counts as failed. Patroni
# needs LOOP_WAIT_S + 2 * RETRY_TIMEOUT_S <= TTL_S so that a leader cut off from etcd
# demotes itself before its lock can lapse and another node takes over. 2 s covers an
# etcd leader election (about 1 s with etcd's defaults); a slower etcd round trip under
# load counts as "etcd down", which failsafe mode then absorbs (see below).
RETRY_TIMEOUT_S = 2
# WAL for a restore's recovery comes from the source repository (infra/restore.py).
RESTORE_COMMAND = f'pgbackrest --config={RESTORE_CONFIG_PATH} --stanza={STANZA} archive-get %f "%p"'
# A replica more than this behind the last known leader position is not promoted.
MAXIMUM_LAG_ON_FAILOVER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PatroniNode:
    scope: str
    name: str
    etcd_hosts: list[str]
    # The stack network: every client and peer comes from there.
    network_cidr: str
    # The host's own address on that network: rejected, as in manual mode.
    network_gateway: str
    # pgha:hosts only: where peers reach this node (its host's address and the ports it
    # publishes there), and the hosts' addresses, which cross-host clients come from.
    connect_host: str = ""
    pg_port: int = PG_PORT
    rest_port: int = REST_PORT
    peer_cidrs: tuple[str, ...] = ()
    # pgha:backup: archive WAL to the stack's pgBackRest repository (infra/backup_cfg.py).
    archive: bool = False
    # pgha:restoreFrom: pgBackRest's --target ("latest" or a UTC timestamp); the cluster
    # bootstraps from the source repository instead of initdb (`restore_bootstrap`).
    restore_target: str = ""


def pg_hba(cidr: str, gateway: str, peers: tuple[str, ...] = ()) -> list[str]:
    """pgha-lib.sh `write_hba`'s rules (superuser on the local socket only), plus loopback
    replication for Patroni itself; with `peers` (other hosts' addresses, pgha:hosts) the
    same rules for each of them, since cross-host clients arrive from their host's address."""
    if not cidr:
        raise ValueError("the stack network's CIDR is required for pg_hba")
    rules = [
        "local all postgres peer",
        # Patroni reads its own timeline over a local replication connection; without
        # it, it cannot tell that a returning old leader diverged and needs pg_rewind.
        f"host replication {REPLICATION_USER} 127.0.0.1/32 scram-sha-256",
    ]
    if gateway:
        rules.append(f"host all all {gateway}/32 reject")
    for source in (cidr, *peers):
        rules += [
            f"host replication {REPLICATION_USER} {source} scram-sha-256",
            f"host postgres {REWIND_USER} {source} scram-sha-256",
            f"host {APP_DB} {APP_USER} {source} scram-sha-256",
        ]
    return rules


def dynamic_config() -> dict[str, Any]:
    """Cluster-wide settings: stored in etcd at bootstrap, changed later only via the REST API.

    `synchronous_mode` starts off and is set by `PreferredLeader` (infra/leader.py) with
    PATCH /config, on create and on every change of pgha:synchronous. Rendering it here
    would put it in every node's container env, so that flipping it replaced all nodes
    at once: in CI two of three went down together and a lagging one was elected.
    """
    return {
        "ttl": TTL_S,
        "loop_wait": LOOP_WAIT_S,
        "retry_timeout": RETRY_TIMEOUT_S,
        "maximum_lag_on_failover": MAXIMUM_LAG_ON_FAILOVER_BYTES,
        # With etcd unreachable (two of three members down) the leader keeps its role as
        # long as every PostgreSQL node confirms it over the REST API; without this it
        # would demote itself and writes would stop although nothing else failed.
        "failsafe_mode": True,
        # pgha:synchronous (applied live, see above): commits wait for one standby, and
        # only that standby may be promoted, so a failover loses no acknowledged write.
        # Not strict unless pgha:synchronousStrict (also PATCHed): with no standby left
        # the leader goes on alone rather than stopping writes.
        "synchronous_mode": False,
        "synchronous_mode_strict": False,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": {
                "wal_level": "replica",
                # pg_rewind needs hint bits in WAL (data checksums give them too).
                "wal_log_hints": "on",
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "max_slot_wal_keep_size": "2GB",
                "wal_keep_size": "256MB",
                "hot_standby": "on",
                "hot_standby_feedback": "on",
                "wal_receiver_status_interval": "1s",
                "password_encryption": "scram-sha-256",
            },
        },
    }


def restore_bootstrap(target: str) -> dict[str, Any]:
    """A custom bootstrap method: Patroni applies recovery settings only from here when it
    builds a cluster (patroni#1870). The command copies the files from the source
    repository; Patroni then writes these settings, replays WAL to the target, waits for
    the promotion, and runs post_bootstrap (which gives the restored roles this stack's
    passwords)."""
    recovery: dict[str, Any] = {"restore_command": RESTORE_COMMAND}
    if target != "latest":
        recovery |= {"recovery_target_time": target, "recovery_target_action": "promote"}
    return {
        "command": RESTORE_BOOTSTRAP,
        "no_params": True,
        "keep_existing_recovery_conf": False,
        "recovery_conf": recovery,
    }


def render(node: PatroniNode) -> str:
    if len(node.etcd_hosts) < 3:
        raise ValueError("Patroni needs the addresses of at least three etcd members")
    config: dict[str, Any] = {
        "scope": node.scope,
        "namespace": "/pgha/",
        "name": node.name,
        "log": {"level": "INFO"},
        "restapi": {
            "listen": f"0.0.0.0:{REST_PORT}",
            # Peers and HAProxy reach each node by its network alias, or across hosts at
            # the port it publishes on its host's address.
            "connect_address": f"{node.connect_host or node.name}:{node.rest_port}",
            # GETs (HAProxy's /primary and /replica) stay open; POST, PUT, PATCH and
            # DELETE need this user, password from PATRONI_RESTAPI_PASSWORD.
            "authentication": {"username": REST_USER},
        },
        "etcd3": {"hosts": list(node.etcd_hosts), "protocol": "http"},
        "bootstrap": {
            "dcs": dynamic_config(),
            "initdb": [
                "data-checksums",
                {"encoding": "UTF8"},
                {"locale": "C.UTF-8"},
                {"auth-local": "peer"},
                {"auth-host": "scram-sha-256"},
            ],
            # Creates the app role, database and schema (replicator and rewinder are
            # Patroni's own, from postgresql.authentication).
            "post_bootstrap": POST_BOOTSTRAP,
            **(
                {"method": "pgbackrest", "pgbackrest": restore_bootstrap(node.restore_target)}
                if node.restore_target
                else {}
            ),
        },
        "postgresql": {
            "listen": f"0.0.0.0:{PG_PORT}",
            "connect_address": f"{node.connect_host or node.name}:{node.pg_port}",
            "data_dir": PGDATA,
            "bin_dir": PG_BIN_DIR,
            # Patroni writes the replication password here for pg_basebackup and
            # pg_rewind; /tmp is a tmpfs, so it never reaches the volume.
            "pgpass": "/tmp/pgpass",
            # Patroni talks to its own server as `postgres` over the socket (peer auth).
            "use_unix_socket": True,
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": {"username": REPLICATION_USER},
                "rewind": {"username": REWIND_USER},
            },
            "pg_hba": pg_hba(node.network_cidr, node.network_gateway, node.peer_cidrs),
            "basebackup": [{"checkpoint": "fast"}],
            # A node whose rewind fails (its WAL diverged too far) rejoins by a fresh
            # clone instead of staying down. Manual mode keeps such data aside; here
            # the cluster's own copy is the one that counts.
            "remove_data_directory_on_rewind_failure": True,
            "parameters": {
                "unix_socket_directories": SOCKET_DIR,
                "shared_buffers": "128MB",
                "log_line_prefix": "%m [%p] %q%u@%d ",
                # Local, not dynamic: a node's own settings, like its socket; Patroni
                # runs archive_command only on the leader (a standby does not archive).
                **(archive_parameters() if node.archive else {}),
            },
        },
        # No /dev/watchdog in an unprivileged container: a hung Patroni is noticed by
        # its peers (the lock lapses), not by a hardware reset.
        "watchdog": {"mode": "off"},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }
    return json.dumps(config, indent=2, sort_keys=True)


# Where Patroni reads its passwords from (it merges them over the config file). All
# three carry the replication password: see infra/patroni.py for why it is reused.
SECRET_ENV = ("PATRONI_REPLICATION_PASSWORD", "PATRONI_REWIND_PASSWORD", "PATRONI_RESTAPI_PASSWORD")
