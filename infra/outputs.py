"""Stack output names: the one contract between the Pulumi program and its tests.

Both `infra/__main__.py` and `tests/` import these constants, so renaming an
output is a single edit that the test suite follows.
"""

API_URL = "api_url"
WRITE_ENDPOINT = "write_endpoint"
READ_ENDPOINT = "read_endpoint"
REDIS_ENDPOINT = "redis_endpoint"
PRIMARY = "primary"
REPLICAS = "replicas"
HAPROXY_STATS_URL = "haproxy_stats_url"
# Secret outputs: connection strings carry passwords.
WRITE_DSN = "write_dsn"
READ_DSN = "read_dsn"
REDIS_URL = "redis_url"
# Names the tests use to reach containers, the network and volumes directly.
CONTAINERS = "containers"
NETWORK = "network"
VOLUMES = "volumes"
SYNCHRONOUS = "synchronous"
READ_FALLBACK = "read_fallback"

# The label every Docker object of a stack carries (value: `pgha-<stack>`), so
# tests and tools can find, and prove the absence of, a stack's objects.
STACK_LABEL = "pgha.stack"
