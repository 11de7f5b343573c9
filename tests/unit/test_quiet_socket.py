"""A pooled connection skips its checkout check only while its socket has nothing to read."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from app.db.recovery import quiet_socket


def _conn(sock: socket.socket) -> SimpleNamespace:
    return SimpleNamespace(pgconn=SimpleNamespace(socket=sock.fileno()))


def test_an_idle_socket_is_quiet_and_one_with_input_or_eof_is_not() -> None:
    ours, server = socket.socketpair()
    try:
        assert quiet_socket(_conn(ours))
        server.send(b"N")  # e.g. a notice that the server is terminating the session
        assert not quiet_socket(_conn(ours))
        ours.recv(1)
        server.close()  # FIN: the peer is gone
        assert not quiet_socket(_conn(ours))
    finally:
        ours.close()


def test_a_connection_without_a_socket_is_never_quiet() -> None:
    assert not quiet_socket(SimpleNamespace(pgconn=SimpleNamespace(socket=-1)))
