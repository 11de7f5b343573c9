"""`ProxyConfig`: uploads HAProxy's rendered config into its running container and reloads it.

Why a resource: the config lists the PostgreSQL nodes, so it changes whenever a node is
added or removed. Carried in the container's env, as it once was, every such change
replaced HAProxy, the one container every client goes through, and cut them all for about
2 s (seen in patroni mode: 36 failed writes in one scale out and in). Here the container
never changes for it: the config goes in through `docker exec` (in the exec's env, never
on a command line, since it holds the stats password) and `haproxy-reload` in the image
checks it, writes it to the container's volume and reloads HAProxy in master-worker mode.

It re-runs when the config changes or the container was replaced (its id changes): a new
container starts with the image's bootstrap config until this uploads the real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from infra import dockerexec


class ProxyConfigError(RuntimeError):
    pass


@dataclass
class ProxyConfigArgs:
    container: pulumi.Input[str]
    container_id: pulumi.Input[str]
    config: pulumi.Input[str]
    # The Docker engine URL of HAProxy's host (pgha:hosts); empty: the local engine.
    engine: str = ""


def apply(props: dict[str, Any]) -> dict[str, Any]:
    api = dockerexec.client(str(props.get("engine") or "")).api
    ex = api.exec_create(
        props["container"],
        ["haproxy-reload"],
        environment={"PGHA_HAPROXY_CFG": props["config"]},
    )
    output = api.exec_start(ex["Id"]).decode(errors="replace").strip()
    if api.exec_inspect(ex["Id"])["ExitCode"] != 0:
        raise ProxyConfigError(f"haproxy-reload in {props['container']} failed: {output[-500:]}")
    pulumi.log.info(f"{props['container']}: {output.splitlines()[-1] if output else 'done'}")
    return dict(props)


class _ProxyConfigProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="proxy-config", outs=apply(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("container", "container_id", "config") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=apply(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class ProxyConfig(Resource, module="pgha", name="ProxyConfig"):
    def __init__(
        self, resource_name: str, args: ProxyConfigArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            "container": args.container,
            "container_id": args.container_id,
            "config": pulumi.Output.secret(args.config),
        }
        if args.engine:
            props["engine"] = args.engine
        super().__init__(
            _ProxyConfigProvider(),
            resource_name,
            props,
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["config"])
            ),
        )
