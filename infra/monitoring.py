"""`Monitoring`: Prometheus, Alertmanager and the exporters of a stack (pgha:monitoring).

Why these containers: Prometheus scrapes every member that has metrics (the API instances,
HAProxy's built-in exporter, Patroni and etcd in patroni mode) and one exporter per member
that has none of its own (`pgexp-<node>` per PostgreSQL node, `redisexp-<member>` per Redis
node and Sentinel, `diskexp` for the filesystem the volumes live on); Alertmanager holds
the alerts that its rules (images/monitoring/rules/pgha.yml) fire. Both are published on
127.0.0.1 only; the exporters on the stack network only. Configs are rendered by
infra/monitoring_cfg.py from the stack's members.

The PostgreSQL exporters log in as `pgha_monitor`, a role that has only pg_monitor, with a
password derived from pgha:postgresPassword (no new secret key). `MonitorRole` creates it on
the primary through `docker exec` (the superuser only has the local socket), so it also
works on a cluster that was bootstrapped before monitoring was turned on.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from infra import dockerexec
from infra.containers import ContainerSpec, Port, Scope, declare
from infra.monitoring_cfg import (
    ALERTMANAGER_PORT,
    DISK_EXPORTER_PORT,
    OVERVIEW_PATH,
    POSTGRES_EXPORTER_PORT,
    PROMETHEUS_PORT,
    REDIS_EXPORTER_PORT,
    Members,
    exporters,
    render_alertmanager,
    render_prometheus,
)
from infra.patroni_cfg import MONITOR_USER

APP_DB = "pgha"
TMPFS = {"/run/pgha-monitoring": "rw,noexec,nosuid,size=16m"}
# Prometheus keeps its TSDB on tmpfs (read-only root, and a lab's metrics need not outlive
# the container). tmpfs pages count against the container's memory ceiling (the fallback
# 512 MiB of infra/containers.py), so retention is 12 h (the entrypoint), well under this.
PROMETHEUS_TMPFS = {"/run/pgha-monitoring": "rw,noexec,nosuid,size=256m"}

# Runs as postgres in every node: only the writable primary creates or updates the role;
# the password comes from the exec's env, never argv or the server log (ALTER ... PASSWORD
# with a literal is not logged unless log_statement is ddl, which pgha never sets).
_ROLE_SQL = f"""
SET client_min_messages = warning;
SELECT NOT pg_is_in_recovery() AS writable \\gset
\\if :writable
\\getenv pw PGHA_MONITOR_PASSWORD
SELECT 'CREATE ROLE {MONITOR_USER} LOGIN' WHERE NOT EXISTS
  (SELECT 1 FROM pg_roles WHERE rolname = '{MONITOR_USER}') \\gexec
ALTER ROLE {MONITOR_USER} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
  NOBYPASSRLS PASSWORD :'pw';
