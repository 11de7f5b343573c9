"""Redis through Sentinel (cacheMode sentinel): finding the primary, and the cache epoch.

The epoch is the primary's replication id (``master_replid`` in ``INFO replication``).
Redis draws a new one whenever a replica is promoted (and when a node restarts), and a
replica shares its primary's, so "same epoch" means "the same primary's history since its
last promotion". A body is filled with the epoch of the node that stores it (the fill
script reads it there) and served only by a connection to a node whose epoch is the same.
Bodies replicated from a primary that has since been replaced are therefore never served:
they may be older than a fence raise or a DEL that the old primary acknowledged but never
shipped to its replica. See service/README.md, "Cache failover".
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from ..config import Settings

# How long a fence waits for the Redis replica's acknowledgement (WAIT) before the
# Sentinels are asked whether the node that took it is still the primary.
WAIT_SECONDS = 0.25
# How long a confirmation that a node is the Sentinels' primary stands in for the replica's
# acknowledgement, judged when a fence's reply arrives. A node can only be replaced after
# the Sentinels have found it unreachable for down-after-milliseconds (3 s here), and a
# fence acknowledged by a primary that is then replaced is covered by the epoch's grace
# and barrier (a new epoch starts at the promotion, its barrier is read 2 s or more later).
CONFIRMED_PRIMARY_SECONDS = 0.5
# How long one Sentinel may take to answer "where is the primary" before the next is asked.
SENTINEL_TIMEOUT_SECONDS = 0.5
# Epochs are 40 hex digits; a body in sentinel mode is b"<version>|<epoch>|<json>".
EPOCH_LENGTH = 40


class NotDurable(RedisError):
    """The primary took a fence, but neither its replica nor the Sentinels vouch for it."""


class NotAPrimary(RedisConnectionError):
    """The node Sentinel named is not (or no longer) a primary: never used, like a refusal."""


def parse_replication(info: bytes | str) -> tuple[str, bytes]:
    """(role, master_replid) from an ``INFO replication`` reply."""
    text = info.decode() if isinstance(info, bytes) else info
    fields = dict(
        line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#")
    )
    role = fields.get("role", "").strip()
    replid = fields.get("master_replid", "").strip()
    if not role or len(replid) != EPOCH_LENGTH:
        raise ValueError("INFO replication without a role and a replication id")
    return role, replid.encode()


def primary_epoch(info: bytes) -> bytes:
    """The epoch of a node from its INFO replication, if it is a primary."""
    role, replid = parse_replication(info)
    if role != "master":
        raise NotAPrimary(f"redis node is a {role}, not the primary")
    return replid


def split_body(cached: bytes) -> tuple[int, bytes, bytes]:
    """(version, epoch, json) of a body stored in sentinel mode."""
    sep = cached.find(b"|")
    start = sep + 1
    end = start + EPOCH_LENGTH
    if sep <= 0 or cached[end : end + 1] != b"|":
        raise ValueError("not an epoch-tagged cache body")
    return int(cached[:sep]), cached[start:end], cached[end + 1 :]


@dataclass
class EpochClock:
    """The epoch this process last saw, and since when: a new one opens a grace period.

    During the grace period the cache is bypassed and reads go to the PostgreSQL primary:
    fences acknowledged by the previous Redis primary may be missing on the new one, so a
    replica row cannot be checked against them, and another API instance may still hold
    queued invalidations it has not replayed on the new primary yet.

    With a barrier, the grace period ends only once the PostgreSQL primary's WAL position
    has been read after it (or `barrier_wait_seconds` later, if the primary cannot say):
    every write acknowledged before the grace ended, by any instance, is at or before that
    LSN, so a replica that has replayed it cannot be behind any of them, whether or not
    their fences survived. Replica rows are trusted only from such a replica until the next
    epoch; see service/README.md, "Cache failover".
    """

    grace_seconds: float
    with_barrier: bool = False
    barrier_wait_seconds: float = 2.0
    epoch: bytes | None = None
    since: float = float("-inf")
    # The primary's LSN read after this epoch's grace, or None until then.
    barrier: str | None = None

    def observe(self, epoch: bytes, now: float | None = None) -> bool:
        """Records `epoch`; True if it differs from the one seen before."""
        if epoch == self.epoch:
            return False
        self.epoch = epoch
        self.since = time.monotonic() if now is None else now
        self.barrier = None
        return True

    def in_grace(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        elapsed = now - self.since
        if elapsed < self.grace_seconds:
            return True
        return self._barrier_missing() and elapsed < self.grace_seconds + self.barrier_wait_seconds

    def barrier_due(self, now: float | None = None) -> bytes | None:
        """The epoch whose barrier should be read now (its grace is over), else None."""
        now = time.monotonic() if now is None else now
        if self._barrier_missing() and now - self.since >= self.grace_seconds:
            return self.epoch
        return None

    def set_barrier(self, epoch: bytes, lsn: str) -> bool:
        """Records the LSN read for `epoch`; False if a newer epoch came meanwhile."""
        if epoch != self.epoch:
            return False
        self.barrier = lsn
        return True

    def _barrier_missing(self) -> bool:
        return self.with_barrier and self.epoch is not None and self.barrier is None


def parse_sentinels(spec: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` -> [(host, port), ...]."""
    addresses = []
    for item in spec.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"PGHA_REDIS_SENTINELS entry {item!r} is not host:port")
        addresses.append((host, int(port)))
    return addresses


