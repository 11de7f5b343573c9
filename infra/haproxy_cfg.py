"""Renders haproxy.cfg from the stack's topology: a pure function, unit-tested.

Endpoints are named by role, and every node is listed in every backend: each
server is admitted by its role endpoint (GET /primary, GET /replica on :8008),
the way Patroni's HAProxy template does it. So a failover never changes this
file, and HAProxy never has to be replaced or reloaded for one; a change of nodes is a
reload (infra/proxy_config.py). `/primary`
answers 200 only on a node that is writable *and* meant to be primary, so a
node promoted by hand never takes writes. With readFallback=primary, reads use
the primary only while no replica is up.
"""

from __future__ import annotations

from dataclasses import dataclass

PG_PORT = 5432
ROLE_PORT = 8008
WRITE_PORT = 5432
READ_PORT = 5433
STATS_PORT = 8404
METRICS_PORT = 8405
# The API's HTTP port, inside the network (instances) and on HAProxy (the frontend).
API_PORT = 8000
# API instances are found by their shared network alias, so rolling replacement never
# changes this file; a spare slot takes a new instance while an old one's is released.
API_ALIAS = "api"
STATS_USER = "admin"
# HAProxy's admin socket and the server states a reload carries over (haproxy-reload).
ADMIN_SOCKET = "/run/haproxy/admin.sock"
SERVER_STATE_FILE = "/run/haproxy/server-state"
HAPROXY_THREADS = 1
# How long HAProxy waits, per attempt, for an API instance, in seconds (see _api_frontend).
# Connect: on the Docker bridge a connect completes in the kernel in well under a
# millisecond even when the instance is busy (HAProxy's average ctime was 0 ms after a
# `make bench` run), and its SYN is first retransmitted only after 1 s. A connect that takes
# longer went to an instance whose address is already gone (killed or stopped, not yet
# marked down): it is redispatched, POST included, since nothing was sent.
API_CONNECT_TIMEOUT_S = 0.25
# GET and HEAD: above the longest answer the API itself gives (a degraded read waits up
# to PGHA_POOL_TIMEOUT_SECONDS, 1.5 s, for a connection, then answers its own JSON 503,
# which must get through), and below the 2 s client timeout of `make chaos` by more than a
# read's p99.9 (20 to 170 ms under the chaos load on a busy 2-core host), so a read stuck
# on a frozen instance is retried on another one and still answered in time. Measured with
# the replica down: the API's 503 arrives after 1.50 s and gets through.
API_READ_TIMEOUT_S = 1.75
# A POST with an Idempotency-Key is retried like a read (the API creates at most one
# product per key), so it gets the read's timeout for the same reasons: its slowest own
# answer is also a 503 after the 1.5 s pool wait, and a POST stuck on a frozen instance
# must be sent again while the client still waits. With 10 s it was never retried in time.
# A commit slower than this is sent again too; the repeat waits on the first attempt's
# key and then answers with its product, so a slow commit costs time, not a duplicate.
API_KEYED_POST_TIMEOUT_S = API_READ_TIMEOUT_S
# Everything else is never retried once sent, so it gets the time a slow commit may need.
API_WRITE_TIMEOUT_S = 10.0
# The request header that makes a POST safe to send again (see service/README.md).
IDEMPOTENCY_HEADER = "idempotency-key"
# Checks of the instances. A frozen instance still accepts connections (the kernel answers
# for it), so until it is marked down every POST sent to it hangs and fails for its client;
# a read only costs API_READ_TIMEOUT_S. Checks are /health: three `make bench` runs at load
# average 14 to 35, one with a single instance, got no 5xx, so no false mark-down.
API_CHECK_INTER_S = 0.25
API_CHECK_TIMEOUT_S = 0.5
API_CHECK_FALL = 2
# Worst case from "frozen" to "marked down": the next check, then `fall` timed-out checks
# with the fast interval between them. Below the client's 2 s, so a writer whose POST hung
# on the frozen instance sends its next one to a live instance.
API_MARK_DOWN_BOUND_S = (
    API_CHECK_INTER_S
    + (API_CHECK_FALL - 1) * API_CHECK_INTER_S
    + API_CHECK_FALL * API_CHECK_TIMEOUT_S
)