GRANT pg_monitor TO {MONITOR_USER};
\\echo created
\\endif
"""
_ROLE_CMD = [
    "bash",
    "-c",
    'printf "%s" "$PGHA_ROLE_SQL" | psql -X -q -v ON_ERROR_STOP=1 -d postgres',
]


def monitor_password(postgres_password: pulumi.Output[str]) -> pulumi.Output[str]:
    """`pgha_monitor`'s password: an HMAC of the stack's postgres secret (stays secret)."""
    return postgres_password.apply(
        lambda s: hmac.new(s.encode(), b"pgha-monitor", hashlib.sha256).hexdigest()
    )


def ensure_role(containers: Mapping[str, str], password: str, timeout_s: float = 300) -> str:
    """Creates or updates the role on whichever node is primary; returns that node."""
    import time

    api = dockerexec.client().api
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        for node, container in containers.items():
            try:
                ex = api.exec_create(
                    container,
                    _ROLE_CMD,
                    user="postgres",
                    environment={"PGHA_ROLE_SQL": _ROLE_SQL, "PGHA_MONITOR_PASSWORD": password},
                )
                out = api.exec_start(ex["Id"]).decode(errors="replace").strip()
                code = api.exec_inspect(ex["Id"])["ExitCode"]
            except Exception as err:  # a node being replaced or down: try the next one
                last = f"{node}: {err}"
                continue
            if code == 0 and "created" in out:
                return node
            last = f"{node}: exit {code}: {out[-300:]}"
        time.sleep(2)
    raise RuntimeError(f"no primary took the {MONITOR_USER} role within {timeout_s}s ({last})")


class _MonitorRoleProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        ensure_role(props["containers"], props["password"])
        return CreateResult(id_=MONITOR_USER, outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = any(olds.get(k) != news.get(k) for k in ("containers", "password"))
        return DiffResult(changes=changed, replaces=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        ensure_role(news["containers"], news["password"])
        return UpdateResult(outs=news)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # The role goes with the cluster; a stack that turns monitoring off keeps a harmless
        # login role that can only read statistics.
        return None


class MonitorRole(Resource, module="pgha", name="MonitorRole"):
    def __init__(
        self,
        resource_name: str,
        containers: Mapping[str, pulumi.Input[str]],
        password: pulumi.Output[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"containers": dict(containers), "password": password}
        super().__init__(_MonitorRoleProvider(), resource_name, props, opts)


@dataclass
class RedisCredentials:
    """What a Redis exporter logs in with: the cache nodes' user, or a Sentinel's password."""

    user: str
    password: pulumi.Input[str]
    port: int


@dataclass
class MonitoringArgs:
    scope: Scope
    image: pulumi.Input[str]
    members: Members
    # node name -> container name (for the monitor role) and the postgres secret.
    node_containers: Mapping[str, pulumi.Input[str]]
    postgres_password: pulumi.Output[str]
    # cache member -> how its exporter logs in.
    redis: Mapping[str, RedisCredentials]
    prometheus_port: int
    alertmanager_port: int


class Monitoring(pulumi.ComponentResource):
    containers: dict[str, pulumi.Output[str]]
    prometheus_url: str
    alertmanager_url: str

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        password = monitor_password(args.postgres_password)
        role = MonitorRole(f"{name}-role", args.node_containers, password, child)
        self.prometheus_url = f"http://127.0.0.1:{args.prometheus_port}/"
        self.alertmanager_url = f"http://127.0.0.1:{args.alertmanager_port}/"
        self.containers = {}
        prefix = args.scope.prefix

        def spec(member: str, role_name: str, port: int, **kw: Any) -> ContainerSpec:
            envs = {"PGHA_MONITOR_ROLE": role_name, "PGHA_MONITOR_PORT": str(port)}
            return ContainerSpec(
                args.scope,
                member,
                "monitoring",
                args.image,
                node_label=False,
                envs={**envs, **kw.pop("envs", {})},
                tmpfs=kw.pop("tmpfs", TMPFS),
                stop_timeout=5,
                **kw,
            )

        for member, kind, scraped in exporters(args.members):
            envs: dict[str, pulumi.Input[str]] = {}
            depends: list[pulumi.Resource] = []
            port = DISK_EXPORTER_PORT
            if kind == "postgres-exporter":
                port = POSTGRES_EXPORTER_PORT
                envs["DATA_SOURCE_NAME"] = pulumi.Output.secret(
                    pulumi.Output.format(
                        "postgresql://{0}:{1}@{2}:5432/{3}?sslmode=disable&connect_timeout=2",
                        MONITOR_USER,
                        password,
                        scraped,
                        APP_DB,
                    )
                )
                depends = [role]
            elif kind == "redis-exporter":
                port = REDIS_EXPORTER_PORT
                cred = args.redis[scraped]
                envs = {
                    "REDIS_ADDR": f"redis://{scraped}:{cred.port}",
                    "REDIS_USER": cred.user,
                    "REDIS_PASSWORD": cred.password,
                }
            container = declare(
                f"{name}-{member}", spec(member, kind, port, envs=envs), self, depends
            )
            self.containers[member] = container.name

        alertmanager = declare(
            f"{name}-alertmanager",
            spec(
                "alertmanager",
                "alertmanager",
                ALERTMANAGER_PORT,
                envs={
                    "PGHA_ALERTMANAGER_CFG": render_alertmanager(),
                    "PGHA_MONITOR_HEALTH_PATH": "/-/ready",
                },
                ports=[Port(ALERTMANAGER_PORT, args.alertmanager_port, "127.0.0.1")],
            ),
            self,
        )
        self.containers["alertmanager"] = alertmanager.name
        prometheus = declare(
            f"{name}-prometheus",
            spec(
                "prometheus",
                "prometheus",
                PROMETHEUS_PORT,
                envs={
                    "PGHA_PROMETHEUS_CFG": render_prometheus(prefix, args.members),
                    "PGHA_MONITOR_HEALTH_PATH": "/-/ready",
                    "PGHA_EXTERNAL_URL": self.prometheus_url,
                },
                ports=[Port(PROMETHEUS_PORT, args.prometheus_port, "127.0.0.1")],
                tmpfs=PROMETHEUS_TMPFS,
            ),
            self,
            [alertmanager],
        )
        self.containers["prometheus"] = prometheus.name
        self.overview_url = self.prometheus_url + OVERVIEW_PATH
        self.register_outputs(
            {
                "containers": self.containers,
                "prometheus_url": self.prometheus_url,
                "alertmanager_url": self.alertmanager_url,
            }
        )
