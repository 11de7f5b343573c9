"""Renders redis.conf for the cache nodes and sentinel.conf for the Sentinels (cacheMode
sentinel): pure functions, unit-tested.

Names, not addresses: every node and Sentinel announces its network alias (`redis-N`,
`sentinel-N`), and Sentinels resolve them (`resolve-hostnames`, `announce-hostnames`), so a
container that restarts with a new IP is still the same instance to everyone, and the API
gets a name it can resolve on the stack network from `SENTINEL get-master-addr-by-name`.

Three ACL users on each node, each with only what its job needs: the API's (today's rights),
the replication user (PSYNC only) and Sentinel's (the command list Redis's Sentinel
documentation gives). Their passwords are derived from the stack's `redisPassword` secret
with HMAC per role, so no new secret key is needed and the API's password does not open
the replication or Sentinel accounts.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

REDIS_PORT = 6379
SENTINEL_PORT = 26379
# The name Sentinels monitor the primary under, and the API asks them for.
SERVICE = "pgha"
API_USER = "pgha"
REPLICATION_USER = "pgha-replica"
SENTINEL_USER = "pgha-sentinel"
# The API's (and a starting node's) user on the Sentinels: it may ask where the primary is
# and nothing else, so a compromised API cannot SENTINEL FAILOVER, SET or REMOVE.
SENTINEL_CLIENT_USER = "pgha-client"
REDIS_DIR = "/tmp/pgha-redis"
SENTINEL_DIR = "/tmp/pgha-sentinel"

# The API's rights, exactly as images/redis grants them in single mode.
API_RULES = (
    "~* &* +@all -@dangerous +info +client|tracking -function -fcall -fcall_ro "
    "-script|flush -select"
)
REPLICATION_RULES = "+psync +replconf +ping"
# From Redis's Sentinel documentation ("Redis access control list authentication").
SENTINEL_RULES = (
    "allchannels +multi +slaveof +ping +exec +subscribe +config|rewrite +role +publish "
    "+info +client|setname +client|kill +script|kill"
)

# What redis-py's Sentinel client and the nodes' entrypoint run: the primary's address and
# state (MASTERS, MASTER, GET-MASTER-ADDR-BY-NAME), a PING and CLIENT SETNAME on connect.
SENTINEL_CLIENT_RULES = (
    "-@all +sentinel|get-master-addr-by-name +sentinel|masters +sentinel|master "
    "+ping +client|setname"
)


@dataclass(frozen=True)
class SentinelTimings:
    """Sentinel's failover timings for the monitored primary (`pgha:sentinel*` keys).

    down_after_ms: how long the primary must fail to answer before a Sentinel calls it
    down. Redis's default is 30 s; a cache outage costs every read a database round trip,
    so pgha defaults to 3 s: well above a loaded 2-core host's scheduling hiccups (a
    false failover is itself a short outage) and short enough that hits resume within
    seconds.
    failover_timeout_ms: how long a failover may take before another Sentinel retries it,
    and the pause between two failovers of the same primary. Redis's 3 min default is for
    large datasets; a cache resyncs in well under a second, so 10 s.
    quorum: Sentinels that must agree the primary is down; 2 of 3 is a majority, so one
    Sentinel down changes nothing and two down means no failover at all.
    """

    down_after_ms: int = 3000
    failover_timeout_ms: int = 10000
    quorum: int = 2
    parallel_syncs: int = 1


def node_names(count: int) -> list[str]:
    return [f"redis-{i}" for i in range(count)]


def sentinel_names(count: int) -> list[str]:
    return [f"sentinel-{i}" for i in range(count)]


def derive_password(secret: str, role: str) -> str:
    """A per-role password from the stack's Redis secret (hex: safe in any config line)."""
    return hmac.new(secret.encode(), role.encode(), hashlib.sha256).hexdigest()


def sentinel_id(prefix: str, name: str) -> str:
    """A stable 40-hex-digit run id, so a restarted Sentinel is the same peer to the others
    (a new id each start would leave stale peers counted in every Sentinel's view)."""
    return hashlib.sha1(f"{prefix}/{name}".encode()).hexdigest()


