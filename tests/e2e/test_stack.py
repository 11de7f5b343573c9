"""The deployed stack: API up, writes reach the primary and every replica, idempotent up."""

from __future__ import annotations

import psycopg

from infra import outputs as out
from pgha_testkit.deployment import Deployment
from pgha_testkit.poll import wait_until


def test_api_answers_health_and_ready(deployment: Deployment) -> None:
    with deployment.client() as http:
        assert http.get("/health").status_code == 200
        ready = http.get("/ready")
    assert ready.status_code == 200, ready.text


def test_every_replica_streams_from_the_primary(deployment: Deployment) -> None:
    for node in deployment.replicas:
        assert deployment.sql(node, "select pg_is_in_recovery()", db="postgres") == "t"
    assert deployment.sql(deployment.primary, "select pg_is_in_recovery()", db="postgres") == "f"
    deployment.wait_streaming(timeout=30)


def test_a_product_written_through_the_api_reaches_primary_and_replicas(
    deployment: Deployment,
) -> None:
    with deployment.client() as http:
        created = http.post("/products", json={"name": "e2e widget", "price": "9.99", "stock": 3})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    query = f"select name from pgha.products where id = {pid}"
    assert deployment.sql(deployment.primary, query) == "e2e widget"
    for node in deployment.replicas:
        wait_until(lambda n=node: deployment.sql(n, query) == "e2e widget", 10, f"row on {node}")


def test_writes_through_haproxy_land_on_the_primary(deployment: Deployment) -> None:
    primary_ip = deployment.container(deployment.primary).attrs["NetworkSettings"]["Networks"][
        deployment.outputs[out.NETWORK]
    ]["IPAddress"]
    with psycopg.connect(deployment.outputs[out.WRITE_DSN], connect_timeout=5) as conn:
        in_recovery, server = conn.execute(
            "select pg_is_in_recovery(), host(inet_server_addr())"
        ).fetchone()
    assert in_recovery is False
    assert server == primary_ip


def test_reads_through_haproxy_land_on_a_replica(deployment: Deployment) -> None:
    with psycopg.connect(deployment.outputs[out.READ_DSN], connect_timeout=5) as conn:
        (in_recovery,) = conn.execute("select pg_is_in_recovery()").fetchone()
    assert in_recovery is True


def test_connection_strings_are_secret_outputs(deployment: Deployment) -> None:
    raw = deployment.stack.outputs()
    for key in (out.WRITE_DSN, out.READ_DSN, out.REDIS_URL):
        assert raw[key].secret, key
    assert not raw[out.API_URL].secret


def test_a_second_up_changes_nothing(deployment: Deployment) -> None:
    result = deployment.up()
    changes = {k: v for k, v in (result.summary.resource_changes or {}).items() if k != "same"}
    assert changes == {}
