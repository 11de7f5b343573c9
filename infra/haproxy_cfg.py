"""Renders haproxy.cfg from the stack's topology: a pure function, unit-tested.

Endpoints are named by role. `primary` sends writes only to the node the stack
config names, and only while that node's role endpoint says it is the writable
primary, so a node restarted writable by hand never takes writes. `replicas`
balances the streaming replicas; with readFallback=primary it uses the primary
when no replica is up.
"""

from __future__ import annotations

from dataclasses import dataclass

PG_PORT = 5432
ROLE_PORT = 8008
WRITE_PORT = 5432
READ_PORT = 5433
STATS_PORT = 8404


@dataclass(frozen=True)
class ProxyTopology:
    primary: str
    replicas: list[str]
    read_fallback: str
    stats_user: str = "admin"


def _server(node: str) -> str:
    return f"    server {node} {node}:{PG_PORT} check port {ROLE_PORT}"


def render(topology: ProxyTopology, stats_password: str) -> str:
    if any(c in stats_password for c in " \t\n#\"'\\"):
        raise ValueError("the HAProxy stats password must not contain spaces, quotes, # or \\")
    fallback = topology.read_fallback == "primary"
    lines = [
        "# Rendered by pgha (infra/haproxy_cfg.py) from stack config; do not edit.",
        "global",
        "    maxconn 2000",
        # After a reload, old workers keep pooled client sessions (to a node
        # that may no longer be primary) at most this long.
        "    hard-stop-after 3s",
        "    log stdout format raw local0 notice",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    timeout connect 2s",
        "    timeout client 30m",
        "    timeout server 30m",
        "    timeout check 1s",
        # Fast checks, and sessions cut when a node goes down, so clients fail
        # fast and reconnect to whatever is healthy.
        "    default-server inter 1s fastinter 500ms downinter 1s rise 2 fall 2"
        " on-marked-down shutdown-sessions resolvers docker init-addr last,libc,none",
        "",
        # Docker's DNS: a node that is down at start must not stop HAProxy.
        "resolvers docker",
        "    nameserver dns 127.0.0.11:53",
        "    hold valid 1s",
        "    hold nx 1s",
        "",
        "listen primary",
        f"    bind *:{WRITE_PORT}",
        "    option httpchk GET /primary",
        "    http-check expect status 200",
        _server(topology.primary),
        "",
        "frontend replicas",
        f"    bind *:{READ_PORT}",
    ]
    if fallback:
        lines.append("    use_backend replica_nodes if { nbsrv(replica_nodes) gt 0 }")
        lines.append("    default_backend primary_for_reads")
    else:
        lines.append("    default_backend replica_nodes")
    lines += [
        "",
        "backend replica_nodes",
        "    balance roundrobin",
        "    option httpchk GET /replica",
        "    http-check expect status 200",
        *(_server(n) for n in topology.replicas),
    ]
    if fallback:
        lines += [
            "",
            "backend primary_for_reads",
            "    option httpchk GET /primary",
            "    http-check expect status 200",
            _server(topology.primary),
        ]
    lines += [
        "",
        "listen stats",
        f"    bind *:{STATS_PORT}",
        "    mode http",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 5s",
        f"    stats auth {topology.stats_user}:{stats_password}",
        "",
    ]
    return "\n".join(lines)
