"""haproxy.cfg rendering: every node in every backend, admitted by its role check."""

import pytest

from app.config import Settings
from infra.haproxy_cfg import (
    ADMIN_SOCKET,
    API_CHECK_FALL,
    API_CHECK_INTER_S,
    API_CHECK_TIMEOUT_S,
    API_CONNECT_TIMEOUT_S,
    API_KEYED_POST_TIMEOUT_S,
    API_MARK_DOWN_BOUND_S,
    API_PORT,
    API_READ_TIMEOUT_S,
    API_WRITE_TIMEOUT_S,
    CHECK_FALL,
    CHECK_FASTINTER_S,
    CHECK_INTER_S,
    CHECK_TIMEOUT_S,
    MARK_DOWN_BOUND_S,
    SERVER_STATE_FILE,
    ProxyTopology,
    render,
)
from pgha_testkit.load import LoadSpec


def section(cfg: str, header: str) -> str:
    lines = cfg.splitlines()
    start = lines.index(header)
    end = next((i for i in range(start + 1, len(lines)) if lines[i] == ""), len(lines))
    return "\n".join(lines[start:end])


NODES = ["pg-0", "pg-1", "pg-2"]


def test_writes_may_reach_any_node_but_only_through_the_primary_check() -> None:
    cfg = render(ProxyTopology(NODES, "none"), "s3cret-pw")
    assert "default_backend primary_nodes" in section(cfg, "frontend primary")
    primary = section(cfg, "backend primary_nodes")
    for node in NODES:
        assert f"server {node} {node}:5432 check port 8008" in primary
    assert "option httpchk GET /primary" in primary
    assert "http-check expect status 200" in primary
    # Should two nodes ever pass /primary, one of them still takes every write.
    assert "balance first" in primary


def test_the_config_does_not_depend_on_which_node_is_primary() -> None:
    # A failover must not need a new config: nothing here names the primary.
    assert render(ProxyTopology(NODES, "none"), "pw-123456") == render(
        ProxyTopology(list(NODES), "none"), "pw-123456"
    )


def test_strict_reads_balance_nodes_that_pass_the_replica_check() -> None:
    cfg = render(ProxyTopology(NODES, "none"), "pw-123456")
    replicas = section(cfg, "backend replica_nodes")
    assert all(f"server {n} " in replicas for n in NODES)
    assert "GET /replica" in replicas and "balance roundrobin" in replicas
    assert "default_backend replica_nodes" in section(cfg, "frontend replicas")
    assert "primary_for_reads" not in cfg


def test_read_fallback_uses_the_primary_only_when_no_replica_is_up() -> None:
    cfg = render(ProxyTopology(["pg-0", "pg-1"], "primary"), "pw-123456")
    frontend = section(cfg, "frontend replicas")
    assert "use_backend replica_nodes if { nbsrv(replica_nodes) gt 0 }" in frontend
    assert "default_backend primary_for_reads" in frontend
    fallback = section(cfg, "backend primary_for_reads")
    assert "GET /primary" in fallback and "server pg-1 pg-1:5432" in fallback


def test_nodes_down_at_start_do_not_stop_haproxy_and_sessions_are_cut() -> None:
    cfg = render(ProxyTopology(["pg-0", "pg-1"], "none"), "pw-123456")
    assert "init-addr last,libc,none" in cfg
    for backend in ("backend primary_nodes", "backend replica_nodes"):
        servers = [line for line in section(cfg, backend).splitlines() if "server " in line]
        assert servers and all("on-marked-down shutdown-sessions" in line for line in servers)


def test_check_timings_in_the_config_are_the_ones_the_failover_waits_for() -> None:
    cfg = render(ProxyTopology(["pg-0", "pg-1"], "none"), "pw-123456")
    assert f"inter {round(CHECK_INTER_S * 1000)}ms" in cfg
    assert f"fastinter {round(CHECK_FASTINTER_S * 1000)}ms" in cfg
    assert f"fall {CHECK_FALL}" in cfg
    assert f"timeout check {round(CHECK_TIMEOUT_S * 1000)}ms" in cfg
    # The bound covers the wait for the next check plus every failing check.
    assert MARK_DOWN_BOUND_S >= CHECK_INTER_S + CHECK_FALL * CHECK_TIMEOUT_S


def test_haproxy_runs_one_thread() -> None:
    cfg = render(ProxyTopology(NODES, "none", api_instances=2), "s3cret-pw")
    assert "    nbthread 1" in section(cfg, "global").splitlines()


