"""The cache of a cacheMode sentinel stack, seen from the host over the Docker SDK.

Commands run inside the containers with redis-cli, the password taken from the container's
own env through REDISCLI_AUTH (never argv), so nothing needs a published port: in
sentinel mode the cache publishes none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.sentinel_cfg import SENTINEL_PORT, SERVICE, node_names, sentinel_names
from pgha_testkit.poll import NotYet, wait_until

if TYPE_CHECKING:
    from pgha_testkit.deployment import Deployment

NODES = node_names(2)
SENTINELS = sentinel_names(3)


def cli(deployment: Deployment, name: str, *args: str, auth: bool = True) -> tuple[int, str]:
    """Exit code and output of redis-cli in a node (as the API's user) or a Sentinel."""
    port = SENTINEL_PORT if name.startswith("sentinel-") else 6379
    user = "" if name.startswith("sentinel-") else '--user "$PGHA_HEALTH_USER"'
    password = 'REDISCLI_AUTH="$PGHA_HEALTH_PASSWORD" ' if auth else ""
    quoted = " ".join(f"'{a}'" for a in args)
    script = f"{password}redis-cli --no-auth-warning -p {port} {user} {quoted}"
    result = deployment.container(name).exec_run(["sh", "-c", script])
    output = result.output if isinstance(result.output, bytes) else b""
    return int(result.exit_code or 0), output.decode(errors="replace").strip()


def ask(deployment: Deployment, name: str, *args: str) -> str:
    code, out = cli(deployment, name, *args)
    if code != 0 or out.startswith(("ERR", "NOAUTH", "WRONGPASS")):
        raise NotYet(f"{name}: {' '.join(args)} -> {code} {out[:200]}")
    return out


def sentinel_primary(deployment: Deployment, sentinel: str) -> str:
    """The node alias `sentinel` names as primary."""
    return ask(deployment, sentinel, "SENTINEL", "get-master-addr-by-name", SERVICE).split()[0]


def info(deployment: Deployment, node: str) -> dict[str, str]:
    text = ask(deployment, node, "INFO", "replication")
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def running(deployment: Deployment, name: str) -> bool:
    container = deployment.container(name)
    container.reload()
    return container.status == "running"


def logs(deployment: Deployment, lines: int = 15) -> dict[str, str]:
    """The last lines each Sentinel logged (for a failure message)."""
    return {s: deployment.container(s).logs(tail=lines).decode(errors="replace") for s in SENTINELS}


def restart_stopped(deployment: Deployment) -> None:
    """Starts (or unpauses) every cache node and Sentinel a test left down."""
    for name in NODES + SENTINELS:
        container = deployment.container(name)
        container.reload()
        if container.status == "paused":
            container.unpause()
        elif container.status != "running":
            container.start()


def whole(deployment: Deployment) -> str:
    """The primary, once every Sentinel agrees on it, it is a primary, the other node
    streams from it, and every Sentinel knows the two other Sentinels and the replica."""
    views = {s: sentinel_primary(deployment, s) for s in SENTINELS}
    if len(set(views.values())) != 1:
        raise NotYet(f"Sentinels disagree: {views}")
    primary = next(iter(views.values()))
    if info(deployment, primary).get("role") != "master":
        raise NotYet(f"{primary} is not a primary yet")
    for node in NODES:
        if node == primary:
            continue
        replica = info(deployment, node)
        if replica.get("role") != "slave" or replica.get("master_link_status") != "up":
            raise NotYet(f"{node} is not streaming from {primary}: {replica.get('role')}")
    for s in SENTINELS:
        state = ask(deployment, s, "SENTINEL", "master", SERVICE).splitlines()
        fields = dict(zip(state[::2], state[1::2], strict=False))
        if fields.get("num-other-sentinels") != "2" or fields.get("num-slaves") != "1":
            raise NotYet(f"{s} sees {fields.get('num-other-sentinels')} peers")
        if "s_down" in fields.get("flags", "") or "o_down" in fields.get("flags", ""):
            raise NotYet(f"{s} flags the primary {fields.get('flags')}")
    return primary


def wait_whole(deployment: Deployment, timeout: float = 120) -> str:
    """Waits until `whole` holds; returns the primary."""
    found: list[str] = []

    def ok() -> bool:
        found[:] = [whole(deployment)]
        return True

    wait_until(ok, timeout, "a whole sentinel cache (primary, streaming replica, 3 Sentinels)")
    return found[0]