def _check_password(password: str) -> None:
    # One config line per directive: whitespace or quotes would split or break it.
    if not password or any(c.isspace() or c in "\"'\\" for c in password):
        raise ValueError("redis passwords must be non-empty, without spaces or quotes")


def render_redis(
    node: str,
    primary: str,
    api_password: str,
    replication_password: str,
    sentinel_password: str,
    maxmemory: str = "256mb",
) -> str:
    """redis.conf of one cache node; every node but `primary` starts as its replica."""
    for password in (api_password, replication_password, sentinel_password):
        _check_password(password)
    lines = [
        f"# pgha cache node {node} (cacheMode sentinel); rendered by infra/sentinel_cfg.py",
        "bind 0.0.0.0",
        f"port {REDIS_PORT}",
        f"dir {REDIS_DIR}",
        "protected-mode no",
        # A cache: nothing persisted, a restarted node resyncs from the primary.
        'save ""',
        "appendonly no",
        f"maxmemory {maxmemory}",
        # Bodies (short TTL) are evicted before fences (long TTL), as in single mode.
        "maxmemory-policy volatile-ttl",
        # The replica loads a full sync straight from the socket: its dir is a small tmpfs.
        "repl-diskless-load swapdb",
        "replica-read-only yes",
        f"replica-announce-ip {node}",
        f"masteruser {REPLICATION_USER}",
        f"masterauth {replication_password}",
    ]
    if node != primary:
        lines.append(f"replicaof {primary} {REDIS_PORT}")
    lines += [
        "user default off",
        f"user {API_USER} on >{api_password} {API_RULES}",
        f"user {REPLICATION_USER} on >{replication_password} {REPLICATION_RULES}",
        f"user {SENTINEL_USER} on >{sentinel_password} {SENTINEL_RULES}",
    ]
    return "\n".join(lines) + "\n"


def render_sentinel(
    name: str,
    run_id: str,
    primary: str,
    auth_password: str,
    sentinel_password: str,
    timings: SentinelTimings,
    client_password: str,
) -> str:
    """sentinel.conf of one Sentinel.

    `auth_password` is Sentinel's ACL password on the nodes; `sentinel_password` is the
    default user's, which the other Sentinels present and which may run every command;
    `client_password` is SENTINEL_CLIENT_USER's, which may only ask for the primary.
    """
    _check_password(auth_password)
    _check_password(sentinel_password)
    _check_password(client_password)
    if len(run_id) != 40 or any(c not in "0123456789abcdef" for c in run_id):
        raise ValueError("a Sentinel run id is 40 lowercase hex digits")
    if not 1 <= timings.quorum:
        raise ValueError("the Sentinel quorum must be at least 1")
    return (
        "\n".join(
            [
                f"# pgha Sentinel {name}; rendered by infra/sentinel_cfg.py",
                f"port {SENTINEL_PORT}",
                "bind 0.0.0.0",
                "protected-mode no",
                f"dir {SENTINEL_DIR}",
                f"sentinel myid {run_id}",
                "sentinel resolve-hostnames yes",
                "sentinel announce-hostnames yes",
                f"sentinel announce-ip {name}",
                # Every Sentinel command needs this password, also between Sentinels.
                f"requirepass {sentinel_password}",
                f"sentinel sentinel-pass {sentinel_password}",
                f"user {SENTINEL_CLIENT_USER} on >{client_password} {SENTINEL_CLIENT_RULES}",
                f"sentinel monitor {SERVICE} {primary} {REDIS_PORT} {timings.quorum}",
                f"sentinel auth-user {SERVICE} {SENTINEL_USER}",
                f"sentinel auth-pass {SERVICE} {auth_password}",
                f"sentinel down-after-milliseconds {SERVICE} {timings.down_after_ms}",
                f"sentinel failover-timeout {SERVICE} {timings.failover_timeout_ms}",
                f"sentinel parallel-syncs {SERVICE} {timings.parallel_syncs}",
            ]
        )
        + "\n"
    )
