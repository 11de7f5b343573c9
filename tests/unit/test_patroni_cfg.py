"""Patroni config rendering: timings, failsafe, the same roles and pg_hba as manual mode."""

import dataclasses
import json
from typing import Any

import pytest

from infra.consensus import client_hosts
from infra.haproxy_cfg import PATRONI_CHECKS, ProxyTopology
from infra.haproxy_cfg import render as render_haproxy
from infra.patroni_cfg import (
    LOOP_WAIT_S,
    RETRY_TIMEOUT_S,
    SECRET_ENV,
    TTL_S,
    PatroniNode,
    render,
)

NODE = PatroniNode(
    scope="pgha-unit",
    name="pg-1",
    etcd_hosts=client_hosts(3),
    network_cidr="172.30.0.0/16",
    network_gateway="172.30.0.1",
)


def rendered(node: PatroniNode = NODE) -> dict[str, Any]:
    config = json.loads(render(node))
    assert isinstance(config, dict)
    return config


def test_a_leader_cut_off_from_etcd_demotes_before_its_lock_can_lapse() -> None:
    # Patroni's rule: otherwise a second leader could be elected while the first still writes.
    assert LOOP_WAIT_S + 2 * RETRY_TIMEOUT_S <= TTL_S
    dcs = rendered()["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (
        TTL_S,
        LOOP_WAIT_S,
        RETRY_TIMEOUT_S,
    )


def test_the_lock_lapses_early_enough_for_a_ten_second_rto() -> None:
    # Average time from a leader's death to its lock lapsing, plus HAProxy's worst-case
    # rise, leaves a few seconds of the 10 s goal for the promotion and the API.
    rise_s = PATRONI_CHECKS.inter_s * PATRONI_CHECKS.rise
    assert TTL_S - LOOP_WAIT_S / 2 + rise_s <= 7


def test_failsafe_mode_is_on_and_synchronous_mode_is_left_to_a_live_patch() -> None:
    dcs = rendered()["bootstrap"]["dcs"]
    assert dcs["failsafe_mode"] is True
    # pgha:synchronous is PATCHed by PreferredLeader: were it rendered into the node's
    # config, changing it would replace every node.
    assert dcs["synchronous_mode"] is False
    assert "synchronous" not in PatroniNode.__dataclass_fields__
    # Not strict: with no standby left, writes go on rather than hang.
    assert dcs["synchronous_mode_strict"] is False


def test_patroni_owns_rewinds_and_slots_over_etcd3() -> None:
    config = rendered()
    assert config["etcd3"]["hosts"] == ["etcd-0:2379", "etcd-1:2379", "etcd-2:2379"]
    pg = config["bootstrap"]["dcs"]["postgresql"]
    assert pg["use_pg_rewind"] is True and pg["use_slots"] is True
    assert pg["parameters"]["wal_log_hints"] == "on"
    assert "data-checksums" in config["bootstrap"]["initdb"]


def test_nodes_advertise_their_network_alias_and_serve_checks_on_8008() -> None:
    config = rendered()
    assert config["name"] == "pg-1"
    assert config["restapi"]["connect_address"] == "pg-1:8008"
    assert config["postgresql"]["connect_address"] == "pg-1:5432"


def test_pg_hba_matches_manual_mode_plus_local_replication_and_rejects_the_host() -> None:
    hba = rendered()["postgresql"]["pg_hba"]
    assert hba == [
        "local all postgres peer",
        "host replication replicator 127.0.0.1/32 scram-sha-256",
        "host all all 172.30.0.1/32 reject",
        "host replication replicator 172.30.0.0/16 scram-sha-256",
        "host postgres rewinder 172.30.0.0/16 scram-sha-256",
        "host pgha pgha 172.30.0.0/16 scram-sha-256",
    ]
    # The reject must come first: pg_hba takes the first matching line.
    assert hba.index("host all all 172.30.0.1/32 reject") < 3


def test_the_rendered_config_holds_no_password() -> None:
    text = render(NODE)
    assert '"password"' not in text
    # Patroni reads every password from env instead, the REST API's included.
    assert set(SECRET_ENV) == {
        "PATRONI_REPLICATION_PASSWORD",
        "PATRONI_REWIND_PASSWORD",
        "PATRONI_RESTAPI_PASSWORD",
    }
    assert rendered()["restapi"]["authentication"] == {"username": "patroni"}


