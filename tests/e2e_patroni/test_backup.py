"""pgha:backup in failoverMode patroni: Patroni's leader archives (archive_command is set on
every node, and only a primary runs it), the bootstrap backup is listed, and after the
leader is killed the newly elected leader archives into the same repository.
"""

from __future__ import annotations

from pgha_testkit import backup, patroni
from pgha_testkit.deployment import Deployment


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
