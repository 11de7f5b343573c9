"""A deployed stack's outputs as a typed object, read through the Automation API.

Output keys come from `infra.outputs` only, so renaming an output is one edit that
every runner follows. Reads go through a `LocalWorkspace` with an explicit stack name
rather than `select_stack`: selecting writes the checkout-wide current stack of the file
backend, which other people's plain `pulumi` commands in this checkout rely on.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from pulumi import automation as auto

from infra import config
from infra import outputs as out
from pgha_testkit.env import ROOT, pulumi_env

NAMESPACE = "pgha"
# The stack config keys that hold passwords (namespace `pgha`), as infra reads them.
SECRET_KEYS = tuple(config.SECRET_KEYS.values())
# Host ports a stack publishes, in the order a free port block is handed out.
PORT_KEYS = (
    "apiPort",
    "writePort",
    "readPort",
    "redisPort",
    "statsPort",
    # Published only with pgha:monitoring; every test stack gets them so none collides.
    "prometheusPort",
    "alertmanagerPort",
)
# Outputs without which no runner can do anything useful.
REQUIRED = (out.API_URL, out.CONTAINERS, out.PRIMARY, out.REPLICAS, out.NETWORK)
SECRET_OUTPUTS = (out.WRITE_DSN, out.READ_DSN, out.REDIS_URL)


class StackError(RuntimeError):
    """The stack is missing, not deployed, or its outputs are not what infra exports."""


@dataclass(frozen=True)
class Secrets:
    """The secret outputs: connection strings with passwords in them."""

    write_dsn: str
    read_dsn: str
    redis_url: str

    @property
    def pg_password(self) -> str:
        return unquote(urlsplit(self.write_dsn).password or "")

    @property
    def redis_user(self) -> str:
        return unquote(urlsplit(self.redis_url).username or "default")


@dataclass(frozen=True)
class Outputs:
    """One stack's outputs; `secrets` is None when they were not asked for."""

    stack: str
    api_url: str
    write_endpoint: str
    read_endpoint: str
    redis_endpoint: str
    haproxy_stats_url: str
    primary: str
    replicas: tuple[str, ...]
    synchronous: bool
    read_fallback: str
    network: str
    containers: Mapping[str, str]
    volumes: Mapping[str, str]
    secrets: Secrets | None
    # cacheMode sentinel: the node (`redis-N`) Sentinel named as primary at the last up;
    # empty in single mode, whose one cache container is `redis`.
    redis_primary: str = ""
    # Every HAProxy's API URL (several only with two or more API hosts); api_url is first.
    api_urls: tuple[str, ...] = ()

    @property
    def prefix(self) -> str:
        # The network is named after the stack prefix (`pgha-<stack>`), like every object
        # of the stack and the value of its `STACK_LABEL`.
        return self.network

    @property
    def primary_container(self) -> str:
        return self.containers[self.primary]

    def container_of(self, role: str) -> str:
        """Container of a node or service; `replica` is the first replica, `api` the first
        API instance."""
        if role == "api" and "api" not in self.containers:
            return self.containers["api-1"]
        if role == "primary":
            return self.containers[self.primary]
        if role == "replica":
            return self.containers[self.replicas[0]]
        if role == "redis" and "redis" not in self.containers and self.redis_primary:
            return self.containers[self.redis_primary]
        return self.containers[role]

    def require_secrets(self) -> Secrets:
        if self.secrets is None:
            raise StackError(f"outputs of {self.stack!r} were loaded without secrets")
        return self.secrets


def _str(values: Mapping[str, Any], key: str, default: str = "") -> str:
    value = values.get(key, default)
    if not isinstance(value, str):
        raise StackError(f"output {key!r} is {type(value).__name__}, not a string")
    return value


