"""`Cache`: Redis, the read-through cache in front of the replicas."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.containers import ContainerSpec, Port, Scope, declare

REDIS_PORT = 6379
REDIS_USER = "pgha"


@dataclass
class CacheArgs:
    scope: Scope
    image: pulumi.Input[str]
    password: pulumi.Input[str]
    bind_address: str
    port: int
    maxmemory: str = "256mb"


class Cache(pulumi.ComponentResource):
    container: pulumi.Output[str]
    host: str = "redis"
    user: str = REDIS_USER

    def __init__(
        self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:Cache", name, None, opts)
        spec = ContainerSpec(
            args.scope,
            "redis",
            "redis",
            args.image,
            alias=self.host,
            node_label=False,
            envs={
                "PGHA_REDIS_PASSWORD": args.password,
                "PGHA_REDIS_USER": REDIS_USER,
                "PGHA_REDIS_MAXMEMORY": args.maxmemory,
            },
            ports=[Port(REDIS_PORT, args.port, args.bind_address)],
            # The generated config (it holds the ACL password) and Redis's working dir.
            tmpfs={"/tmp": "rw,noexec,nosuid,size=16m"},
        )
        container = declare(name, spec, self)
        self.container = container.name
        self.redis_address: pulumi.Input[str] = f"{self.host}:{REDIS_PORT}"
        # Single mode adds nothing to the API's env, so its containers are as they were.
        self.api_env: dict[str, pulumi.Input[str]] = {}
        self.register_outputs({"container": self.container})
