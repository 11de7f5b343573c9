"""The cache's key layout and per-product version fences: pure logic, no I/O.

``product:{id}`` holds ``b"<version>|<response json>"``; ``product:{id}:fence`` holds the
lowest version a reader may serve (negative = deleted at level ``-fence``). A write raises
the fence before it answers, so no reader can serve a body older than that write.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Fence:
    """Lowest row version a reader may serve; ``deleted`` means the row is gone for good."""

    level: int
    deleted: bool = False

    @classmethod
    def for_write(cls, version: int) -> Fence:
        return cls(version)

    @classmethod
    def for_delete(cls, last_version: int) -> Fence:
        return cls(last_version + 1, deleted=True)

    @classmethod
    def decode(cls, raw: bytes | None) -> Fence | None:
        return None if raw is None else cls.from_code(int(raw))

    @classmethod
    def from_code(cls, value: int) -> Fence:
        """The fence `encode` gave `value` for (as Redis and the fence log store it)."""
        return cls(-value, True) if value < 0 else cls(value)

    def encode(self) -> int:
        return -self.level if self.deleted else self.level

    def admits_cached(self, version: int) -> bool:
        return not self.deleted and version >= self.level

    def admits_row(self, version: int | None) -> bool:
        """Whether a row read from a replica (``None`` = absent) is at least this fresh."""
        if self.deleted:
            return version is None
        return version is not None and version >= self.level


def merge(a: Fence | None, b: Fence | None) -> Fence | None:
    if a is None:
        return b
    if b is None:
        return a
    if a.level != b.level:
        return a if a.level > b.level else b
    return a if a.deleted else b


class RecentWrites:
    """Fences of this process's own recent writes, used when Redis cannot be asked."""

    def __init__(self, ttl: float, max_items: int) -> None:
        self._ttl = ttl
        self._max = max_items
        self._items: OrderedDict[int, tuple[Fence, float]] = OrderedDict()

    def put(self, product_id: int, fence: Fence) -> None:
        current = self.get(product_id)
        self._items[product_id] = (merge(current, fence) or fence, time.monotonic() + self._ttl)
        self._items.move_to_end(product_id)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def get(self, product_id: int) -> Fence | None:
        entry = self._items.get(product_id)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._items[product_id]
            return None
        return entry[0]

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class Lookup:
    status: Literal["hit", "miss", "bypass"]
    body: bytes | None = None
    version: int | None = None
    fence: Fence | None = None
    # Read the PostgreSQL primary first: set while fences cannot be trusted (sentinel mode).
    primary: bool = False
    # Sentinel mode: the epoch of the primary that answered; a fill must land on the same one.
    epoch: bytes | None = None
    # Sentinel mode: the PostgreSQL LSN a replica must have replayed for its row to be used
    # (read after the last cache failover's grace; see sentinel.EpochClock).
    barrier: str | None = None
    # A bypass: a replica row is used only once that replica has replayed the primary's WAL
    # position read for this request (writes acknowledged elsewhere may have fences only
    # in a Redis this instance cannot reach).
    fresh: bool = False


def cache_key(product_id: int) -> str:
    return f"product:{product_id}"


def fence_key(product_id: int) -> str:
    return f"product:{product_id}:fence"


def lookup_command(product_id: int) -> bytes:
    """``MGET product:{id} product:{id}:fence``, RESP-encoded in one formatting step."""
    digits = b"%d" % product_id
    size = len(digits)
    return b"*3\r\n$4\r\nMGET\r\n$%d\r\nproduct:%s\r\n$%d\r\nproduct:%s:fence\r\n" % (
        size + 8,
        digits,
        size + 14,
        digits,
    )