def _names(values: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = values.get(key, [])
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise StackError(f"output {key!r} is not a list of names")
    return tuple(value)


def _mapping(values: Mapping[str, Any], key: str) -> dict[str, str]:
    value = values.get(key, {})
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise StackError(f"output {key!r} is not a name -> name mapping")
    return {str(k): v for k, v in value.items()}


def outputs_from(stack: str, values: Mapping[str, Any], *, with_secrets: bool) -> Outputs:
    """Builds `Outputs` from plain output values (as `pulumi stack output --json` shows them)."""
    wanted = REQUIRED + (SECRET_OUTPUTS if with_secrets else ())
    missing = [key for key in wanted if values.get(key) in (None, "", [], {})]
    if missing:
        raise StackError(f"stack {stack!r} has no outputs {missing}: deploy it first (make up)")
    return Outputs(
        stack=stack,
        api_url=_str(values, out.API_URL).rstrip("/"),
        write_endpoint=_str(values, out.WRITE_ENDPOINT),
        read_endpoint=_str(values, out.READ_ENDPOINT),
        redis_endpoint=_str(values, out.REDIS_ENDPOINT),
        haproxy_stats_url=_str(values, out.HAPROXY_STATS_URL),
        primary=_str(values, out.PRIMARY),
        replicas=_names(values, out.REPLICAS),
        synchronous=bool(values.get(out.SYNCHRONOUS, False)),
        read_fallback=_str(values, out.READ_FALLBACK, "none"),
        network=_str(values, out.NETWORK),
        containers=_mapping(values, out.CONTAINERS),
        volumes=_mapping(values, out.VOLUMES),
        redis_primary=_str(values, out.REDIS_PRIMARY),
        api_urls=tuple(u.rstrip("/") for u in _names(values, out.API_URLS))
        or (_str(values, out.API_URL).rstrip("/"),),
        secrets=(
            Secrets(
                write_dsn=_str(values, out.WRITE_DSN),
                read_dsn=_str(values, out.READ_DSN),
                redis_url=_str(values, out.REDIS_URL),
            )
            if with_secrets
            else None
        ),
    )


def _pulumi_command() -> auto.PulumiCommand | None:
    # The CLI `make setup` builds into .tools/: found by path, so a caller whose PATH lacks
    # it still works (the Automation API looks the CLI up in this process's PATH).
    if (ROOT / ".tools" / "bin" / "pulumi").exists():
        return auto.PulumiCommand(root=str(ROOT / ".tools"))
    return None


def workspace() -> auto.LocalWorkspace:
    """A workspace on the pgha project in ROOT, with `pulumi_env()`."""
    return auto.LocalWorkspace(
        work_dir=str(ROOT), env_vars=pulumi_env(), pulumi_command=_pulumi_command()
    )


def select(stack: str) -> auto.Stack:
    """The stack for up/destroy. Note: this also makes it the checkout's current stack."""
    return auto.select_stack(
        stack_name=stack,
        work_dir=str(ROOT),
        opts=auto.LocalWorkspaceOptions(env_vars=pulumi_env(), pulumi_command=_pulumi_command()),
    )


def load_outputs(
    stack: str, *, with_secrets: bool = True, ws: auto.LocalWorkspace | None = None
) -> Outputs:
    """Outputs of a deployed stack. `with_secrets=False` drops the connection strings, for
    runners that must never hold a password."""
    try:
        raw = (ws or workspace()).stack_outputs(stack)
    except (auto.CommandError, OSError, subprocess.CalledProcessError) as exc:
        # OSError and CalledProcessError: no working `pulumi` CLI (make setup builds it).
        raise StackError(f"cannot read outputs of stack {stack!r}: {exc}") from exc
    return outputs_from(stack, {k: v.value for k, v in raw.items()}, with_secrets=with_secrets)


def config_value(stack: str, key: str, *, ws: auto.LocalWorkspace | None = None) -> str | None:
    """A `pgha:<key>` config value of the stack, or None when it is not set."""
    try:
        return (ws or workspace()).get_config(stack, f"{NAMESPACE}:{key}").value
    except auto.CommandError:
        return None


def throwaway_config(base_port: int, nodes: Sequence[str]) -> dict[str, auto.ConfigValue]:
    """Config of a test stack: its own port block from `base_port`, fresh random passwords."""
    config = {
        f"{NAMESPACE}:{key}": auto.ConfigValue(value=str(base_port + i))
        for i, key in enumerate(PORT_KEYS)
    }
    config[f"{NAMESPACE}:nodes"] = auto.ConfigValue(value=json.dumps(list(nodes)))
    # A throwaway stack's backup repository goes with it, so destroy leaves nothing.
    config[f"{NAMESPACE}:backupRetain"] = auto.ConfigValue(value="false")
    for key in SECRET_KEYS:
        config[f"{NAMESPACE}:{key}"] = auto.ConfigValue(
            value=secrets.token_urlsafe(18), secret=True
        )
    return config