# Health-check timings, in seconds. They bound how long a fenced primary can
# still look UP (see MARK_DOWN_BOUND_S) and how fast a promoted one takes writes.
CHECK_INTER_S = 1.0
CHECK_FASTINTER_S = 0.5
CHECK_TIMEOUT_S = 1.0
CHECK_RISE = 2
CHECK_FALL = 2
# Worst case from "the role endpoint stops answering 200" to "HAProxy marks the
# server DOWN": the next check, then fall-1 fast re-checks, each up to its timeout.
# The failover waits this long between fencing a live primary and promoting,
# so two servers are never UP in the write backend at once.
# How long a node whose name stopped resolving keeps its last address (see render).
RESOLVE_HOLD_NX_S = 30
MARK_DOWN_BOUND_S = (
    CHECK_INTER_S + (CHECK_FALL - 1) * CHECK_FASTINTER_S + CHECK_FALL * CHECK_TIMEOUT_S
)


@dataclass(frozen=True)
class HealthChecks:
    inter_s: float
    fastinter_s: float
    timeout_s: float
    rise: int
    fall: int
    # The role endpoint answers GET only; Patroni answers OPTIONS with the same status
    # and no body (what Patroni's own HAProxy template uses): HAProxy hangs up after the
    # status line, and a body still being written makes Patroni log a traceback.
    method: str = "GET"


MANUAL_CHECKS = HealthChecks(
    CHECK_INTER_S, CHECK_FASTINTER_S, CHECK_TIMEOUT_S, CHECK_RISE, CHECK_FALL
)
# failoverMode patroni: no pgha code waits for HAProxy there, so the time a new leader
# needs to turn UP (downinter x rise: 0.5-1 s) adds straight to the failover's RTO;
# hence checks twice as often. Safe because Patroni answers /primary only while it
# holds the leader lock. fall 3 (not 2) keeps a leader whose REST API is briefly slow
# under load from being marked DOWN, which would cut every write session; a demoted
# leader answers 503 at once, so it still goes DOWN within about a second.
PATRONI_CHECKS = HealthChecks(
    inter_s=0.5, fastinter_s=0.25, timeout_s=1.0, rise=2, fall=3, method="OPTIONS"
)


@dataclass(frozen=True)
class ProxyTopology:
    nodes: list[str]
    read_fallback: str
    checks: HealthChecks = MANUAL_CHECKS
    # API instances behind the HTTP frontend; 0 renders no frontend.
    api_instances: int = 0
    # pgha:hosts only: node -> (address, PostgreSQL port, role-check port) published on
    # its host; without it every node is reached by its alias on the stack network.
    endpoints: tuple[tuple[str, str, int, int], ...] = ()
    # pgha:monitoring: HAProxy's built-in Prometheus exporter on METRICS_PORT (stack network
    # only); off renders the file exactly as before, so no HAProxy is replaced for it.
    metrics: bool = False


