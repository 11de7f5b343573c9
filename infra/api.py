"""`Api`: the FastAPI products service, wired to HAProxy and Redis by DSNs.

Writes go to HAProxy's `primary` endpoint, reads to its `replicas` endpoint,
the cache to Redis. The DSNs carry passwords, so they are built as secret
Outputs and only ever reach the container's environment.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.containers import ContainerSpec, Port, declare

API_PORT = 8000


@dataclass
class ApiArgs:
    prefix: str
    image: pulumi.Input[str]
    network: pulumi.Input[str]
    write_dsn: pulumi.Input[str]
    read_dsn: pulumi.Input[str]
    redis_url: pulumi.Input[str]
    cache_ttl_seconds: int
    read_fallback: str
    workers: int
    bind_address: str
    port: int
    labels: dict[str, str]


class Api(pulumi.ComponentResource):
    container: pulumi.Output[str]
    url: str

    def __init__(
        self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:Api", name, None, opts)
        spec = ContainerSpec(
            name=f"{args.prefix}-api",
            image=args.image,
            network=args.network,
            aliases=["api"],
            labels={**args.labels, "pgha.role": "api"},
            envs={
                "PGHA_WRITE_DSN": args.write_dsn,
                "PGHA_READ_DSN": args.read_dsn,
                "PGHA_REDIS_URL": args.redis_url,
                "PGHA_CACHE_TTL_SECONDS": str(args.cache_ttl_seconds),
                "PGHA_READ_FALLBACK": args.read_fallback,
                "PGHA_WORKERS": str(args.workers),
            },
            ports=[Port(API_PORT, args.port, args.bind_address)],
            tmpfs={"/tmp": "rw,noexec,nosuid,size=16m"},
        )
        container = declare(name, spec, self)
        self.container = container.name
        self.url = f"http://{args.bind_address}:{args.port}"
        self.register_outputs({"container": self.container, "url": self.url})
