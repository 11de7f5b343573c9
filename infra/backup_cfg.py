"""Renders pgBackRest's config for the repository container and for each node: pure, unit-tested.

Layout (pgBackRest's "dedicated repository host", over its TLS server instead of SSH):
the repository container `backup` holds repo1 on its own volume and runs every backup,
reaching each node's pgBackRest TLS server as pg1..pgN (it finds the primary among them
itself, so a failover needs no config change). Each node's `archive_command` pushes WAL
to the repository's TLS server. Both sides run `pgbackrest server` and present a
certificate from the stack CA (infra/stack_ca.py); each server admits only the client
common names listed in its `tls-server-auth` (the nodes admit the repository, the
repository admits the nodes).

The cipher passphrase appears in neither file. pgBackRest encrypts on the client side
(a node encrypts each WAL segment before pushing it; the repository encrypts what it
copies during a backup), so the nodes and the repository, and no other container, get
it as PGHA_BACKUP_PASSPHRASE in their env. The rendered text holds no secret, so it
travels as plain container env (PGHA_PGBACKREST_CFG); the image adds the passphrase as it
writes the file to a tmpfs at start (images/postgres/pgha-lib.sh).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STANZA = "pgha"
TLS_PORT = 8432
# The repository container's network alias; also its certificate's CN and DNS name.
REPO_HOST = "backup"
REPO_PATH = "/var/lib/pgbackrest"
# Where the image writes the rendered config and the PEMs (a tmpfs; see pgha-lib.sh).
RUN_DIR = "/run/pgbackrest"
CONFIG_PATH = f"{RUN_DIR}/pgbackrest.conf"
CA_FILE = f"{RUN_DIR}/ca.crt"
CERT_FILE = f"{RUN_DIR}/tls.crt"
KEY_FILE = f"{RUN_DIR}/tls.key"
PGDATA = "/var/lib/postgresql/data/pgdata"
SOCKET_DIR = "/var/run/postgresql"
# Segments reach the repository at most this long after their first write, so a total loss
# costs at most about this much of acknowledged writes (Pigsty and CloudNativePG use 300 s).
ARCHIVE_TIMEOUT_S = 60
# The archive command PostgreSQL runs on the primary; %p is the segment's path.
ARCHIVE_COMMAND = f"pgbackrest --config={CONFIG_PATH} --stanza={STANZA} archive-push %p"
# pgha:restoreFrom: the source stack's repository volume, mounted read-only into the node
# that restores, so the restored stack can read it but never write to it.
SOURCE_PATH = "/var/lib/pgbackrest-source"
RESTORE_CONFIG_PATH = f"{RUN_DIR}/restore.conf"
# The repository container's last `pgha-backup status`, at the repository's root (read by
# monitoring, and by a restore's preview when the source stack is gone).
STATUS_FILE = "pgha-status.json"


@dataclass(frozen=True)
class Schedule:
    """When the repository container takes backups on its own (hours between them)."""

    full_every_h: int = 24
    diff_every_h: int = 1


def _tls_server(clients: Sequence[str]) -> list[str]:
    lines = [
        "tls-server-address=*",
        f"tls-server-port={TLS_PORT}",
        f"tls-server-ca-file={CA_FILE}",
        f"tls-server-cert-file={CERT_FILE}",
        f"tls-server-key-file={KEY_FILE}",
    ]
    # One client CN per line, each allowed this stanza only.
    return lines + [f"tls-server-auth={c}={STANZA}" for c in clients]


def _common() -> list[str]:
    # The root filesystem is read-only: no log file, locks on the /tmp tmpfs; warnings
    # and errors go to stderr, which PostgreSQL's log and `docker logs` keep.
    return [
        "log-level-file=off",
        "log-level-console=warn",
        "log-level-stderr=off",
        "lock-path=/tmp/pgbackrest",
        # zstd: several times faster than gzip at a similar ratio, on 2 shared cores.
        "compress-type=zst",
        "compress-level=3",
    ]


def node_config() -> str:
    """A node's pgbackrest.conf: its local cluster, the repository over TLS, and a TLS
    server that admits only the repository (which runs backups through it)."""
    lines = [
        "# Rendered by infra/backup_cfg.py: this node archives to the repository container.",
        "[global]",
        *_common(),
        f"repo1-host={REPO_HOST}",
        "repo1-host-type=tls",
        f"repo1-host-port={TLS_PORT}",
        f"repo1-host-ca-file={CA_FILE}",
        f"repo1-host-cert-file={CERT_FILE}",
        f"repo1-host-key-file={KEY_FILE}",
        # Segments are encrypted here, before they leave the node.
        "repo1-cipher-type=aes-256-cbc",
        *_tls_server([REPO_HOST]),
        "",
        f"[{STANZA}]",
        f"pg1-path={PGDATA}",
        f"pg1-socket-path={SOCKET_DIR}",
        "pg1-port=5432",
        "",
    ]
    return "\n".join(lines)


def repo_config(nodes: Sequence[str], retention_full: int) -> str:
    """The repository's pgbackrest.conf: repo1 encrypted on its volume, every node as a
    pgN host over TLS, and a TLS server that admits only the nodes."""
    if not nodes:
        raise ValueError("the repository needs at least one node to back up")
    if retention_full < 1:
        raise ValueError("pgha:backupRetentionFull must be at least 1")
    if len(nodes) > 256:
        raise ValueError("pgBackRest supports at most 256 PostgreSQL hosts per stanza")
    lines = [
        "# Rendered by infra/backup_cfg.py: the stack's backup repository.",
        "[global]",
        *_common(),
        f"repo1-path={REPO_PATH}",
        "repo1-cipher-type=aes-256-cbc",
        "repo1-retention-full-type=count",
        f"repo1-retention-full={retention_full}",
        # A backup starts with an immediate checkpoint instead of waiting for the next one.
        "start-fast=y",
        "process-max=2",
        *_tls_server(nodes),
        "",
        f"[{STANZA}]",
    ]
    for i, node in enumerate(nodes, start=1):
        lines += [
            f"pg{i}-host={node}",
            f"pg{i}-host-type=tls",
            f"pg{i}-host-port={TLS_PORT}",
            f"pg{i}-host-ca-file={CA_FILE}",
            f"pg{i}-host-cert-file={CERT_FILE}",
            f"pg{i}-host-key-file={KEY_FILE}",
            f"pg{i}-path={PGDATA}",
            f"pg{i}-socket-path={SOCKET_DIR}",
        ]
    return "\n".join(lines + [""])


def restore_config() -> str:
    """The restoring node's config for the source repository, read directly from its
    volume (no TLS server: the source stack may be gone); its passphrase is added at start."""
    lines = [
        "# Rendered by infra/backup_cfg.py: the source repository of a restore.",
        "[global]",
        *_common(),
        f"repo1-path={SOURCE_PATH}",
        "repo1-cipher-type=aes-256-cbc",
        "",
        f"[{STANZA}]",
        f"pg1-path={PGDATA}",
        f"pg1-socket-path={SOCKET_DIR}",
        "",
    ]
    return "\n".join(lines)


def archive_parameters() -> dict[str, str]:
    """PostgreSQL settings every node runs with: only a primary archives (a standby with
    archive_mode=on does not), so after a failover the new primary takes over."""
    return {
        "archive_mode": "on",
        "archive_command": ARCHIVE_COMMAND,
        "archive_timeout": f"{ARCHIVE_TIMEOUT_S}s",
    }
