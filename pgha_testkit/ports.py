"""Free loopback ports, so a test stack or a helper container never collides with dev.

A port found free can be taken by someone else before it is bound again; callers use
these for stacks and helpers that bind within seconds, which is good enough on one host.
"""

from __future__ import annotations

import secrets
import socket


def free_port() -> int:
    """One free port on 127.0.0.1, picked by the kernel."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(size: int, *, low: int = 20000, span: int = 2000, tries: int = 200) -> int:
    """First port of `size` consecutive free ports in [low, low + span * 10).

    Blocks start at multiples of 10 from `low` and are picked at random, so two runs
    starting at once rarely try the same block.
    """
    if not 1 <= size <= 10:
        raise ValueError("a port block holds 1 to 10 ports")
    for _ in range(tries):
        base = low + secrets.randbelow(span) * 10
        try:
            for port in range(base, base + size):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no block of {size} free ports found in {tries} tries")
