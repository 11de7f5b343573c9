"""A stack's pgBackRest repository (pgha:backup) seen from the host, over the Docker SDK.

Every command runs in the repository container (`backup`) or a node as `postgres`, with
the config the image rendered, so the tests drive the same pgBackRest the stack runs.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

from pulumi import automation as auto

from pgha_testkit.deployment import Deployment
from pgha_testkit.nodes import exec_as_postgres
from pgha_testkit.stack import NAMESPACE

CONFIG = "/run/pgbackrest/pgbackrest.conf"
REPO_PATH = "/var/lib/pgbackrest"


def pgbackrest(deployment: Deployment, role: str, *args: str) -> tuple[int, str]:
    """Exit code and output of `pgbackrest --stanza=pgha <args>` in `role`'s container."""
    cmd = ["pgbackrest", f"--config={CONFIG}", "--stanza=pgha", *args]
    return exec_as_postgres(
        deployment.container_name(role), cmd, client=deployment.client_for(role)
    )


def status(deployment: Deployment) -> dict[str, Any]:
    """`pgha-backup status`: backup count, the last backup, the archived WAL range."""
    code, text = exec_as_postgres(
        deployment.container_name("backup"), ["pgha-backup", "status"], client=deployment.docker
    )
    assert code == 0, text
    result: dict[str, Any] = json.loads(text.splitlines()[-1])
    return result


def backup_now(deployment: Deployment, kind: str = "incr") -> None:
    code, text = exec_as_postgres(
        deployment.container_name("backup"), ["pgha-backup", "now", kind], client=deployment.docker
    )
    assert code == 0, text


def repository_files(deployment: Deployment) -> Iterator[tuple[str, bytes]]:
    """(path, content) of every regular file in the repository volume."""
    stream, _ = deployment.container("backup").get_archive(REPO_PATH)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                yield member.name, handle.read()


def env_of(deployment: Deployment, role: str) -> dict[str, str]:
    """A container's env (Docker's view), e.g. for its certificate and key."""
    env = deployment.container(role).attrs["Config"]["Env"] or []
    return dict(item.split("=", 1) for item in env)


def restore_config(stack: auto.Stack, source: Deployment, target: str) -> None:
    """Makes `stack` a restore of `source` to `target`, as `make restore` does."""
    passphrase = source.stack.get_config(f"{NAMESPACE}:backupPassphrase").value
    stack.set_all_config(
        {
            f"{NAMESPACE}:restoreFrom": auto.ConfigValue(value=source.stack.name),
            f"{NAMESPACE}:restoreTarget": auto.ConfigValue(value=target),
            f"{NAMESPACE}:restorePassphrase": auto.ConfigValue(value=passphrase, secret=True),
        }
    )
