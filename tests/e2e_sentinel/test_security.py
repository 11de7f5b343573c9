"""Security of cacheMode sentinel: nothing of the cache is published, and nothing answers
without a password (Sentinel commands included)."""

from __future__ import annotations

from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment


def test_no_cache_node_or_sentinel_is_published_on_the_host(deployment: Deployment) -> None:
    for name in sentinel.NODES + sentinel.SENTINELS:
        container = deployment.container(name)
        bindings = container.attrs["HostConfig"]["PortBindings"] or {}
        published = container.attrs["NetworkSettings"]["Ports"] or {}
        assert bindings == {}, (name, bindings)
        assert all(not hosts for hosts in published.values()), (name, published)


def test_sentinel_commands_need_the_password(deployment: Deployment) -> None:
    for s in sentinel.SENTINELS:
        _, out = sentinel.cli(deployment, s, "SENTINEL", "masters", auth=False)
        assert out.startswith("NOAUTH"), out
        # Positive control: with the password the same command answers.
        assert "pgha" in sentinel.ask(deployment, s, "SENTINEL", "masters")


def test_cache_nodes_refuse_anonymous_clients(deployment: Deployment) -> None:
    for node in sentinel.NODES:
        _, out = sentinel.cli(deployment, node, "GET", "x", auth=False)
        assert out.startswith("NOAUTH"), out
        assert sentinel.ask(deployment, node, "PING") == "PONG"


def test_the_api_user_cannot_reconfigure_replication(deployment: Deployment) -> None:
    primary = sentinel.wait_whole(deployment)
    _, out = sentinel.cli(deployment, primary, "REPLICAOF", "NO", "ONE")
    assert "NOPERM" in out, out
