"""The API tier has no single instance: requests spread, survive an instance's death,
and a config change replaces instances one at a time without a failed request.

Failed requests are counted from a bounded client loop against HAProxy's API port,
as a user's traffic would see them; how long anything took is never asserted.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from infra import outputs as out
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.ledger import Ledger, check
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import wait_until


def instances(deployment: Deployment) -> list[str]:
    return sorted(k for k in deployment.outputs[out.CONTAINERS] if k.startswith("api-"))


@pytest.fixture(autouse=True)
def needs_two_instances(deployment: Deployment) -> None:
    if len(instances(deployment)) < 2:
        pytest.skip("pgha:apiReplicas is 1 on this stack")


def traffic(deployment: Deployment, writers: int, seed: int, ledger: Ledger | None = None) -> Load:
    """One reader of `seed` (and of what is acknowledged), and `writers` writers, for 120 s at most.

    The 15 s request timeout leaves HAProxy time to retry a GET away from a killed
    instance, so a failure counted here is one a user would see.
    """
    spec = LoadSpec(
        writers=writers,
        readers=1,
        timeout_s=15,
        pace_s=0.02,
        max_requests_per_thread=50_000,
        deadline_s=120,
        # What any client of a keyed POST does; the test counts it (api_kill_resent_posts).
        resend_cut_posts=1,
    )
    return Load(deployment.api, f"api-tier-{time.monotonic_ns()}", spec, [seed], ledger)


def failures(load: Load, kind: str) -> list[str]:
    return [e.status for e in load.of_kind(kind) if not e.ok]


def test_requests_spread_over_every_instance(deployment: Deployment) -> None:
    with deployment.client() as http:
        served = Counter(http.get("/health").headers["x-served-by"] for _ in range(20))
    assert len(served) == len(instances(deployment)), served


def test_killing_one_instance_fails_no_request_and_writes_each_product_once(
    deployment: Deployment,
) -> None:
    with deployment.client() as http:
        pid = deployment.write(http, "api-tier read target")
    victim = deployment.container(instances(deployment)[0])
    ledger = Ledger()
    with traffic(deployment, 2, pid, ledger) as load:
        time.sleep(1.5)
        victim.kill()
        time.sleep(4)
    victim.start()
    wait_until(
        lambda: (
            deployment.docker.containers.get(victim.id).attrs["State"]["Health"]["Status"]
            == "healthy"
        ),
        60,
        f"{victim.name} healthy again",
    )
    record("api_kill_failed_gets", len(failures(load, "read")))
    record("api_kill_failed_posts", len(failures(load, "write")))
    record("api_kill_resent_posts", len(load.resent))
    assert len(load.of_kind("read")) > 50
    assert len(load.of_kind("write")) > 50
    assert failures(load, "read") == []
    # Every POST carries an Idempotency-Key, so HAProxy sends one cut off inside the
    # killed instance again, and the API creates its product at most once. A reply cut
    # while HAProxy relayed it cannot be resent by HAProxy: the client resends it with the
    # same key, as any client of the key would, and the product is still created once.
    assert failures(load, "write") == []
    result = check(
        ledger, deployment.container_name(deployment.primary), load.tag, client=deployment.docker
    )
    assert result.acked > 0, result.as_dict()
    assert (result.lost, result.duplicated) == (0, 0), result.as_dict()


def test_a_config_change_replaces_instances_one_at_a_time_without_a_failed_read(
    deployment: Deployment,
) -> None:
    before = {k: deployment.container(k).id for k in instances(deployment)}
    with deployment.client() as http:
        pid = deployment.write(http, "rolling replacement read target")
    try:
        with traffic(deployment, 0, pid) as load:
            deployment.up(cacheTtlSeconds="45")
    finally:
        deployment.up(cacheTtlSeconds="60")
    after = {k: deployment.container(k).id for k in instances(deployment)}
    record("api_rolling_failed_gets", len(failures(load, "read")))
    assert all(after[k] != before[k] for k in before), "every instance was replaced"
    assert len(load.of_kind("read")) > 50
    assert failures(load, "read") == []


def test_no_instance_is_published_on_the_host(deployment: Deployment) -> None:
    for name in instances(deployment):
        assert not deployment.container(name).attrs["HostConfig"]["PortBindings"], name
