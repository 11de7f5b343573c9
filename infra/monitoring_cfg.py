"""Renders what the stack's Prometheus and Alertmanager read (pgha:monitoring): pure, unit-tested.

Scrape targets come from the stack's real members (`Members`, filled by the wiring from the
same config that declares the containers), so a scale-out (more nodes, more API instances)
needs no hand edit. The files are JSON, which YAML readers take as it is. Targets
are container names, which Docker's DNS resolves on the stack network; each carries a
`node` label with the member's logical name, which the alert summaries and the overview
console show.

Intervals: 2 s for the PostgreSQL exporters and 2 s rule evaluation, so a patroni-mode
failover's writerless window (about 6 s) is seen by at least one evaluation; 5 s for the
rest, which keeps every fault-to-firing path of docs/observability.md under 30 s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from infra.haproxy_cfg import METRICS_PORT

# The ports the monitoring containers listen on inside the stack network.
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
POSTGRES_EXPORTER_PORT = 9187
REDIS_EXPORTER_PORT = 9121
DISK_EXPORTER_PORT = 9100
# HAProxy's built-in Prometheus exporter (infra/haproxy_cfg.py), on the stack network only.
HAPROXY_METRICS_PORT = METRICS_PORT
API_METRICS_PORT = 8000
PATRONI_PORT = 8008
ETCD_PORT = 2379

SCRAPE_INTERVAL_S = 5
POSTGRES_SCRAPE_INTERVAL_S = 2
EVALUATION_INTERVAL_S = 2
RULES_PATH = "/usr/local/share/pgha/rules/*.yml"
# The overview console (images/monitoring/consoles/pgha.html), under Prometheus's URL.
OVERVIEW_PATH = "consoles/pgha.html"


def exporter_name(kind: str, member: str) -> str:
    """The logical name of the exporter container for `member` (e.g. `pgexp-pg-0`)."""
    return f"{kind}-{member}"


@dataclass(frozen=True)
class Members:
    """The stack's members that expose metrics, by logical name (as in the CONTAINERS output)."""

    nodes: list[str]
    api_instances: list[str]
    haproxies: list[str] = field(default_factory=lambda: ["haproxy"])
    # patroni mode: Patroni on every node, and the etcd members.
    patroni: bool = False
    etcd: list[str] = field(default_factory=list)
    # Cache nodes (`redis` in single mode, `redis-N` in sentinel mode) and Sentinels.
    redis: list[str] = field(default_factory=lambda: ["redis"])
    sentinels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    job: str
    node: str
    # The member whose container answers the scrape (the exporter's, for exporters).
    container: str
    port: int

    def address(self, prefix: str) -> str:
        return f"{prefix}-{self.container}:{self.port}"


def targets(members: Members) -> list[Target]:
    """Every scrape target of the stack, grouped by job, in a stable order."""
    found = [
        Target("postgres", n, exporter_name("pgexp", n), POSTGRES_EXPORTER_PORT)
        for n in members.nodes
    ]
    if members.patroni:
        found += [Target("patroni", n, n, PATRONI_PORT) for n in members.nodes]
        found += [Target("etcd", m, m, ETCD_PORT) for m in members.etcd]
    found += [
        Target("redis", r, exporter_name("redisexp", r), REDIS_EXPORTER_PORT) for r in members.redis
    ]
    found += [
        Target("sentinel", s, exporter_name("redisexp", s), REDIS_EXPORTER_PORT)
        for s in members.sentinels
    ]
    found += [Target("haproxy", h, h, HAPROXY_METRICS_PORT) for h in members.haproxies]
    found += [Target("api", a, a, API_METRICS_PORT) for a in members.api_instances]
    found += [Target("disk", "docker-data", "diskexp", DISK_EXPORTER_PORT)]
    found += [
        Target("prometheus", "prometheus", "prometheus", PROMETHEUS_PORT),
        Target("alertmanager", "alertmanager", "alertmanager", ALERTMANAGER_PORT),
    ]
    return found


def exporters(members: Members) -> list[tuple[str, str, str]]:
    """(exporter member, role, scraped member) of every exporter container to declare."""
    return [
        *((exporter_name("pgexp", n), "postgres-exporter", n) for n in members.nodes),
        *((exporter_name("redisexp", r), "redis-exporter", r) for r in members.redis),
        *((exporter_name("redisexp", s), "redis-exporter", s) for s in members.sentinels),
        ("diskexp", "disk-exporter", ""),
    ]


def render_prometheus(prefix: str, members: Members) -> str:
    """prometheus.yml: one scrape job per kind of member, the rules, and Alertmanager."""
    jobs: dict[str, list[Target]] = {}
    for target in targets(members):
        jobs.setdefault(target.job, []).append(target)
    scrape_configs = []
    for job, group in jobs.items():
        config: dict[str, object] = {
            "job_name": job,
            "static_configs": [
                {"targets": [t.address(prefix)], "labels": {"node": t.node}} for t in group
            ],
        }
        if job == "postgres":
            config["scrape_interval"] = f"{POSTGRES_SCRAPE_INTERVAL_S}s"
            config["scrape_timeout"] = f"{POSTGRES_SCRAPE_INTERVAL_S}s"
        scrape_configs.append(config)
    document = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S - 1}s",
            "evaluation_interval": f"{EVALUATION_INTERVAL_S}s",
            "external_labels": {"stack": prefix},
        },
        "rule_files": [RULES_PATH],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"{prefix}-alertmanager:{ALERTMANAGER_PORT}"]}]}
            ]
        },
        "scrape_configs": scrape_configs,
    }
    header = "# Rendered by pgha (infra/monitoring_cfg.py) from the stack's members; do not edit.\n"
    return header + json.dumps(document, indent=2) + "\n"


def render_alertmanager() -> str:
    """alertmanager.yml: every alert to one receiver with no integration.

    Why no e-mail or webhook: the stack reaches nothing outside itself; `make alerts` and
    the overview read the alerts from Alertmanager's API, and an operator adds a real
    receiver here. Grouping by alert name keeps one notification per kind of fault.
    """
    document = {
        "route": {
            "receiver": "operator",
            "group_by": ["alertname"],
            "group_wait": "5s",
            "group_interval": "30s",
            "repeat_interval": "4h",
        },
        "receivers": [{"name": "operator"}],
        "inhibit_rules": [
            # A node that is down also stops streaming; the first alert says enough.
            {
                "source_matchers": ["alertname = PostgresNodeDown"],
                "target_matchers": ["alertname = PostgresReplicaNotStreaming"],
                "equal": ["node"],
            }
        ],
    }
    header = "# Rendered by pgha (infra/monitoring_cfg.py); do not edit.\n"
    return header + json.dumps(document, indent=2) + "\n"