def make_sentinel(settings: Settings) -> Sentinel:
    password = settings.redis_sentinel_password
    return Sentinel(  # type: ignore[no-untyped-call]
        parse_sentinels(settings.redis_sentinels),
        sentinel_kwargs={
            "username": settings.redis_sentinel_username,
            "password": password.get_secret_value() if password else None,
            "socket_timeout": SENTINEL_TIMEOUT_SECONDS,
            "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
            "retry": Retry(NoBackoff(), 0),
            "client_name": "pgha-api",
        },
    )


def master_client(sentinel: Sentinel, settings: Settings, **connection: Any) -> Redis:
    """redis-py's client for the current primary: each new connection asks the Sentinels,
    and a connection to a demoted primary is dropped on its first READONLY answer."""
    client: Redis = sentinel.master_for(settings.redis_sentinel_service, **connection)
    return client


def resolver(sentinel: Sentinel, service: str) -> Callable[[], Awaitable[tuple[str, int]]]:
    async def resolve() -> tuple[str, int]:
        host, port = await sentinel.discover_master(service)
        return str(host), int(port)

    return resolve


async def master_run_id(sentinel: Sentinel, service: str) -> str | None:
    """The run id of the node the first Sentinel that answers calls the primary, if any.

    A primary that was replaced while it could not be reached (paused, partitioned) still
    calls itself a primary when it comes back, until the Sentinels reconfigure it; its run
    id is then not the one they name.
    """
    for node in sentinel.sentinels:
        try:
            masters = await node.sentinel_masters()
        except (RedisConnectionError, TimeoutError, OSError):
            continue
        state = masters.get(service) if isinstance(masters, dict) else None
        if state and sentinel.check_master_state(state, service):
            # SENTINEL MASTERS names the field `runid`; INFO server names it `run_id`.
            return str(state.get("runid") or "") or None
    return None


class PrimaryConfirmation:
    """Whether a fence the Redis replica did not acknowledge still counts.

    It does on the node the Sentinels call the primary: its replica is down or slow, and
    resyncs from this node, fence included, when it comes back. A primary that was replaced
    while paused and has just resumed also has no replica, and is not that node.
    """

    def __init__(self, sentinel: Sentinel, service: str) -> None:
        self._sentinel = sentinel
        self._service = service
        # (run id, when the Sentinels were asked) of the last node they confirmed.
        self._confirmed: tuple[str, float] | None = None

    def fresh(self) -> bool:
        return (
            self._confirmed is not None
            and time.monotonic() - self._confirmed[1] < CONFIRMED_PRIMARY_SECONDS
        )

    async def accept(self, info: Any) -> None:
        """Returns if the node whose ``INFO server`` is `info` is the Sentinels' primary
        (from a fresh confirmation, judged now, after the reply), else raises NotDurable."""
        run_id = info.get("run_id") if isinstance(info, dict) else None
        confirmed = self._confirmed
        if run_id and confirmed and confirmed[0] == run_id and self.fresh():
            return
        asked = time.monotonic()
        if not run_id or run_id != await master_run_id(self._sentinel, self._service):
            raise NotDurable("the fence reached a Redis node the Sentinels do not call primary")
        self._confirmed = (run_id, asked)
