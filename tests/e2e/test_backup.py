"""pgha:backup on the suite's stack: archiving, the bootstrap backup, backups on demand, and the
repository's security (encrypted at rest, a TLS server that admits only the stack's nodes,
no passphrase where it does not belong).

The last test switches the primary over and back: archiving must follow the primary.
"""

from __future__ import annotations

import json

from infra import outputs as out
from infra.backup_cfg import STATUS_FILE
from pgha_testkit import backup
from pgha_testkit.deployment import Deployment
from pgha_testkit.nodes import exec_as_postgres
from pgha_testkit.poll import wait_until


def test_the_bootstrap_full_backup_is_listed(deployment: Deployment) -> None:
    status = backup.status(deployment)
    assert status["status"] == "ok", status
    assert status["backups"] >= 1
    assert status["wal_max"], status
    assert deployment.outputs[out.BACKUP]["container"] == deployment.container_name("backup")


def test_the_ages_monitoring_reads_are_in_the_status_and_its_file(
    deployment: Deployment,
) -> None:
    # `check` archives a segment now, so the newest archived WAL is at most seconds old.
    code, text = backup.pgbackrest(deployment, "backup", "check")
    assert code == 0, text
    status = backup.status(deployment)
    assert status["wal_archived_at"] >= status["at"] - 60, status
    assert 0 <= status["wal_age_s"] <= 60, status
    assert status["full_age_s"] is not None and status["full_age_s"] >= 0, status
    # The repository keeps a copy where the stack's outputs say, for monitoring.
    where = deployment.outputs[out.BACKUP]
    code, kept = exec_as_postgres(
        deployment.container_name("backup"),
        ["cat", where["status_file"]],
        client=deployment.docker,
    )
    assert code == 0, kept
    assert json.loads(kept)["backups"] >= 1
    assert where["status_command"] == "pgha-backup status"


def test_pgbackrest_check_passes_on_the_primary_and_on_the_repository(
    deployment: Deployment,
) -> None:
    for role in (deployment.primary, "backup"):
        code, text = backup.pgbackrest(deployment, role, "check")
        assert code == 0, f"{role}: {text}"


def test_a_backup_taken_now_is_listed(deployment: Deployment) -> None:
    before = backup.status(deployment)["backups"]
    backup.backup_now(deployment, "incr")
    after = backup.status(deployment)
    assert after["backups"] == before + 1
    assert after["last_backup"]["type"] == "incr"
    assert after["last_backup"]["age_s"] < 60


def test_the_repository_is_encrypted_at_rest(deployment: Deployment) -> None:
    marker = "plain-row-marker-7f3a9c"
    deployment.sql(
        deployment.primary,
        "create table if not exists pgha.backup_canary (note text);"
        f"insert into pgha.backup_canary values ('{marker}' || repeat('x', 200));",
    )
    deployment.sql(deployment.primary, "select pg_switch_wal()", db="postgres")
    backup.backup_now(deployment, "incr")
    files = dict(backup.repository_files(deployment))
    assert len(files) > 5, sorted(files)
    # pgBackRest encrypts every file it writes (info files, manifests, WAL, data) with
    # OpenSSL's salted format: each starts with its magic. The one plain file is pgha's
    # status, which holds times, labels and segment names only.
    plain = sorted(name for name, data in files.items() if not data.startswith(b"Salted__"))
    # (It is written beside itself and renamed: a tar may catch the copy in between.)
    kept = {name.rsplit("/", 1)[-1]: name for name in plain}
    assert STATUS_FILE in kept and set(kept) <= {STATUS_FILE, f"{STATUS_FILE}.tmp"}, plain
    status_keys = set(json.loads(files[kept[STATUS_FILE]]))
    assert status_keys <= set(backup.status(deployment)), status_keys
    assert not [name for name, data in files.items() if marker.encode() in data]
    # Positive control: the row is in the primary's data directory in plain text.
    stream, _ = deployment.container(deployment.primary).get_archive(
        "/var/lib/postgresql/data/pgdata/pg_wal"
    )
    assert marker.encode() in b"".join(stream)


def test_the_repository_tls_server_admits_only_the_nodes_certificates(
    deployment: Deployment,
) -> None:
    # A certificate from the stack CA whose name is not a node's (the repository's own) is
    # denied: tls-server-auth lists node names only.
    run = "/run/pgbackrest"
    code, text = exec_as_postgres(
        deployment.container_name("backup"),
        [
            "pgbackrest",
            "--stanza=pgha",
            "--config=/dev/null",
            "--lock-path=/tmp/pgha-test",
            "--repo1-host=backup",
            "--repo1-host-type=tls",
            f"--repo1-host-ca-file={run}/ca.crt",
            f"--repo1-host-cert-file={run}/tls.crt",
            f"--repo1-host-key-file={run}/tls.key",
            "info",
        ],
        client=deployment.docker,
    )
    assert "access denied" in text, text
    # Positive control: a node, with its own certificate, reads the same repository.
    code, text = backup.pgbackrest(deployment, deployment.primary, "info")
    assert code == 0 and "status: ok" in text, text


def test_the_passphrase_is_only_in_the_nodes_and_the_repository(
    deployment: Deployment,
) -> None:
    passphrase = str(deployment.stack.get_config("pgha:backupPassphrase").value)
    assert len(passphrase) >= 16
    holders = {
        role
        for role in deployment.outputs[out.CONTAINERS]
        if passphrase in json.dumps(deployment.container(role).attrs["Config"]["Env"])
    }
    assert holders == {*deployment.outputs[out.REPLICAS], deployment.primary, "backup"}
    # Nor in the stack's plain (non-secret) outputs.
    raw = deployment.stack.outputs()
    assert passphrase not in json.dumps({k: v.value for k, v in raw.items() if not v.secret})
    # The rendered config travels as plain env without it; the image writes it into the
    # config file on a tmpfs, readable by postgres only.
    for role in ("backup", deployment.primary):
        assert passphrase not in backup.env_of(deployment, role)["PGHA_PGBACKREST_CFG"]
        code, mode = exec_as_postgres(
            deployment.container_name(role),
            ["stat", "-c", "%a %U", backup.CONFIG],
            client=deployment.docker,
        )
        assert (code, mode) == (0, "600 postgres"), role


def test_archiving_follows_the_primary_through_a_switchover_and_back(
    deployment: Deployment,
) -> None:
    first = deployment.primary
    second = deployment.replicas[0]
    try:
        deployment.up(primary=second)
        wait_until(lambda: deployment.role(second) == "primary", 60, f"{second} primary")
        code, text = backup.pgbackrest(deployment, second, "check")
        assert code == 0, text
        code, text = backup.pgbackrest(deployment, "backup", "check")
        assert code == 0, text
        backup.backup_now(deployment, "incr")
    finally:
        deployment.up(primary=first)
        deployment.wait_streaming()
    code, text = backup.pgbackrest(deployment, first, "check")
    assert code == 0, text
