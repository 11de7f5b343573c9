"""`Images`: builds pgha's images locally from the base image; nothing is pulled or pushed.

BuildKit resolves `FROM ${BASE_IMAGE}` to the local tag (imported by `make
setup` when no registry is reachable). The provider hashes each build context
(honouring .dockerignore) and rebuilds only when it changes. Containers run
the built image by ID (`repo_digest` is the local image ID when nothing is
pushed), so a rebuilt image replaces exactly the containers that use it.
`pulumi destroy` leaves the built tags in the local engine as build cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

ROOT = Path(__file__).resolve().parent.parent
CONTEXTS = {
    "postgres": ROOT / "images" / "postgres",
    "haproxy": ROOT / "images" / "haproxy",
    "redis": ROOT / "images" / "redis",
    "api": ROOT / "service",
    "etcd": ROOT / "images" / "etcd",
    "redis-ha": ROOT / "images" / "redis-ha",
    "monitoring": ROOT / "images" / "monitoring",
}
# Built only for a stack that runs them (`ImagesArgs.extra`): etcd is patroni mode's,
# redis-ha (cache nodes and Sentinels) cacheMode sentinel's, monitoring pgha:monitoring's.
OPTIONAL = {"etcd", "redis-ha", "monitoring"}


def image_name(prefix: str, role: str) -> str:
    return f"{prefix}-{role}:latest"


@dataclass
class ImagesArgs:
    prefix: str
    base_image: str
    extra: frozenset[str] = frozenset()
    # pgha:hosts: exactly the roles placed on this host (each host builds what it runs).
    only: frozenset[str] | None = None


class Images(pulumi.ComponentResource):
    postgres: pulumi.Output[str]
    haproxy: pulumi.Output[str]
    redis: pulumi.Output[str]
    api: pulumi.Output[str]
    # Every image built, by role (the four above and any `extra` one).
    ids: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:Images", name, None, opts)
        ids: dict[str, pulumi.Output[str]] = {}
        for role, context in CONTEXTS.items():
            if args.only is not None and role not in args.only:
                continue
            if args.only is None and role in OPTIONAL and role not in args.extra:
                continue
            image = docker.Image(
                f"{name}-{role}",
                docker.ImageArgs(
                    image_name=image_name(args.prefix, role),
                    build=docker.DockerBuildArgs(
                        context=str(context),
                        dockerfile=str(context / "Dockerfile"),
                        args={"BASE_IMAGE": args.base_image},
                        builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
                    ),
                    skip_push=True,
                ),
                pulumi.ResourceOptions(parent=self),
            )
            ids[role] = image.repo_digest
        self.ids = ids
        if args.only is None:
            self.postgres, self.haproxy = ids["postgres"], ids["haproxy"]
            self.redis, self.api = ids["redis"], ids["api"]
        self.register_outputs(ids)
