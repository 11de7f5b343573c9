"""What every pgha container has in common, declared once with pulumi_docker's types.

Each container is hardened the same way: every capability dropped (the
servers run as non-root users and bind unprivileged ports, so they need none),
`no-new-privileges`, a read-only root filesystem with tmpfs where the server
writes, an init process, the stack's labels, one network with role aliases,
ports published only on the given address, a memory ceiling per role, and
rotated logs. Creation waits for the image's HEALTHCHECK to pass, so dependants start
only once this container can serve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker


@dataclass
class Port:
    internal: int
    external: int
    ip: str


@dataclass(frozen=True)
class Limits:
    """A container's memory ceiling in MiB, with no swap beyond it.

    No process ceiling: the provider has no --pids-limit, and RLIMIT_NPROC is not one (it
    counts every process of the user id on the whole host, and the images' system users
    share uid 100, so a ceiling per container broke Redis's start beside other stacks).
    """

    memory_mb: int


# Each role's ceiling: its measured peak on the test stacks with room to spare, so a leak
# or a runaway query kills one container instead of the host (pgha:memoryLimitsMb).
DEFAULT_LIMITS = {
    # shared_buffers 128MB, work_mem per sort, Patroni, pgBackRest's archive-push workers.
    "postgres": Limits(2048),
    "api": Limits(512),
    "haproxy": Limits(256),
    # maxmemory 256mb of cache, plus a replica's full sync buffer.
    "redis": Limits(512),
    "sentinel": Limits(128),
    "etcd": Limits(512),
    # pgBackRest's backup and restore processes, compressing in parallel.
    "backup": Limits(1024),
}
# A role without its own entry (a new component) still gets a ceiling.
FALLBACK_LIMITS = Limits(512)


@dataclass(frozen=True)
class LogRotation:
    """Docker's json-file logs, rotated so a chatty container cannot fill the host's disk."""

    max_size_mb: int = 10
    max_files: int = 3


@dataclass(frozen=True)
class Scope:
    """Where every component's containers go: one per stack, in each component's args."""

    # `pgha-<stack>`: container names start with it, and it is the network's name.
    prefix: str
    network: pulumi.Input[str]
    # The stack's labels, which `pulumi destroy` checks and the tests select by.
    labels: Mapping[str, str]
    # Per role; a role missing here gets FALLBACK_LIMITS.
    limits: Mapping[str, Limits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    logs: LogRotation = LogRotation()

    def limits_of(self, role: str) -> Limits:
        return self.limits.get(role, FALLBACK_LIMITS)


@dataclass
class ContainerSpec:
    """The per-container part; `container_args` adds the shared hardening.

    The container is `<prefix>-<member>`, reachable on the network as `member` (or
    `alias`), and labelled with the stack's labels plus its role. Members of a replicated
    role (nodes, etcd members, Sentinels) also carry `pgha.node`, which the tests and the
    bench select them by; singletons do not, so their labels stay as they were.
    """

    scope: Scope
    member: str
    role: str
    image: pulumi.Input[str]
    alias: str | None = None
    node_label: bool = True
    envs: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    ports: Sequence[Port] = ()
    volumes: Sequence[docker.ContainerVolumeArgs] = ()
    # Writable scratch space on the read-only root filesystem: path -> mount options.
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    # resolv.conf options; unset keeps Docker's defaults (see PatroniCluster for a use).
    dns_opts: Sequence[str] = ()
    # Seconds `docker stop` (and delete) waits before SIGKILL.
    stop_timeout: int = 10
    wait_timeout: int = 120

    @property
    def name(self) -> str:
        return f"{self.scope.prefix}-{self.member}"

    @property
    def labels(self) -> dict[str, str]:
        node = {"pgha.node": self.member} if self.node_label else {}
        return {**self.scope.labels, "pgha.role": self.role, **node}


@dataclass
class Site:
    """Where one member runs when the stack spans hosts (pgha:hosts): its host's engine,
    that host's stack network and image, and the address the other hosts reach it at."""

    provider: pulumi.ProviderResource
    network: pulumi.Input[str]
    image: pulumi.Input[str]
    address: str

    def published(self) -> list[tuple[int, int]]:
        """(container port, port on `address`) pairs the other hosts need."""
        return []

    def place(self, spec: ContainerSpec) -> ContainerSpec:
        """`spec` on this host: its network and image, its ports published on `address`."""
        return dataclasses.replace(
            spec,
            scope=dataclasses.replace(spec.scope, network=self.network),
            image=self.image,
            ports=[*spec.ports, *(Port(i, o, self.address) for i, o in self.published())],
        )


def label_args(labels: Mapping[str, str]) -> list[docker.ContainerLabelArgs]:
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(labels.items())]