def _api_frontend(instances: int) -> list[str]:
    """HTTP in front of the API instances: spread, checked, retried where safe.

    `retry-on` names failures where the request never reached the application
    (conn-failure) or got no response at all. The latter two are left to GET, HEAD and
    POSTs that carry an Idempotency-Key (`disable-l7-retry` for everything else): a POST
    without a key, or a PUT, whose instance died or froze after reading it may have
    committed, and HAProxy would send it again (seen in `make chaos`: an api-kill cell
    wrote one product twice). A keyed POST sent again returns the product the first
    attempt created. Only conn-failure, where the request was certainly never sent, is
    retried for every method.

    Timeouts, so that losing one of two instances costs no GET (measured by `make chaos`,
    api cells): a connect to an instance that is already gone fails after
    API_CONNECT_TIMEOUT_S and is redispatched (with the default 2 s the client gave up
    first); a GET stuck on a frozen instance is retried elsewhere after API_READ_TIMEOUT_S
    (with the old 10 s `timeout server` it was never retried in time).

    Checks hit `/health` (liveness), not `/ready`: with the database down every instance
    would fail `/ready`, and clients would get HAProxy's bare 503 instead of the API's own
    JSON 503 naming the cause.
    """
    if instances <= 0:
        return []
    return [
        "frontend api",
        f"    bind *:{API_PORT}",
        "    mode http",
        "    timeout client 30s",
        "    timeout http-request 10s",
        # On a reload the old worker keeps each idle keep-alive connection until its next
        # response (which says `Connection: close`) instead of closing it at once: a
        # request already on its way was otherwise cut (seen: 4 RemoteProtocolErrors at
        # one reload on a loaded host).
        "    option idle-close-on-response",
        "    default_backend api_instances",
        "",
        "backend api_instances",
        "    mode http",
        "    balance roundrobin",
        f"    timeout connect {_seconds(API_CONNECT_TIMEOUT_S)}",
        f"    timeout server {_seconds(API_WRITE_TIMEOUT_S)}",
        # A read stuck on a frozen instance is given up on after this and sent again.
        f"    http-request set-timeout server {_seconds(API_READ_TIMEOUT_S)}"
        " if { method GET HEAD }",
        f"    http-request set-timeout server {_seconds(API_KEYED_POST_TIMEOUT_S)}"
        f" if {{ method POST }} {{ req.hdr({IDEMPOTENCY_HEADER}) -m found }}",
        "    option httpchk GET /health",
        "    http-check expect status 200",
        "    retry-on conn-failure empty-response response-timeout",
        # Two rules because ACL conditions cannot nest: "neither a read nor a POST", then
        # "a POST without a key".
        "    http-request disable-l7-retry if ! { method GET HEAD POST }",
        "    http-request disable-l7-retry if { method POST }"
        f" ! {{ req.hdr({IDEMPOTENCY_HEADER}) -m found }}",
        "    retries 2",
        "    option redispatch 1",
        "    http-response set-header X-Served-By %[srv_name]",
        # Every instance down: still a JSON error, like the API's own.
        "    errorfile 503 /usr/local/share/pgha/api-503.http",
        # Admit a new instance fast (rolling replacement removes the old one next). A
        # stopping instance is not cut off when marked down: uvicorn finishes what it
        # has in flight, and HAProxy just stops sending it new requests.
        # init-addr last: after a reload each slot starts at the address the old worker
        # had (server-state file); with `none` alone every slot waited for the next DNS
        # answer, and the frontend answered 503 for up to a second (measured: 27 failed
        # writes, 24 failed reads over a scale out and in). A new HAProxy has no state: none.
        f"    timeout check {_seconds(API_CHECK_TIMEOUT_S)}",
        f"    server-template {API_ALIAS} 1-{instances + 1} {API_ALIAS}:{API_PORT} check"
        f" inter {_seconds(API_CHECK_INTER_S)} fastinter {_seconds(API_CHECK_INTER_S)}"
        f" downinter 500ms rise 1 fall {API_CHECK_FALL} init-addr last,none",
        "",
    ]


def _seconds(value: float) -> str:
    return f"{round(value * 1000)}ms"


def _servers(topology: ProxyTopology) -> list[tuple[str, str, int, int]]:
    """(name, address, port, check port) of every node."""
    if topology.endpoints:
        return list(topology.endpoints)
    return [(n, n, PG_PORT, ROLE_PORT) for n in topology.nodes]


def _backend(name: str, check: str, topology: ProxyTopology, balance: str) -> list[str]:
    return [
        f"backend {name}",
        f"    balance {balance}",
        f"    option httpchk {topology.checks.method} /{check}",
        "    http-check expect status 200",
        # Sessions are cut when a node goes down, so database clients fail fast and
        # reconnect to whatever is healthy. (Not for the API: see _api_frontend.)
        *(
            f"    server {n} {host}:{port} check port {check_port} on-marked-down shutdown-sessions"
            for n, host, port, check_port in _servers(topology)
        ),
        "",
    ]


