"""Faults on containers through the Docker API, and their lifting, for every campaign.

kill (SIGKILL; Docker does not restart a container killed through its API), stop
(graceful), pause (frozen: connections hang instead of being refused) and partition
(disconnected from the stack network). Lifting undoes whichever fault the container shows.
"""

from __future__ import annotations

import time

from docker.models.containers import Container
from docker.models.networks import Network

from pgha_testkit.poll import NotYet, wait_until

FAULTS = ("kill", "stop", "pause")
PARTITION = "partition"
HEALTHY_TIMEOUT_S = 180.0


def inject(container: Container, fault: str, network: Network | None = None) -> None:
    # The campaigns' own compound faults (kill+failover, cut+kill) start with a kill.
    if fault == "kill" or fault.endswith("+failover"):
        container.kill()
    elif fault == "stop":
        container.stop(timeout=10)
    elif fault == "pause":
        container.pause()
    elif fault == PARTITION and network is not None:
        network.disconnect(container)
    else:
        raise ValueError(fault)


def lift(container: Container, network: Network | None = None, alias: str = "") -> None:
    """Undoes any fault: reconnect, unpause, or start a stopped or killed container."""
    container.reload()
    if network is not None and network.name not in container.attrs["NetworkSettings"]["Networks"]:
        network.connect(container, aliases=[alias] if alias else None)
    status = container.attrs["State"]["Status"]
    if status == "paused":
        container.unpause()
    elif status != "running":
        container.start()


def healthy_at(container: Container, poll_s: float = 0.1) -> float:
    """Blocks until the container runs and Docker calls it healthy; returns when that was."""

    def healthy() -> bool:
        container.reload()
        state = container.attrs["State"]
        health = (state.get("Health") or {}).get("Status")
        if state["Status"] != "running" or health not in ("healthy", None):
            raise NotYet(f"{state['Status']}/{health}")
        return True

    wait_until(healthy, HEALTHY_TIMEOUT_S, f"{container.name} healthy", interval=poll_s)
    return time.monotonic()