def env_list(envs: Mapping[str, pulumi.Input[str]]) -> list[pulumi.Input[str]]:
    # Output.concat keeps a secret value secret all the way into the container's env.
    return [pulumi.Output.concat(k, "=", v) for k, v in sorted(envs.items())]


def container_args(spec: ContainerSpec) -> docker.ContainerArgs:
    limits = spec.scope.limits_of(spec.role)
    logs = spec.scope.logs
    return docker.ContainerArgs(
        name=spec.name,
        image=spec.image,
        envs=env_list(spec.envs),
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(
                name=spec.scope.network, aliases=[spec.alias or spec.member]
            )
        ],
        ports=[
            docker.ContainerPortArgs(internal=p.internal, external=p.external, ip=p.ip)
            for p in spec.ports
        ],
        volumes=list(spec.volumes),
        tmpfs=dict(spec.tmpfs),
        # None, not []: an empty list would be a diff on every existing container.
        dns_opts=list(spec.dns_opts) or None,
        read_only=True,
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        security_opts=["no-new-privileges"],
        memory=limits.memory_mb,
        memory_swap=limits.memory_mb,
        log_driver="json-file",
        log_opts={"max-size": f"{logs.max_size_mb}m", "max-file": str(logs.max_files)},
        init=True,
        restart="unless-stopped",
        labels=label_args(spec.labels),
        wait=True,
        wait_timeout=spec.wait_timeout,
        stop_timeout=spec.stop_timeout,
        destroy_grace_seconds=spec.stop_timeout,
    )


def declare(
    name: str,
    spec: ContainerSpec,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    provider: pulumi.ProviderResource | None = None,
) -> docker.Container:
    """The container of `spec`, as a child of `parent` (a component).

    `provider` is the engine of the host it is placed on (pgha:placement); None inherits
    the parent's, which is the local engine unless pgha:hosts is set.
    """
    return docker.Container(
        name,
        container_args(spec),
        pulumi.ResourceOptions(
            parent=parent,
            provider=provider,
            depends_on=list(depends_on),
            # Names are fixed per stack (`pgha-<stack>-<role>`) and so are host ports, so
            # a replaced container must be removed before its successor can be created.
            delete_before_replace=True,
        ),
    )


def declare_with_volume(
    name: str,
    spec: ContainerSpec,
    data_path: str,
    retain: bool,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    provider: pulumi.ProviderResource | None = None,
) -> tuple[docker.Container, docker.Volume]:
    """`declare`, plus the member's own data volume (`<container>-data`) at `data_path`.

    The volume carries the stack's labels, not the container's role labels:
    changing a volume's labels replaces it, data and all. It is kept on destroy if `retain`.
    """
    volume = docker.Volume(
        f"{name}-data",
        docker.VolumeArgs(
            name=f"{spec.name}-data",
            labels=[
                docker.VolumeLabelArgs(label=k, value=v)
                for k, v in sorted(spec.scope.labels.items())
            ],
        ),
        pulumi.ResourceOptions(parent=parent, retain_on_delete=retain, provider=provider),
    )
    mount = docker.ContainerVolumeArgs(volume_name=volume.name, container_path=data_path)
    with_volume = dataclasses.replace(spec, volumes=[*spec.volumes, mount])
    return declare(name, with_volume, parent, depends_on, provider), volume
