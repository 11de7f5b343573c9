"""Stack output names: the one contract between the Pulumi program and its tests.

Both `infra/__main__.py` and `tests/` import these constants, so renaming an
output is a single edit that the test suite follows. The connection-string builders
live here too: the API's env and the exported DSNs must never drift apart.
"""

from urllib.parse import quote

from pulumi import Input, Output

API_URL = "api_url"
WRITE_ENDPOINT = "write_endpoint"
READ_ENDPOINT = "read_endpoint"
REDIS_ENDPOINT = "redis_endpoint"
PRIMARY = "primary"
# The leader observed at up/refresh time: differs from PRIMARY after a patroni-mode
# failover (pgha:primary is then only the preferred leader).
LEADER = "leader"
FAILOVER_MODE = "failover_mode"
REPLICAS = "replicas"
HAPROXY_STATS_URL = "haproxy_stats_url"
# pgha:monitoring: Prometheus (its overview console is under consoles/pgha.html) and
# Alertmanager, both on 127.0.0.1.
PROMETHEUS_URL = "prometheus_url"
ALERTMANAGER_URL = "alertmanager_url"
# Monitoring member (prometheus, alertmanager, pgexp-<node>, ...) -> container name.
MONITORING_CONTAINERS = "monitoring_containers"
# Secret outputs: connection strings carry passwords.
WRITE_DSN = "write_dsn"
READ_DSN = "read_dsn"
REDIS_URL = "redis_url"
# Names the tests use to reach containers, the network and volumes directly.
CONTAINERS = "containers"
NETWORK = "network"
VOLUMES = "volumes"
SYNCHRONOUS = "synchronous"
# cacheMode sentinel only: the Redis node Sentinel names as primary at up/refresh time
# (`redis-N`), and the in-network host:port of every Sentinel.
REDIS_PRIMARY = "redis_primary"
SENTINEL_ENDPOINTS = "sentinel_endpoints"
READ_FALLBACK = "read_fallback"
# pgha:backup: {container, volume, stanza, retained} of the stack's pgBackRest repository
# (its container and volume are also under CONTAINERS and VOLUMES as "backup").
BACKUP = "backup"
# pgha:restoreFrom: the source stack, the target, and where recovery ended (the timeline it
# ended on and the LSN the new timeline starts at).
RESTORED_FROM = "restored_from"
RESTORE_TARGET = "restore_target"
RESTORE_TIMELINE = "restore_timeline"
RESTORE_LSN = "restore_lsn"

# The label every Docker object of a stack carries (value: `pgha-<stack>`), so
# tests and tools can find, and prove the absence of, a stack's objects.
STACK_LABEL = "pgha.stack"


def _userinfo(value: Input[str]) -> Output[str]:
    # A password may hold `@`, `/`, `%` or `?`, which would end the userinfo part of a URL.
    return Output.from_input(value).apply(lambda v: quote(v, safe=""))


def postgres_dsn(password: Input[str], address: Input[str]) -> Output[str]:
    """The API's DSN to the `pgha` database at `address` (host:port), as a secret."""
    return Output.secret(
        Output.format("postgresql://pgha:{0}@{1}/pgha", _userinfo(password), address)
    )


def redis_url(user: Input[str], password: Input[str], address: Input[str]) -> Output[str]:
    """A Redis URL for an ACL user at `address` (host:port), database 0, as a secret."""
    return Output.secret(
        Output.format("redis://{0}:{1}@{2}/0", _userinfo(user), _userinfo(password), address)
    )


# pgha:hosts only: logical name (node, etcd member, haproxy, redis, api-N) -> host name,
# and host name -> its Docker engine URL.
PLACEMENT = "placement"
ENGINES = "engines"
# pgha:placement with several HAProxies only: every HAProxy's API URL, in placement order
# (API_URL is the first one's), and host -> its {api_url, write_endpoint, read_endpoint}.
API_URLS = "api_urls"
PROXY_ENDPOINTS = "proxy_endpoints"
