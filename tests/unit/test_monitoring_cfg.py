"""Scrape targets and configs rendered from the stack's members (infra/monitoring_cfg.py)."""

from __future__ import annotations

import json

from infra.haproxy_cfg import ProxyTopology, render
from infra.monitoring_cfg import Members, exporters, render_alertmanager, render_prometheus, targets
from pgha_testkit.alerts import describe, overview_url


def _jobs(members: Members) -> dict[str, list[tuple[str, str]]]:
    config = json.loads(render_prometheus("pgha-s", members).split("\n", 1)[1])
    return {
        job["job_name"]: [
            (group["labels"]["node"], group["targets"][0]) for group in job["static_configs"]
        ]
        for job in config["scrape_configs"]
    }


def test_manual_mode_scrapes_every_node_exporter_instance_and_haproxy() -> None:
    jobs = _jobs(Members(nodes=["pg-0", "pg-1"], api_instances=["api-1", "api-2"]))
    assert jobs["postgres"] == [
        ("pg-0", "pgha-s-pgexp-pg-0:9187"),
        ("pg-1", "pgha-s-pgexp-pg-1:9187"),
    ]
    assert jobs["api"] == [("api-1", "pgha-s-api-1:8000"), ("api-2", "pgha-s-api-2:8000")]
    assert jobs["haproxy"] == [("haproxy", "pgha-s-haproxy:8405")]
    assert jobs["redis"] == [("redis", "pgha-s-redisexp-redis:9121")]
    assert "patroni" not in jobs and "etcd" not in jobs and "sentinel" not in jobs


def test_a_scale_out_adds_its_members_without_an_edit() -> None:
    jobs = _jobs(Members(nodes=["pg-0", "pg-1", "pg-2"], api_instances=["api-1", "api-2", "api-3"]))
    assert [n for n, _ in jobs["postgres"]] == ["pg-0", "pg-1", "pg-2"]
    assert [n for n, _ in jobs["api"]] == ["api-1", "api-2", "api-3"]


def test_patroni_and_sentinel_modes_add_patroni_etcd_and_every_sentinel() -> None:
    jobs = _jobs(
        Members(
            nodes=["pg-0", "pg-1"],
            api_instances=["api-1"],
            patroni=True,
            etcd=["etcd-0", "etcd-1", "etcd-2"],
            redis=["redis-0", "redis-1"],
            sentinels=["sentinel-0", "sentinel-1", "sentinel-2"],
        )
    )
    assert jobs["patroni"] == [("pg-0", "pgha-s-pg-0:8008"), ("pg-1", "pgha-s-pg-1:8008")]
    assert [t for _, t in jobs["etcd"]] == [f"pgha-s-etcd-{i}:2379" for i in range(3)]
    assert [n for n, _ in jobs["redis"]] == ["redis-0", "redis-1"]
    assert [t for _, t in jobs["sentinel"]] == [
        f"pgha-s-redisexp-sentinel-{i}:9121" for i in range(3)
    ]


def test_every_exporter_target_has_an_exporter_container() -> None:
    members = Members(nodes=["pg-0", "pg-1"], api_instances=["api-1"], sentinels=["sentinel-0"])
    declared = {member for member, _, _ in exporters(members)}
    scraped = {
        t.container for t in targets(members) if t.job in {"postgres", "redis", "sentinel", "disk"}
    }
    assert scraped == declared


def test_postgres_is_scraped_faster_than_the_rest_and_rules_every_two_seconds() -> None:
    config = json.loads(
        render_prometheus("pgha-s", Members(["pg-0", "pg-1"], ["api-1"])).split("\n", 1)[1]
    )
    assert config["global"]["evaluation_interval"] == "2s"
    postgres = next(j for j in config["scrape_configs"] if j["job_name"] == "postgres")
    assert postgres["scrape_interval"] == "2s"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "pgha-s-alertmanager:9093"
    ]


def test_alertmanager_routes_every_alert_to_one_receiver() -> None:
    config = json.loads(render_alertmanager().split("\n", 1)[1])
    assert config["route"]["receiver"] == "operator"
    assert config["receivers"] == [{"name": "operator"}]


def test_haproxy_serves_its_exporter_only_with_monitoring() -> None:
    plain = render(ProxyTopology(nodes=["pg-0", "pg-1"], read_fallback="none"), "pw")
    monitored = render(
        ProxyTopology(nodes=["pg-0", "pg-1"], read_fallback="none", metrics=True), "pw"
    )
    assert "prometheus-exporter" not in plain
    assert "bind *:8405" in monitored and "use-service prometheus-exporter" in monitored


def test_make_alerts_lists_critical_alerts_first_with_their_member() -> None:
    alerts = [
        {
            "labels": {"alertname": "ApiInstanceDown", "severity": "warning", "node": "api-2"},
            "annotations": {"summary": "API instance api-2 does not answer."},
            "startsAt": "2026-12-08T00:10:00.123Z",
        },
        {
            "labels": {"alertname": "PostgresNotExactlyOnePrimary", "severity": "critical"},
            "annotations": {"summary": "0 writable primaries (want exactly 1)."},
            "startsAt": "2026-12-08T00:11:00Z",
        },
    ]
    lines = describe(alerts)
    assert lines[0].split()[:3] == ["critical", "PostgresNotExactlyOnePrimary", "cluster"]
    assert lines[1].split()[:3] == ["warning", "ApiInstanceDown", "api-2"]
    assert "since 2026-12-08 00:10:00Z" in lines[1]


def test_make_dashboard_prints_the_overview_console_under_prometheus() -> None:
    assert overview_url("http://127.0.0.1:9090/") == "http://127.0.0.1:9090/consoles/pgha.html"
