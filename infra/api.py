"""`Api`: the FastAPI products service as N instances behind HAProxy's HTTP frontend.

Writes go to HAProxy's `primary` endpoint, reads to its `replicas` endpoint, the
cache to Redis. The DSNs carry passwords, so they are built as secret Outputs and
only ever reach the containers' environment. No instance is published on the host:
clients reach them through HAProxy, which finds them by their shared network alias.

A change to any input replaces the instances one at a time: each depends on the one
before, so instance N is deleted only once instance N-1's replacement passed its
healthcheck (`wait`), and HAProxy always has a healthy instance to send requests to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from infra.containers import ContainerSpec, Scope, declare
from infra.haproxy_cfg import API_ALIAS


@dataclass
class ApiArgs:
    scope: Scope
    image: pulumi.Input[str]
    write_dsn: pulumi.Input[str]
    read_dsn: pulumi.Input[str]
    redis_url: pulumi.Input[str]
    cache_ttl_seconds: int
    read_fallback: str
    workers: int
    replicas: int
    # More PGHA_* variables (cacheMode sentinel's); none in single mode, so its env is as before.
    extra_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # pgha:placement with several HAProxies: the instances beside each are `api-<host>-N`.
    prefix: str = "api"


def instance_names(replicas: int, prefix: str = "api") -> list[str]:
    """Logical names of the instances, `<prefix>-1` to `<prefix>-N` (also their output keys)."""
    return [f"{prefix}-{i}" for i in range(1, replicas + 1)]


class Api(pulumi.ComponentResource):
    containers: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:Api", name, None, opts)
        self.containers = {}
        previous: list[pulumi.Resource] = []
        for instance in instance_names(args.replicas, args.prefix):
            spec = ContainerSpec(
                args.scope,
                instance,
                "api",
                args.image,
                alias=API_ALIAS,
                node_label=False,
                envs={
                    "PGHA_WRITE_DSN": args.write_dsn,
                    "PGHA_READ_DSN": args.read_dsn,
                    "PGHA_REDIS_URL": args.redis_url,
                    "PGHA_CACHE_TTL_SECONDS": str(args.cache_ttl_seconds),
                    "PGHA_READ_FALLBACK": args.read_fallback,
                    "PGHA_WORKERS": str(args.workers),
                    **args.extra_env,
                },
                tmpfs={"/tmp": "rw,noexec,nosuid,size=16m"},
            )
            container = declare(f"{name}-{instance}", spec, self, previous)
            previous = [container]
            self.containers[instance] = container.name
        self.register_outputs({"containers": self.containers})
