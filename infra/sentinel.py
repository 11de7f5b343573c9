"""`SentinelCache`: the cache as a Redis primary, its replica and 3 Sentinels (cacheMode sentinel).

Why this shape: Sentinel promotes the replica when the primary stops answering for
`pgha:sentinelDownAfterMs`, with a quorum of 2 of the 3 Sentinels, so one Sentinel down
changes nothing and two down means no failover (never a split decision). Each node is
`pgha-<stack>-redis-N` under its alias `redis-N`, each Sentinel `pgha-<stack>-sentinel-N`
under `sentinel-N`; nothing is published on the host: only the API, on the stack network,
talks to them (it asks the Sentinels where the primary is, app/cache/store.py). Configs are
rendered by infra/sentinel_cfg.py; no volume, since a cache node resyncs from the primary
and a Sentinel relearns the current primary from its peers' hello messages.

`primary` is the primary Sentinel reports at up and refresh time (a dynamic resource, like
`PreferredLeader`): after a failover `redis-0` is no longer it, and nothing flaps back.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker
from pulumi import dynamic

from infra.containers import ContainerSpec, Scope, declare
from infra.sentinel_cfg import (
    API_USER,
    SENTINEL_CLIENT_USER,
    SENTINEL_PORT,
    SERVICE,
    SentinelTimings,
    derive_password,
    node_names,
    render_redis,
    render_sentinel,
    sentinel_id,
    sentinel_names,
)

# The nodes' and Sentinels' scratch space: the rendered config and Redis's working dir.
TMPFS = {"/tmp": "rw,noexec,nosuid,size=64m"}


@dataclass
class SentinelCacheArgs:
    scope: Scope
    image: pulumi.Input[str]
    password: pulumi.Output[str]
    timings: SentinelTimings
    # pgha:cacheFailoverGuard, passed on to the API (service/README.md).
    failover_guard: bool = True
    nodes: int = 2
    sentinels: int = 3
    maxmemory: str = "256mb"


def sentinel_password(secret: pulumi.Output[str]) -> pulumi.Output[str]:
    """The Sentinels' default user's password: the other Sentinels and the health check."""
    # `secret` comes from require_secret: what is derived from it stays secret.
    return secret.apply(lambda s: derive_password(s, "sentinel"))


# Runs inside a Sentinel: where the primary is, by its alias (the password from the env).
_ASK_PRIMARY = [
    "sh",
    "-c",
    'REDISCLI_AUTH="$PGHA_HEALTH_PASSWORD" redis-cli --no-auth-warning -p '
    f"{SENTINEL_PORT} SENTINEL get-master-addr-by-name {SERVICE}",
]


def observe_primary(containers: Mapping[str, str]) -> str:
    """The node alias the first answering Sentinel names as primary, or "" if none does."""
    import docker as docker_sdk  # lazily: the dynamic provider unpickles this module first

    api = docker_sdk.from_env(timeout=60).api
    for container in containers.values():
        try:
            ex = api.exec_create(container, _ASK_PRIMARY)
            out = api.exec_start(ex["Id"]).decode(errors="replace").split()
        except Exception:  # noqa: BLE001 (a stopped Sentinel: ask the next one)
            continue
        if len(out) == 2 and out[0].startswith("redis-"):
            return out[0]
    return ""


class _ObservedPrimaryProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(
            id_="redis-primary", outs={**props, "primary": observe_primary(props["sentinels"])}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        live = observe_primary(news["sentinels"])
        changed = olds.get("sentinels") != news["sentinels"] or live != olds.get("primary")
        return dynamic.DiffResult(changes=changed, replaces=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs={**news, "primary": observe_primary(news["sentinels"])})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        return dynamic.ReadResult(
            id_=id_, outs={**props, "primary": observe_primary(props["sentinels"])}
        )

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class ObservedPrimary(dynamic.Resource, module="pgha", name="ObservedRedisPrimary"):
    primary: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        sentinels: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            _ObservedPrimaryProvider(), name, {"sentinels": sentinels, "primary": None}, opts
        )


def _redis_conf(node: str, primary: str, maxmemory: str, passwords: list[str]) -> str:
    api, replication, sentinel_auth = passwords
    return render_redis(node, primary, api, replication, sentinel_auth, maxmemory)


def _sentinel_conf(
    name: str, run_id: str, primary: str, timings: SentinelTimings, passwords: list[str]
) -> str:
    auth, admin, client = passwords
    return render_sentinel(name, run_id, primary, auth, admin, timings, client)


class SentinelCache(pulumi.ComponentResource):
    containers: dict[str, pulumi.Output[str]]
    # in-network host:port of each Sentinel, as the API's PGHA_REDIS_SENTINELS lists them
    endpoints: list[str]
    primary: pulumi.Output[str]
    user: str = API_USER

    def __init__(
        self, name: str, args: SentinelCacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:SentinelCache", name, None, opts)
        secret = args.password
        replication = secret.apply(lambda s: derive_password(s, "replication"))
        sentinel_auth = secret.apply(lambda s: derive_password(s, "sentinel-auth"))
        client_auth = sentinel_password(secret)
        # What the API and a starting node present: SENTINEL_CLIENT_USER's password.
        asker_auth = secret.apply(lambda s: derive_password(s, "sentinel-client"))
        nodes = node_names(args.nodes)
        initial_primary = nodes[0]
        self.containers = {}
        node_containers: list[docker.Container] = []
        for node in nodes:
            conf = pulumi.Output.all(secret, replication, sentinel_auth).apply(
                functools.partial(_redis_conf, node, initial_primary, args.maxmemory)
            )
            spec = ContainerSpec(
                args.scope,
                node,
                "redis",
                args.image,
                envs={
                    "PGHA_REDIS_ROLE": "server",
                    "PGHA_REDIS_NODE": node,
                    "PGHA_REDIS_CONF": conf,
                    # Asked at start which node is the primary now (the image's entrypoint).
                    "PGHA_REDIS_SENTINELS": ",".join(
                        f"{s}:{SENTINEL_PORT}" for s in sentinel_names(args.sentinels)
                    ),
                    "PGHA_REDIS_SENTINEL_USERNAME": SENTINEL_CLIENT_USER,
                    "PGHA_REDIS_SENTINEL_PASSWORD": asker_auth,
                    "PGHA_HEALTH_USER": API_USER,
                    "PGHA_HEALTH_PASSWORD": secret,
                },
                tmpfs=TMPFS,
                stop_timeout=5,
            )
            # The replica starts once the primary answers, so its first sync succeeds.
            container = declare(f"{name}-{node}", spec, self, node_containers[:1])
            node_containers.append(container)
            self.containers[node] = container.name
        sentinels: dict[str, pulumi.Output[str]] = {}
        for sentinel in sentinel_names(args.sentinels):
            conf = pulumi.Output.all(sentinel_auth, client_auth, asker_auth).apply(
                functools.partial(
                    _sentinel_conf,
                    sentinel,
                    sentinel_id(args.scope.prefix, sentinel),
                    initial_primary,
                    args.timings,
                )
            )
            spec = ContainerSpec(
                args.scope,
                sentinel,
                "sentinel",
                args.image,
                envs={
                    "PGHA_REDIS_ROLE": "sentinel",
                    "PGHA_REDIS_CONF": conf,
                    "PGHA_HEALTH_PASSWORD": client_auth,
                },
                tmpfs=TMPFS,
                stop_timeout=5,
            )
            # Sentinel resolves the primary's name when it loads its config: nodes first.
            container = declare(f"{name}-{sentinel}", spec, self, node_containers)
            sentinels[sentinel] = container.name
        self.containers.update(sentinels)
        self.endpoints = [f"{s}:{SENTINEL_PORT}" for s in sentinels]
        # The host part of the API's Redis URL is unused here (the Sentinels name the
        # primary); it names the service so the URL still says what it points at.
        self.redis_address: pulumi.Input[str] = "sentinel:6379"
        self.api_env: dict[str, pulumi.Input[str]] = {
            "PGHA_REDIS_SENTINELS": ",".join(self.endpoints),
            "PGHA_REDIS_SENTINEL_USERNAME": SENTINEL_CLIENT_USER,
            "PGHA_REDIS_SENTINEL_PASSWORD": asker_auth,
            "PGHA_CACHE_FAILOVER_GUARD": str(args.failover_guard).lower(),
            # A write waits up to 1 s for its fence rather than the reads' 50 ms: a fence
            # that times out is queued, and until it is replayed other instances can serve
            # the old body (service/README.md, "Limitations"); a loaded host often misses 50 ms.
            "PGHA_FENCE_TIMEOUT_SECONDS": "1",
        }
        observed = ObservedPrimary(
            f"{name}-primary", sentinels, pulumi.ResourceOptions(parent=self)
        )
        self.primary = observed.primary
        self.register_outputs({"containers": self.containers, "primary": self.primary})
