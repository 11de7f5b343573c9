"""pgha:backup in failoverMode patroni: Patroni's leader archives (archive_command is set on
every node, and only a primary runs it), the bootstrap backup is listed, and after the
leader is killed the newly elected leader archives into the same repository. A replica
that is reinitialised is rebuilt from the repository (create_replica_methods), not copied
from the leader, and streams.
"""

from __future__ import annotations

import re
import time

from pgha_testkit import backup, patroni
from pgha_testkit.deployment import Deployment
from pgha_testkit.poll import NotYet, wait_until


def test_the_leader_archives_and_the_bootstrap_backup_is_listed(deployment: Deployment) -> None:
    leader = patroni.wait_whole(deployment)
    status = backup.status(deployment)
    assert status["status"] == "ok", status
    assert status["backups"] >= 1
    for role in (leader, "backup"):
        code, text = backup.pgbackrest(deployment, role, "check")
        assert code == 0, f"{role}: {text}"


def test_after_a_leader_kill_the_new_leader_archives_and_is_backed_up(
    deployment: Deployment,
) -> None:
    old = patroni.wait_whole(deployment)
    deployment.container(old).kill()
    try:
        new = patroni.wait_leader(deployment, 60, not_=old)
        code, text = backup.pgbackrest(deployment, new, "check")
        assert code == 0, text
        # The repository finds the new primary among its pg hosts by itself.
        before = backup.status(deployment)["backups"]
        backup.backup_now(deployment, "incr")
        assert backup.status(deployment)["backups"] == before + 1
    finally:
        deployment.container(old).start()
    patroni.wait_whole(deployment)


def test_a_reinitialised_replica_is_restored_from_the_repository_and_streams(
    deployment: Deployment,
) -> None:
    leader = patroni.wait_whole(deployment)
    replica = next(n for n in patroni.pg_nodes(deployment) if n != leader)
    # A backup exists since bootstrap; the replica was cloned before it, by basebackup.
    assert backup.status(deployment)["backups"] >= 1
    since = int(time.time())
    code, text = patroni.request(deployment, replica, "POST", "/reinitialize", {"force": True})
    assert code == 200, text

    def created_by() -> str:
        logs = deployment.container(replica).logs(since=since).decode(errors="replace")
        found = re.findall(r"replica has been created using (\w+)", logs)
        if not found:
            raise NotYet("the replica is not created yet")
        return found[-1]

    wait_until(lambda: bool(created_by()), 300, f"{replica} recreated")
    assert created_by() == "pgbackrest"
    patroni.wait_whole(deployment, timeout=180)
    # It streams: a row written on the leader now reaches it.
    deployment.sql(
        leader,
        "create table if not exists pgha.from_repo (note text);"
        "insert into pgha.from_repo values ('after the reinit')",
    )
    wait_until(
        lambda: deployment.sql(replica, "select count(*) from pgha.from_repo") != "0",
        60,
        "the row on the restored replica",
    )