def test_the_post_bootstrap_hook_creates_the_app_database() -> None:
    assert rendered()["bootstrap"]["post_bootstrap"] == "/usr/local/bin/pgha-post-bootstrap"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"etcd_hosts": ["etcd-0:2379"]}, "three etcd members"),
        ({"network_cidr": ""}, "CIDR"),
    ],
)
def test_invalid_input_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(PatroniNode(**{**NODE.__dict__, **change}))


def test_haproxy_checks_patroni_nodes_faster_with_the_same_endpoints() -> None:
    nodes = ["pg-0", "pg-1"]
    cfg = render_haproxy(ProxyTopology(nodes, "none", PATRONI_CHECKS), "pw-123456")
    assert "default-server inter 500ms fastinter 250ms downinter 500ms rise 2 fall 3" in cfg
    assert "option httpchk OPTIONS /primary" in cfg and "option httpchk OPTIONS /replica" in cfg
    for node in nodes:
        assert f"server {node} {node}:5432 check port 8008" in cfg
    # Manual mode's timings are unchanged by default.
    assert "inter 1000ms fastinter 500ms" in render_haproxy(ProxyTopology(nodes, "none"), "pw-1")


def test_across_hosts_peers_reach_a_node_at_its_host_address_and_published_ports() -> None:
    node = PatroniNode(
        scope="pgha-unit",
        name="pg-1",
        etcd_hosts=["10.0.0.1:12379", "10.0.0.2:12380", "10.0.0.3:12381"],
        network_cidr="172.18.0.0/16",
        network_gateway="",
        connect_host="10.0.0.2",
        pg_port=15433,
        rest_port=18009,
        peer_cidrs=("10.0.0.1/32", "10.0.0.3/32"),
    )
    config = rendered(node)
    assert config["postgresql"]["connect_address"] == "10.0.0.2:15433"
    assert config["restapi"]["connect_address"] == "10.0.0.2:18009"
    # Still listening on the container's own ports; Docker maps the published ones.
    assert config["postgresql"]["listen"].endswith(":5432")
    hba = config["postgresql"]["pg_hba"]
    assert "host replication replicator 10.0.0.3/32 scram-sha-256" in hba
    assert "host pgha pgha 10.0.0.1/32 scram-sha-256" in hba
    assert not [rule for rule in hba if rule.endswith("reject")]


def test_on_one_host_nodes_are_reached_by_alias_and_the_gateway_is_rejected() -> None:
    config = rendered()
    assert config["postgresql"]["connect_address"] == "pg-1:5432"
    assert "host all all 172.30.0.1/32 reject" in config["postgresql"]["pg_hba"]


def test_archiving_is_a_node_setting_only_with_backup_on() -> None:
    assert "archive_command" not in rendered()["postgresql"]["parameters"]
    params = rendered(dataclasses.replace(NODE, archive=True))["postgresql"]["parameters"]
    assert params["archive_mode"] == "on"
    assert "archive-push %p" in params["archive_command"]


def test_a_restore_bootstraps_through_a_custom_method_with_the_recovery_target() -> None:
    # Patroni applies recovery settings at bootstrap only from the method's recovery_conf.
    boot = rendered(dataclasses.replace(NODE, restore_target="2026-12-07 14:03:00.000000+00"))[
        "bootstrap"
    ]
    assert boot["method"] == "pgbackrest"
    method = boot["pgbackrest"]
    assert method["recovery_conf"]["recovery_target_time"] == "2026-12-07 14:03:00.000000+00"
    assert method["recovery_conf"]["recovery_target_action"] == "promote"
    assert "archive-get" in method["recovery_conf"]["restore_command"]
    assert method["no_params"] is True
    latest = rendered(dataclasses.replace(NODE, restore_target="latest"))["bootstrap"]
    assert "recovery_target_time" not in latest["pgbackrest"]["recovery_conf"]
    assert "method" not in rendered()["bootstrap"]
