"""`BackupRepository`: the stack's pgBackRest repository container (pgha:backup), and the
env that makes each PostgreSQL node archive into it.

Why a container of its own: a repository on a node's volume dies with that node, and HA
replicates a `DELETE` without a `WHERE` to every node within milliseconds. The
repository container `pgha-<stack>-backup` keeps repo1 on its own volume
(`pgha-<stack>-backup-data`, kept on destroy unless `pgha:backupRetain false`), runs
every backup (pgBackRest runs backups on the repository host) and the schedule, and
serves the nodes' `archive_command` over pgBackRest's TLS server (infra/backup_cfg.py).
It runs the PostgreSQL image with PGHA_MODE=repo, so both ends have the same pgBackRest.

Only the nodes and this container hold the cipher passphrase (`pgha:backupPassphrase`,
a Pulumi secret, kept an Output down to the env): pgBackRest encrypts on the client side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra import backup_cfg
from infra.config import BackupConfig
from infra.containers import ContainerSpec, Scope, declare_with_volume
from infra.stack_ca import StackCA


def node_env(ca: StackCA, node: str, passphrase: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """What node `node` needs to archive and to be backed up: the rendered config, its
    certificate and key, the CA, the passphrase and the archive settings."""
    issued = ca.issue(node)
    archive = backup_cfg.archive_parameters()
    return {
        "PGHA_PGBACKREST_CFG": backup_cfg.node_config(),
        "PGHA_TLS_CA": ca.cert_pem,
        "PGHA_TLS_CERT": issued.cert_pem,
        "PGHA_TLS_KEY": issued.key_pem,
        "PGHA_BACKUP_PASSPHRASE": passphrase,
        "PGHA_ARCHIVE_COMMAND": archive["archive_command"],
        "PGHA_ARCHIVE_TIMEOUT": archive["archive_timeout"],
    }


@dataclass
class BackupRepositoryArgs:
    scope: Scope
    image: pulumi.Input[str]
    nodes: list[str]
    ca: StackCA
    passphrase: pulumi.Input[str]
    settings: BackupConfig
    # The cluster: the repository creates its stanza and first backup through the primary.
    after: Sequence[pulumi.Resource] = ()
    # Seconds `up` waits for the stanza and the bootstrap backup.
    wait_timeout: int = 600


class BackupRepository(pulumi.ComponentResource):
    container: pulumi.Output[str]
    volume: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackupRepositoryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:BackupRepository", name, None, opts)
        issued = args.ca.issue(backup_cfg.REPO_HOST)
        spec = ContainerSpec(
            args.scope,
            backup_cfg.REPO_HOST,
            "backup",
            args.image,
            node_label=False,
            envs={
                "PGHA_MODE": "repo",
                "PGHA_PGBACKREST_CFG": backup_cfg.repo_config(
                    args.nodes, args.settings.retention_full
                ),
                "PGHA_TLS_CA": args.ca.cert_pem,
                "PGHA_TLS_CERT": issued.cert_pem,
                "PGHA_TLS_KEY": issued.key_pem,
                "PGHA_BACKUP_PASSPHRASE": args.passphrase,
                "PGHA_BACKUP_FULL_EVERY_H": str(args.settings.full_every_h),
                "PGHA_BACKUP_DIFF_EVERY_H": str(args.settings.diff_every_h),
            },
            # pgBackRest's locks, the ready mark, and the rendered config with the PEMs.
            tmpfs={
                "/tmp": "rw,noexec,nosuid,size=16m",
                backup_cfg.RUN_DIR: "rw,noexec,nosuid,size=1m",
            },
            # A backup in progress is abandoned on stop; the next one starts over.
            stop_timeout=10,
            # Healthy once the stanza exists and holds the bootstrap full backup: `up`
            # returns with a restorable cluster. `pgbackrest check` alone may wait up to
            # archive_timeout for a segment.
            wait_timeout=args.wait_timeout,
        )
        container, volume = declare_with_volume(
            f"{name}-repo",
            spec,
            backup_cfg.REPO_PATH,
            args.settings.retain,
            self,
            list(args.after),
        )
        self.container = container.name
        self.volume = volume.name
        self.register_outputs({"container": self.container, "volume": self.volume})