def test_stats_page_requires_auth() -> None:
    cfg = render(ProxyTopology(["pg-0", "pg-1"], "none"), "pw-123456")
    assert "stats auth admin:pw-123456" in section(cfg, "listen stats")


@pytest.mark.parametrize("bad", ["has space", "quote'", "hash#", "back\\slash"])
def test_passwords_that_would_break_the_config_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        render(ProxyTopology(["pg-0", "pg-1"], "none"), bad)


def test_a_stopped_node_keeps_its_address_long_enough_to_stay_down() -> None:
    # A fenced primary is stopped for seconds; it must not pass through MAINT (resolution).
    text = render(ProxyTopology(nodes=["pg-0", "pg-1"], read_fallback="none"), "pw")
    hold = next(line.split()[-1] for line in text.splitlines() if "hold nx" in line)
    assert int(hold.rstrip("s")) >= 10


def api_section(instances: int) -> list[str]:
    text = render(ProxyTopology(["pg-0", "pg-1"], "none", api_instances=instances), "pw")
    lines = text.splitlines()
    if "backend api_instances" not in lines:
        return []
    start = lines.index("backend api_instances")
    return lines[start : lines.index("", start)]


def test_no_api_frontend_without_api_instances() -> None:
    text = render(ProxyTopology(["pg-0", "pg-1"], "none"), "pw")
    assert "frontend api" not in text
    assert api_section(0) == []


def test_api_instances_are_found_by_alias_with_a_spare_slot_for_rolling_replacement() -> None:
    (template,) = [line for line in api_section(2) if "server-template" in line]
    assert f" api 1-3 api:{API_PORT} check" in template


def test_only_failures_before_the_application_answered_are_retried() -> None:
    (retry,) = [line.split()[1:] for line in api_section(2) if "retry-on" in line]
    # Never a status code: a 503 from the API is an answer, and retrying a POST that
    # reached the database could apply it twice.
    assert set(retry) <= {"conn-failure", "empty-response", "response-timeout"}
    assert "option redispatch 1" in [line.strip() for line in api_section(2)]
    # ...and beyond conn-failure only for reads and keyed POSTs: any other write that
    # reached an instance may have committed, so it is never sent again.
    lines = [line.strip() for line in api_section(2)]
    assert "http-request disable-l7-retry if ! { method GET HEAD POST }" in lines
    assert (
        "http-request disable-l7-retry if { method POST } ! { req.hdr(idempotency-key) -m found }"
        in lines
    )
    assert sum("disable-l7-retry" in line for line in lines) == 2


def disabled_for(method: str, headers: set[str]) -> bool:
    """Evaluate the rendered disable-l7-retry rules (method and header-presence ACLs)."""
    rules = [line for line in api_lines() if line.startswith("http-request disable-l7-retry")]
    for rule in rules:
        cond = rule.split(" if ", 1)[1]
        terms: list[bool] = []
        negate = False
        for token in [t.strip() for t in cond.replace("}", "}|").split("|") if t.strip()]:
            if token.startswith("!"):
                negate, token = True, token[1:].strip()
            body = token.strip("{} ").split()
            if body[0] == "method":
                value = method in body[1:]
            else:
                assert body[0].startswith("req.hdr(") and body[1:] == ["-m", "found"], token
                value = body[0][len("req.hdr(") : -1] in headers
            terms.append(value != negate)
            negate = False
        if all(terms):
            return True
    return False


@pytest.mark.parametrize(
    ("method", "headers", "retried"),
    [
        ("GET", set(), True),
        ("HEAD", set(), True),
        ("POST", {"idempotency-key"}, True),
        ("POST", set(), False),
        ("PUT", set(), False),
        ("PUT", {"idempotency-key"}, False),
        ("DELETE", {"idempotency-key"}, False),
        ("PATCH", set(), False),
    ],
)
def test_only_reads_and_keyed_posts_are_sent_again_after_reaching_an_instance(
    method: str, headers: set[str], retried: bool
) -> None:
    assert disabled_for(method, headers) is not retried


def test_a_keyed_post_stuck_on_a_frozen_instance_is_sent_again_before_the_client_gives_up() -> None:
    timeout = f"{round(API_KEYED_POST_TIMEOUT_S * 1000)}ms"
    assert (
        f"http-request set-timeout server {timeout}"
        " if { method POST } { req.hdr(idempotency-key) -m found }"
    ) in api_lines()
    # The API's own slowest answer to a POST (its 503 after the pool wait) still gets
    # through, and the retry fits in the chaos client's timeout.
    assert API_KEYED_POST_TIMEOUT_S > Settings.model_fields["pool_timeout_seconds"].default
    assert API_KEYED_POST_TIMEOUT_S < LoadSpec().timeout_s
    # A POST without a key keeps the long timeout.
    assert API_KEYED_POST_TIMEOUT_S < API_WRITE_TIMEOUT_S


