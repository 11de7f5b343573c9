"""haproxy.cfg rendering: writes only to the configured primary, reads by role."""

import pytest

from infra.haproxy_cfg import ProxyTopology, render


def section(cfg: str, header: str) -> str:
    lines = cfg.splitlines()
    start = lines.index(header)
    end = next((i for i in range(start + 1, len(lines)) if lines[i] == ""), len(lines))
    return "\n".join(lines[start:end])


def test_writes_go_only_to_the_configured_primary_with_a_role_check() -> None:
    cfg = render(ProxyTopology("pg-1", ["pg-0", "pg-2"], "none"), "s3cret-pw")
    primary = section(cfg, "listen primary")
    assert "server pg-1 pg-1:5432 check port 8008" in primary
    assert "pg-0" not in primary and "pg-2" not in primary
    assert "option httpchk GET /primary" in primary


def test_strict_reads_balance_replicas_only() -> None:
    cfg = render(ProxyTopology("pg-0", ["pg-1", "pg-2"], "none"), "pw-123456")
    replicas = section(cfg, "backend replica_nodes")
    assert "server pg-1 " in replicas and "server pg-2 " in replicas
    assert "pg-0" not in replicas
    assert "GET /replica" in replicas
    assert "primary_for_reads" not in cfg


def test_read_fallback_uses_the_primary_only_when_no_replica_is_up() -> None:
    cfg = render(ProxyTopology("pg-0", ["pg-1"], "primary"), "pw-123456")
    assert "use_backend replica_nodes if { nbsrv(replica_nodes) gt 0 }" in cfg
    assert "server pg-0 pg-0:5432" in section(cfg, "backend primary_for_reads")


def test_nodes_down_at_start_do_not_stop_haproxy_and_sessions_are_cut() -> None:
    cfg = render(ProxyTopology("pg-0", ["pg-1"], "none"), "pw-123456")
    assert "init-addr last,libc,none" in cfg
    assert "on-marked-down shutdown-sessions" in cfg


def test_stats_page_requires_auth() -> None:
    cfg = render(ProxyTopology("pg-0", ["pg-1"], "none"), "pw-123456")
    assert "stats auth admin:pw-123456" in section(cfg, "listen stats")


@pytest.mark.parametrize("bad", ["has space", "quote'", "hash#", "back\\slash"])
def test_passwords_that_would_break_the_config_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        render(ProxyTopology("pg-0", ["pg-1"], "none"), bad)
