"""infra/backup_cfg.py: the pgBackRest configs of the repository and the nodes."""

from __future__ import annotations

import configparser

import pytest

from infra import backup_cfg


def parse(text: str) -> configparser.ConfigParser:
    # pgBackRest's files are INI; tls-server-auth repeats, so read with duplicates allowed.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(text)
    return parser


def test_the_repository_backs_up_every_node_over_tls_and_encrypts() -> None:
    conf = parse(backup_cfg.repo_config(["pg-0", "pg-1", "pg-2"], 2))
    stanza = conf[backup_cfg.STANZA]
    assert [stanza[f"pg{i}-host"] for i in (1, 2, 3)] == ["pg-0", "pg-1", "pg-2"]
    assert {stanza[f"pg{i}-host-type"] for i in (1, 2, 3)} == {"tls"}
    assert conf["global"]["repo1-cipher-type"] == "aes-256-cbc"
    assert conf["global"]["repo1-retention-full"] == "2"
    assert conf["global"]["repo1-path"] == backup_cfg.REPO_PATH


def test_each_tls_server_admits_only_the_other_side() -> None:
    repo = backup_cfg.repo_config(["pg-0", "pg-1"], 2)
    node = backup_cfg.node_config()
    repo_clients = [line for line in repo.splitlines() if line.startswith("tls-server-auth=")]
    node_clients = [line for line in node.splitlines() if line.startswith("tls-server-auth=")]
    assert repo_clients == ["tls-server-auth=pg-0=pgha", "tls-server-auth=pg-1=pgha"]
    assert node_clients == [f"tls-server-auth={backup_cfg.REPO_HOST}=pgha"]


def test_a_node_archives_to_the_repository_container_and_encrypts_first() -> None:
    conf = parse(backup_cfg.node_config())
    assert conf["global"]["repo1-host"] == backup_cfg.REPO_HOST
    assert conf["global"]["repo1-host-type"] == "tls"
    assert conf["global"]["repo1-cipher-type"] == "aes-256-cbc"
    assert conf[backup_cfg.STANZA]["pg1-path"] == backup_cfg.PGDATA


def test_no_rendered_config_carries_a_passphrase() -> None:
    for text in (backup_cfg.node_config(), backup_cfg.repo_config(["pg-0"], 1)):
        assert "cipher-pass" not in text


def test_archiving_pushes_to_the_stanza_within_a_minute() -> None:
    params = backup_cfg.archive_parameters()
    assert params["archive_mode"] == "on"
    assert params["archive_timeout"] == "60s"
    assert f"--stanza={backup_cfg.STANZA} archive-push %p" in params["archive_command"]
    assert f"--config={backup_cfg.CONFIG_PATH}" in params["archive_command"]


@pytest.mark.parametrize(
    ("nodes", "retention"), [([], 2), (["pg-0"], 0), ([f"pg-{i}" for i in range(257)], 2)]
)
def test_a_repository_config_that_pgbackrest_would_refuse_is_an_error(
    nodes: list[str], retention: int
) -> None:
    with pytest.raises(ValueError):
        backup_cfg.repo_config(nodes, retention)


def test_a_restore_reads_the_source_repository_from_its_read_only_mount() -> None:
    conf = parse(backup_cfg.restore_config())
    assert conf["global"]["repo1-path"] == backup_cfg.SOURCE_PATH
    assert conf["global"]["repo1-cipher-type"] == "aes-256-cbc"
    assert "repo1-host" not in conf["global"]
    assert "cipher-pass" not in backup_cfg.restore_config()
