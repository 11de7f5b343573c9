"""The official pulumi-docker provider's behaviour on the deployed stack.

Drift is visible: a replica removed behind Pulumi's back shows up in `pulumi
refresh`, and the next `pulumi up` recreates it, after which it rejoins and
streams. The state holds the provider's own types; the dynamic resources are only what
pulumi_docker cannot do: the failover, and the live changes that must not replace a
container (HAProxy's reload, node membership) or must look before anything is built (the
major-version guard).
"""

from __future__ import annotations

import json
import subprocess

from pgha_testkit.deployment import Deployment
from pgha_testkit.env import subprocess_env
from pgha_testkit.poll import wait_until

# Dynamic resources allowed in the state, by resource name: the failover (infra/failover.py),
# the PostgreSQL major guard (infra/major_guard.py) and HAProxy's live config
# (infra/proxy_config.py); plus one membership per node (infra/membership.py).
ALLOWED_DYNAMIC = {"postgres-role", "postgres-major", "haproxy-config"}


def exported_resources(deployment: Deployment) -> list[dict[str, object]]:
    deployment_json = deployment.stack.export_stack().deployment
    return list(deployment_json["resources"])


def test_state_holds_the_official_docker_types_and_dynamic_ones_only_where_docker_cannot(
    deployment: Deployment,
) -> None:
    resources = exported_resources(deployment)
    types = {r["type"] for r in resources}
    for official in (
        "docker:index/container:Container",
        "docker:index/network:Network",
        "docker:index/volume:Volume",
        "docker:index/image:Image",
    ):
        assert official in types, types
    dynamic = {
        str(r["urn"]).rsplit("::", 1)[-1]
        for r in resources
        # Dynamic resources are typed `pulumi-python:dynamic/<module>:<Name>`.
        if str(r["type"]).startswith("pulumi-python:dynamic")
    }
    members = {f"postgres-{node}-member" for node in [deployment.primary, *deployment.replicas]}
    assert dynamic == ALLOWED_DYNAMIC | members


def test_a_replica_removed_by_hand_is_seen_by_refresh_and_recreated_by_up(
    deployment: Deployment,
) -> None:
    deployment.wait_streaming()
    replica = deployment.replicas[0]
    removed = deployment.container(replica)
    removed.remove(force=True)

    refreshed = deployment.stack.refresh()
    changes = refreshed.summary.resource_changes or {}
    # The container is gone from the state; nothing else drifted.
    assert changes.get("delete") == 1, changes

    result = deployment.up()
    assert (result.summary.resource_changes or {}).get("create") == 1, (
        result.summary.resource_changes
    )
    recreated = deployment.container(replica)
    assert recreated.id != removed.id
    deployment.wait_streaming()
    assert deployment.role(replica) == "replica"
    # The CLI's own view agrees: a fresh preview after the repair has nothing to do.
    preview = subprocess.run(
        ["pulumi", "preview", "--json", "--stack", deployment.stack.name],
        cwd=deployment.stack.workspace.work_dir,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    steps = json.loads(preview.stdout).get("steps", [])
    assert [s for s in steps if s.get("op") not in ("same", "read")] == []
    wait_until(lambda: deployment.role(replica) == "replica", 30, "replica role")
