"""One pipelined Redis connection for the cache's hot commands: the MGET, fill and fence.

redis-py checks a connection out of its pool for every command, runs it under its retry and
lock machinery and parses the reply through several Python layers; on a cache hit that costs
more than everything else the request does. Here every concurrent command shares one
connection instead: commands issued in the same event-loop iteration leave in one write, and
hiredis parses the replies, which are handed out in order. Redis answers a connection's
commands in the order it received them, so the n-th reply always belongs to the n-th command,
also after a caller has given up waiting (its reply is read and dropped, so nothing can be
misattributed later).

Only plain ``redis://`` URLs are handled; TLS, Unix sockets and URL options stay with
redis-py (``RedisPipe.from_url`` returns ``None``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

import hiredis
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

_PLAIN_URL_OPTIONS = frozenset({"host", "port", "username", "password", "db"})


def encode_command(*args: bytes | str | int) -> bytes:
    """RESP encoding of one command (the multi-bulk form every Redis version accepts)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection(asyncio.Protocol):
    """One socket: a FIFO of waiters matched to replies, writes coalesced per loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._outgoing: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.closed = False
        # Sentinel mode: the replication id of the primary this socket reached (its epoch).
        self.epoch: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.closed:
            raise RedisConnectionError("redis connection closed")
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        if not self._outgoing:
            # Everything issued before the loop returns to I/O leaves in one write (one
            # syscall, one Redis read) instead of one each.
            self._loop.call_soon(self._flush)
        self._outgoing.append(command)
        return waiter

    def _flush(self) -> None:
        if self.closed or self._transport is None or not self._outgoing:
            return
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            self._reader.feed(data)
            waiters = self._waiters
            while (reply := self._reader.gets()) is not False:
                if not waiters:
                    # A reply nobody asked for: the stream can no longer be trusted.
                    self.abort("unexpected reply from redis")
                    return
                waiter = waiters.popleft()
                if waiter.done():
                    continue  # the caller timed out; its reply is consumed and dropped
                if isinstance(reply, ResponseError):
                    waiter.set_exception(reply)
                else:
                    waiter.set_result(reply)
        except hiredis.ProtocolError:
            self.abort("unparseable reply from redis")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all("redis connection lost")

    def abort(self, why: str = "redis connection closed") -> None:
        transport = self._transport
        self._fail_all(why)
        if transport is not None:
            transport.abort()

    def _fail_all(self, why: str) -> None:
        self.closed = True
        self._transport = None
        self._outgoing.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RedisConnectionError(why))


class RedisPipe:
    """A lazily (re)connected pipelined connection; ``execute`` is safe to call concurrently."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        client_name: str | None = None,
        connect_timeout: float = 1.0,
        resolve: Callable[[], Awaitable[tuple[str, int]]] | None = None,
        epoch_of: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        # Sentinel mode: where to connect is asked anew on every (re)connect, and the
        # handshake ends with INFO replication, which `epoch_of` turns into the epoch (or
        # rejects: a node that is not a primary is never used).
        self._resolve = resolve
        self._epoch_of = epoch_of
        handshake: list[bytes] = []
        if password is not None:
            auth = (username, password) if username else (password,)
            handshake.append(encode_command("AUTH", *auth))
        if db:
            handshake.append(encode_command("SELECT", db))
        if client_name:
            handshake.append(encode_command("CLIENT", "SETNAME", client_name))
        self._handshake = handshake
        self._connect_timeout = connect_timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    @classmethod
    def from_url(
        cls, url: str, *, client_name: str | None, connect_timeout: float
    ) -> RedisPipe | None:
        if not url.startswith("redis://"):
            return None
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        if set(options) - _PLAIN_URL_OPTIONS:
            return None
        return cls(
            options.get("host") or "localhost",
            int(options.get("port") or 6379),
            username=options.get("username"),
            password=options.get("password"),
            db=int(options.get("db") or 0),
            client_name=client_name,
            connect_timeout=connect_timeout,
        )

    @property
    def epoch(self) -> bytes | None:
        """The epoch of the current connection (sentinel mode), None if there is none."""
        return None if self._conn is None or self._conn.closed else self._conn.epoch

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    async def execute(self, command: bytes, timeout: float) -> Any:
        """Send an encoded command, return its reply; ``TimeoutError`` after ``timeout``."""
        return (await self.execute_at_epoch(command, timeout))[0]

    async def execute_at_epoch(self, command: bytes, timeout: float) -> tuple[Any, bytes | None]:
        """Like ``execute``, with the epoch of the connection that answered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        conn = self._conn
        if conn is None or conn.closed:
            async with asyncio.timeout_at(deadline):
                conn = await self.connect()
        waiter = conn.send(command)
        # A plain timer on the future: cheaper than asyncio.timeout's task cancellation,
        # and an expired waiter stays queued so its late reply is matched and dropped.
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            return await waiter, conn.epoch
        finally:
            timer.cancel()

    async def eval_script(
        self,
        sha: str,
        script: str,
        keys: list[str],
        args: list[bytes | int],
        timeout: float,
    ) -> Any:
        """EVALSHA ``sha``; if this Redis has not seen the script (NOSCRIPT), EVAL its text.

        Both attempts share ``timeout``. EVAL also loads the script, so only the first call
        after a Redis restart pays for the text.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            return await self.execute(
                encode_command("EVALSHA", sha, len(keys), *keys, *args), timeout
            )
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise TimeoutError()
        return await self.execute(encode_command("EVAL", script, len(keys), *keys, *args), left)

    async def connect(self) -> _Connection:
        # One attempt at a time, shared by every caller: a burst of requests on a dead
        # connection must not open a connection each.
        if self._connecting is None:
            task = asyncio.ensure_future(self._open())
            task.add_done_callback(self._connect_done)
            self._connecting = task
        return await asyncio.shield(self._connecting)

    def _connect_done(self, task: asyncio.Task[_Connection]) -> None:
        self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure no caller waited for is not logged

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        # Bounded on its own: callers stop waiting at their deadline, but a connect to a
        # black-holed host must not stay "in progress" (and block reconnects) for minutes.
        async with asyncio.timeout(max(self._connect_timeout, 1.0)):
            host, port = self._host, self._port
            if self._resolve is not None:
                host, port = await self._resolve()
            _, conn = await loop.create_connection(lambda: _Connection(loop), host, port)
            try:
                replies = [conn.send(command) for command in self._handshake]
                if self._epoch_of is not None:
                    replies.append(conn.send(encode_command("INFO", "replication")))
                for reply in replies:
                    info = await reply
                if self._epoch_of is not None:
                    conn.epoch = self._epoch_of(info)
            except BaseException:
                conn.abort()
                raise
        if self._conn is not None:
            self._conn.abort()
        self._conn = conn
        return conn

    def reset(self) -> None:
        """Drop the connection (waiters fail at once); the next command reconnects."""
        if self._conn is not None:
            self._conn.abort()
            self._conn = None

    async def aclose(self) -> None:
        self.reset()
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
