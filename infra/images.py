"""`Images`: builds pgha's four images locally from the base image; nothing is pulled."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pulumi

from dockerres import DockerBuildArgs, Image, ImageArgs

ROOT = Path(__file__).resolve().parent.parent
CONTEXTS = {
    "postgres": ROOT / "images" / "postgres",
    "haproxy": ROOT / "images" / "haproxy",
    "redis": ROOT / "images" / "redis",
    "api": ROOT / "service",
}
# Never part of a build context (see service/.dockerignore), so never part of its hash.
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", "tests"}


def context_hash(context: Path) -> str:
    """A digest of every file a build sends, so an image rebuilds only when one changes."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(context):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath, name)
            digest.update(str(path.relative_to(context)).encode())
            digest.update(oct(path.stat().st_mode & 0o111).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class ImagesArgs:
    prefix: str
    base_image: str


class Images(pulumi.ComponentResource):
    postgres: pulumi.Output[str]
    haproxy: pulumi.Output[str]
    redis: pulumi.Output[str]
    api: pulumi.Output[str]

    def __init__(
        self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:Images", name, None, opts)
        ids: dict[str, pulumi.Output[str]] = {}
        for role, context in CONTEXTS.items():
            image = Image(
                f"{name}-{role}",
                ImageArgs(
                    image_name=f"{args.prefix}-{role}:latest",
                    build=DockerBuildArgs(
                        context=str(context),
                        args={"BASE_IMAGE": args.base_image},
                        context_hash=context_hash(context),
                    ),
                ),
                pulumi.ResourceOptions(parent=self),
            )
            ids[role] = image.image_id
        self.postgres, self.haproxy = ids["postgres"], ids["haproxy"]
        self.redis, self.api = ids["redis"], ids["api"]
        self.register_outputs(ids)