def test_api_instances_are_checked_for_liveness_and_named_in_each_response() -> None:
    section = [line.strip() for line in api_section(1)]
    assert "option httpchk GET /health" in section
    assert "http-response set-header X-Served-By %[srv_name]" in section
    # A stopping instance finishes its in-flight requests; cutting them would fail GETs.
    assert not any("shutdown-sessions" in line for line in section)


def api_lines(instances: int = 2) -> list[str]:
    return [line.strip() for line in api_section(instances)]


def test_a_read_stuck_on_a_frozen_instance_is_sent_again_before_the_client_gives_up() -> None:
    lines = api_lines()
    read_timeout = f"{round(API_READ_TIMEOUT_S * 1000)}ms"
    assert f"http-request set-timeout server {read_timeout} if {{ method GET HEAD }}" in lines
    assert f"timeout server {round(API_WRITE_TIMEOUT_S * 1000)}ms" in lines
    # The API's own slowest answer (a degraded read's pool wait, then its JSON 503) must
    # still get through rather than be cut off and retried...
    pool_wait = Settings.model_fields["pool_timeout_seconds"].default
    assert API_READ_TIMEOUT_S > pool_wait
    # ...yet the retry on another instance must fit in the chaos client's timeout.
    assert API_READ_TIMEOUT_S < LoadSpec().timeout_s
    # Writes are never retried once sent, so they keep the long timeout.
    assert API_WRITE_TIMEOUT_S > API_READ_TIMEOUT_S


def test_a_connect_to_a_vanished_instance_is_redispatched_before_its_syn_is_resent() -> None:
    # The first SYN retransmission comes after 1 s: a connect still pending by then went
    # nowhere, and conn-failure is retried for every method.
    assert f"timeout connect {round(API_CONNECT_TIMEOUT_S * 1000)}ms" in api_lines()
    assert API_CONNECT_TIMEOUT_S < 1.0
    (retry,) = [line for line in api_lines() if line.startswith("retry-on")]
    assert "conn-failure" in retry.split()


def test_a_frozen_instance_is_marked_down_before_a_client_would_retry_on_it() -> None:
    lines = api_lines()
    assert f"timeout check {round(API_CHECK_TIMEOUT_S * 1000)}ms" in lines
    (template,) = [line for line in lines if line.startswith("server-template")]
    assert f"inter {round(API_CHECK_INTER_S * 1000)}ms" in template
    assert f"fall {API_CHECK_FALL}" in template
    assert API_MARK_DOWN_BOUND_S >= API_CHECK_FALL * API_CHECK_TIMEOUT_S + API_CHECK_INTER_S
    assert API_MARK_DOWN_BOUND_S < LoadSpec().timeout_s


def test_across_hosts_every_node_is_checked_and_reached_at_its_host_address() -> None:
    topology = ProxyTopology(
        nodes=["pg-0", "pg-1"],
        read_fallback="none",
        endpoints=(("pg-0", "10.0.0.1", 15432, 18008), ("pg-1", "10.0.0.2", 15433, 18009)),
    )
    backend = section(render(topology, "pw"), "backend primary_nodes")
    assert "server pg-0 10.0.0.1:15432 check port 18008" in backend
    assert "server pg-1 10.0.0.2:15433 check port 18009" in backend
    assert "pg-1:5432" not in backend


def test_a_reload_carries_the_server_states_over_through_the_admin_socket() -> None:
    cfg = render(ProxyTopology(NODES, "none"), "s3cret-pw")
    glob = section(cfg, "global").splitlines()
    assert f"    stats socket {ADMIN_SOCKET} mode 600 level admin expose-fd listeners" in glob
    assert f"    server-state-file {SERVER_STATE_FILE}" in glob
    assert "    load-server-state-from-file global" in section(cfg, "defaults").splitlines()


def test_only_the_server_lists_differ_between_two_and_three_nodes() -> None:
    two = render(ProxyTopology(NODES[:2], "none"), "s3cret-pw").splitlines()
    three = render(ProxyTopology(NODES, "none"), "s3cret-pw").splitlines()
    added = [line for line in three if line not in two]
    assert added and all(line.startswith("    server pg-2 pg-2:5432 ") for line in added)