def render(topology: ProxyTopology, stats_password: str) -> str:
    if any(c in stats_password for c in " \t\n#\"'\\"):
        raise ValueError("the HAProxy stats password must not contain spaces, quotes, # or \\")
    fallback = topology.read_fallback == "primary"
    checks = topology.checks
    lines = [
        "# Rendered by pgha (infra/haproxy_cfg.py) from stack config; do not edit.",
        "global",
        "    maxconn 2000",
        # One thread: on the stack's few shared cores, a second thread cost HAProxy 15 to 30 %
        # more CPU per forwarded API write (cross-thread wake-ups) for no throughput
        # (bench/README.md, bench/perf/haproxy_abba.py); one thread has far more capacity than
        # the stack's PostgreSQL and API can use.
        f"    nbthread {HAPROXY_THREADS}",
        "    log stdout format raw local0 notice",
        # A reload (images/haproxy/haproxy-reload, after a change of nodes) saves every
        # server's state here through the admin socket first, and the new worker starts
        # from it: a node DOWN in the write backend stays DOWN instead of starting UP.
        # expose-fd: the new worker takes over the listening sockets, so no connection
        # attempt meets a closed port during the reload.
        f"    stats socket {ADMIN_SOCKET} mode 600 level admin expose-fd listeners",
        f"    server-state-file {SERVER_STATE_FILE}",
        "",
        "defaults",
        "    load-server-state-from-file global",
        "    mode tcp",
        "    log global",
        "    timeout connect 2s",
        "    timeout client 30m",
        "    timeout server 30m",
        f"    timeout check {_seconds(checks.timeout_s)}",
        # Fast checks, so a node's role change reaches routing within seconds.
        f"    default-server inter {_seconds(checks.inter_s)}"
        f" fastinter {_seconds(checks.fastinter_s)} downinter {_seconds(checks.inter_s)}"
        f" rise {checks.rise} fall {checks.fall}"
        " resolvers docker init-addr last,libc,none",
        "",
        # Docker's DNS: a node that is down at start must not stop HAProxy, and a node
        # restarted with a new address is followed within a second (hold valid). A
        # stopped container's name answers NXDOMAIN; "hold nx" keeps its last address
        # meanwhile so its checks keep failing and it stays DOWN. With a short hold it
        # would go MAINT (resolution), and leaving MAINT on restart restores its old
        # state: a fenced primary would come back "UP 1/2" for writes until its next
        # failed check (seen in test_a_switchover_never_has_two_servers_up_for_writes).
        "resolvers docker",
        "    nameserver dns 127.0.0.11:53",
        "    hold valid 1s",
        f"    hold nx {RESOLVE_HOLD_NX_S}s",
        "",
        "frontend primary",
        f"    bind *:{WRITE_PORT}",
        "    default_backend primary_nodes",
        "",
        "frontend replicas",
        f"    bind *:{READ_PORT}",
    ]
    if fallback:
        lines.append("    use_backend replica_nodes if { nbsrv(replica_nodes) gt 0 }")
        lines.append("    default_backend primary_for_reads")
    else:
        lines.append("    default_backend replica_nodes")
    lines.append("")
    # `first`: should two nodes ever both pass /primary, one still gets every write.
    lines += _backend("primary_nodes", "primary", topology, "first")
    lines += _backend("replica_nodes", "replica", topology, "roundrobin")
    if fallback:
        lines += _backend("primary_for_reads", "primary", topology, "first")
    lines += _api_frontend(topology.api_instances)
    if topology.metrics:
        lines += [
            # Not published on the host: only the stack's Prometheus scrapes it.
            "frontend metrics",
            f"    bind *:{METRICS_PORT}",
            "    mode http",
            "    no log",
            "    http-request use-service prometheus-exporter if { path /metrics }",
            "",
        ]
    lines += [
        "listen stats",
        f"    bind *:{STATS_PORT}",
        "    mode http",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 5s",
        f"    stats auth {STATS_USER}:{stats_password}",
        "",
    ]
    return "\n".join(lines)
