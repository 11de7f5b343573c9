"""STOPGAP: Docker network, volume, image and container as Pulumi dynamic providers.

Why this exists: the pulumi-docker resource plugin cannot be built on machines
that only reach package registries (the Go proxy refuses its provider module and
the Terraform provider it wraps, see the README). These four resources cover
what pgha needs, over the Docker Engine API (the `docker` package from PyPI).
Only the component classes use them, through typed `*Args` dataclasses shaped
like pulumi-docker's, so moving to `pulumi_docker` later touches only those
classes.

Each provider is pickled by reference (module `dockerres`), so the dynamic
provider process needs `infra/` on PYTHONPATH; `scripts/env.sh` sets it.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

# Keys every dynamic resource carries that are not user inputs.
_INTERNAL = ("__provider",)
LABEL = "pgha.stack"


def client() -> Any:
    import docker  # imported lazily: the provider process unpickles this module first

    return docker.from_env(timeout=300)


def is_not_found(exc: BaseException) -> bool:
    import docker.errors

    return isinstance(exc, docker.errors.NotFound)


def props_of(value: Any) -> Any:
    """Args dataclasses to plain input dicts, keeping Outputs as they are.

    dataclasses.asdict would deep-copy every leaf, and an Output must not be copied.
    """
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: props_of(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: props_of(v) for k, v in value.items()}
    if isinstance(value, list):
        return [props_of(v) for v in value]
    return value


def _changed(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    keys = (set(olds) | set(news)) - set(_INTERNAL)
    return sorted(k for k in keys if olds.get(k) != news.get(k))


def _replace_diff(olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
    """Any input change replaces the resource; names are fixed, so the old one goes first."""
    changed = _changed({k: olds.get(k) for k in news}, news)
    return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)


def _remove_if_present(remove: Callable[[], Any]) -> None:
    """Deletes are idempotent: something already removed by hand is not an error."""
    try:
        remove()
    except Exception as exc:
        if not is_not_found(exc):
            raise


# --- Network ---------------------------------------------------------------


@dataclass
class NetworkArgs:
    name: pulumi.Input[str]
    labels: dict[str, str] = field(default_factory=dict)


class _NetworkProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        net = client().networks.create(
            props["name"], driver="bridge", labels=props.get("labels") or {}, check_duplicate=True
        )
        net.reload()
        ipam = (net.attrs.get("IPAM") or {}).get("Config") or [{}]
        outs = {**props, "subnet": ipam[0].get("Subnet", ""), "gateway": ipam[0].get("Gateway", "")}
        return CreateResult(id_=net.id, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return _replace_diff(olds, news)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        _remove_if_present(lambda: client().networks.get(_id).remove())


class Network(Resource, module="docker", name="Network"):
    name: pulumi.Output[str]
    subnet: pulumi.Output[str]
    gateway: pulumi.Output[str]

    def __init__(
        self, resource_name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            _NetworkProvider(),
            resource_name,
            {**props_of(args), "subnet": None, "gateway": None},
            opts,
        )


# --- Volume ----------------------------------------------------------------


@dataclass
class VolumeArgs:
    name: pulumi.Input[str]
    labels: dict[str, str] = field(default_factory=dict)


class _VolumeProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        vol = client().volumes.create(name=props["name"], labels=props.get("labels") or {})
        return CreateResult(id_=vol.name, outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return _replace_diff(olds, news)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        _remove_if_present(lambda: client().volumes.get(_id).remove())


class Volume(Resource, module="docker", name="Volume"):
    name: pulumi.Output[str]

    def __init__(
        self, resource_name: str, args: VolumeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(_VolumeProvider(), resource_name, props_of(args), opts)


# --- Image -----------------------------------------------------------------


@dataclass
class DockerBuildArgs:
    context: str
    dockerfile: str = "Dockerfile"
    args: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    # A digest of the context's files: the build reruns only when it changes.
    context_hash: str = ""


@dataclass
class ImageArgs:
    image_name: pulumi.Input[str]
    build: DockerBuildArgs


class _ImageProvider(ResourceProvider):
    def _build(self, props: dict[str, Any]) -> dict[str, Any]:
        build = props["build"]
        api = client().api
        image_id, tail = "", []
        # The legacy builder never pulls with pull=False, so FROM resolves to the
        # locally imported base image.
        for chunk in api.build(
            path=build["context"],
            dockerfile=build.get("dockerfile") or "Dockerfile",
            tag=props["image_name"],
            buildargs=build.get("args") or {},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        ):
            if "error" in chunk:
                raise RuntimeError(
                    f"docker build of {props['image_name']} failed: {chunk['error']}\n"
                    + "".join(tail[-30:])
                )
            if "stream" in chunk:
                tail.append(chunk["stream"])
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
        if not image_id:
            image_id = api.inspect_image(props["image_name"])["Id"]
        return {**props, "image_id": image_id}

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._build(props)
        return CreateResult(id_=outs["image_id"], outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = _changed(
            {k: olds.get(k) for k in news if k != "image_id"},
            {k: v for k, v in news.items() if k != "image_id"},
        )
        if not changed:
            # Rebuild when the image itself has gone, e.g. after `docker image prune`.
            try:
                client().api.inspect_image(olds.get("image_id", ""))
            except Exception as exc:
                if is_not_found(exc):
                    changed = ["image_id"]
                else:
                    raise
        return DiffResult(changes=bool(changed), replaces=[], stables=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._build(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Only the stack's tag goes: with noprune the layers beneath it stay
        # as the build cache that makes the next stack's images build fast.
        import docker.errors

        try:
            client().api.remove_image(props["image_name"], noprune=True)
        except docker.errors.APIError as exc:
            # Not found, or still used by a container outside this stack.
            if exc.status_code not in (404, 409):
                raise


class Image(Resource, module="docker", name="Image"):
    image_name: pulumi.Output[str]
    image_id: pulumi.Output[str]

    def __init__(
        self, resource_name: str, args: ImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            _ImageProvider(), resource_name, {**props_of(args), "image_id": None}, opts
        )


# --- Container -------------------------------------------------------------


@dataclass
class ContainerPortArgs:
    internal: int
    external: pulumi.Input[int]
    ip: pulumi.Input[str] = "127.0.0.1"


@dataclass
class ContainerNetworksAdvancedArgs:
    name: pulumi.Input[str]
    aliases: list[str] = field(default_factory=list)


@dataclass
class ContainerVolumeArgs:
    volume_name: pulumi.Input[str]
    container_path: str


@dataclass
class ContainerUploadArgs:
    file: str
    content: pulumi.Input[str]
    mode: int = 0o644


@dataclass
class ContainerArgs:
    name: pulumi.Input[str]
    image: pulumi.Input[str]
    envs: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    command: list[str] | None = None
    user: str | None = None
    networks_advanced: list[ContainerNetworksAdvancedArgs] = field(default_factory=list)
    ports: list[ContainerPortArgs] = field(default_factory=list)
    volumes: list[ContainerVolumeArgs] = field(default_factory=list)
    uploads: list[ContainerUploadArgs] = field(default_factory=list)
    tmpfs: dict[str, str] = field(default_factory=dict)
    restart: str = "unless-stopped"
    init: bool = True
    read_only: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    # Block until Docker reports the image's HEALTHCHECK healthy, so dependants
    # are only created once this container can serve them.
    wait: bool = True
    wait_timeout: int = 180
    # Seconds `docker stop` waits before SIGKILL when the container is deleted.
    stop_timeout: int = 30
    # When set, a change to `uploads` alone is applied in place: the files are
    # uploaded into the running container, which then gets this signal
    # (HAProxy reloads on SIGUSR2) instead of being replaced.
    reload_signal: str | None = None


def _tar_of(files: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in files:
            data = f["content"].encode()
            info = tarfile.TarInfo(f["file"].lstrip("/"))
            info.size, info.mode, info.mtime = len(data), int(f.get("mode") or 0o644), time.time()
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _wait_healthy(api: Any, cid: str, timeout: int) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = api.inspect_container(cid)["State"]
        health = (state.get("Health") or {}).get("Status")
        if state.get("Status") in ("exited", "dead"):
            problem = f"exited with code {state.get('ExitCode')}"
        elif health in (None, "healthy"):
            return
        elif time.monotonic() > deadline:
            problem = f"not healthy after {timeout}s (health: {health})"
        else:
            time.sleep(0.5)
            continue
        logs = api.logs(cid, tail=40).decode(errors="replace")
        raise RuntimeError(f"container {cid[:12]} {problem}; last log lines:\n{logs}")


class _ContainerProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        import docker.types

        api = client().api
        nets = props.get("networks_advanced") or []
        ports = props.get("ports") or []
        host_config = api.create_host_config(
            port_bindings={
                f"{int(p['internal'])}/tcp": (p["ip"], int(p["external"])) for p in ports
            },
            mounts=[
                docker.types.Mount(v["container_path"], v["volume_name"], type="volume")
                for v in props.get("volumes") or []
            ],
            restart_policy={"Name": props.get("restart") or "no"},
            init=bool(props.get("init")),
            read_only=bool(props.get("read_only")),
            tmpfs=props.get("tmpfs") or None,
            network_mode=nets[0]["name"] if nets else None,
            security_opt=["no-new-privileges"],
        )
        networking = (
            api.create_networking_config(
                {nets[0]["name"]: api.create_endpoint_config(aliases=nets[0].get("aliases") or [])}
            )
            if nets
            else None
        )
        created = api.create_container(
            props["image"],
            name=props["name"],
            environment=[f"{k}={v}" for k, v in sorted((props.get("envs") or {}).items())],
            command=props.get("command"),
            user=props.get("user") or None,
            ports=[int(p["internal"]) for p in ports],
            labels=props.get("labels") or {},
            host_config=host_config,
            networking_config=networking,
        )
        cid = created["Id"]
        try:
            for net in nets[1:]:
                api.connect_container_to_network(cid, net["name"], aliases=net.get("aliases"))
            uploads = props.get("uploads") or []
            if uploads:
                api.put_archive(cid, "/", _tar_of(uploads))
            api.start(cid)
            if props.get("wait"):
                _wait_healthy(api, cid, int(props.get("wait_timeout") or 180))
        except BaseException:
            # A failed create must not leave a container that blocks the name.
            api.remove_container(cid, force=True, v=False)
            raise
        return CreateResult(id_=cid, outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        if _changed(olds, news) == ["uploads"] and news.get("reload_signal"):
            return DiffResult(changes=True, replaces=[])
        return _replace_diff(olds, news)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        api = client().api
        api.put_archive(_id, "/", _tar_of(news.get("uploads") or []))
        if api.inspect_container(_id)["State"]["Running"]:
            api.kill(_id, signal=news["reload_signal"])
        return UpdateResult(outs=news)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        api = client().api
        _remove_if_present(lambda: api.stop(_id, timeout=int(props.get("stop_timeout") or 30)))
        _remove_if_present(lambda: api.remove_container(_id, force=True, v=False))


class Container(Resource, module="docker", name="Container"):
    name: pulumi.Output[str]

    def __init__(
        self, resource_name: str, args: ContainerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        opts = pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(
                # Names and host ports are fixed, so the old container must go first.
                delete_before_replace=True,
                additional_secret_outputs=["envs", "uploads"],
            ),
            opts,
        )
        super().__init__(_ContainerProvider(), resource_name, props_of(args), opts)
