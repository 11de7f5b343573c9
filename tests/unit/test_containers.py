"""`infra.containers`: the hardening, ceilings and log rotation every container gets."""

from __future__ import annotations

from infra.containers import (
    FALLBACK_LIMITS,
    ContainerSpec,
    Limits,
    LogRotation,
    Scope,
    container_args,
)


def spec(role: str, scope: Scope) -> ContainerSpec:
    return ContainerSpec(scope=scope, member="m", role=role, image="img")


def test_each_role_gets_its_memory_ceiling_without_swap() -> None:
    scope = Scope("pgha-t", "net", {}, {"postgres": Limits(3000)}, LogRotation(5, 2))
    args = container_args(spec("postgres", scope))
    assert args.memory == 3000 and args.memory_swap == 3000
    # Not RLIMIT_NPROC: it is per user id across the host, not per container.
    assert not args.ulimits
    assert args.log_driver == "json-file"
    assert args.log_opts == {"max-size": "5m", "max-file": "2"}


def test_a_role_without_its_own_ceiling_gets_the_fallback() -> None:
    args = container_args(spec("something-new", Scope("pgha-t", "net", {})))
    assert args.memory == FALLBACK_LIMITS.memory_mb
