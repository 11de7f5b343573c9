"""`PreferredLeader`: `pgha:primary` as Patroni's *preferred* leader (failoverMode patroni).

Patroni moves the leader on its own when a node dies; this resource only acts on a
*change* of `pgha:primary`: it asks Patroni for a switchover to that node (REST
`POST /switchover`, authenticated) and waits until the node leads. A `pulumi up`
with `pgha:primary` unchanged never moves the leader, so after an automatic failover
nothing flaps back. On create it waits for the bootstrapped leader and, should
another node have won the bootstrap, switches over once.

Its `leader` output is the leader Patroni reports at up and refresh time: `diff` looks
at the live cluster, so an up after a failover records the new leader (an update that
moves nothing), and `read` does the same on `pulumi refresh` (the stack output, being
the program's, follows at the next up).

Why a dynamic resource, like ClusterRole: the calls run inside a node container
(`docker exec`, against its own REST API on 127.0.0.1): on one host Patroni's API is not
published, and across hosts the password still never leaves the node containers' env
(it is never a command line).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from infra import dockerexec
from infra.patroni_cfg import REST_PORT, REST_USER

LEADER_TIMEOUT = 300
SWITCHOVER_TIMEOUT = 120

# Runs inside a node: one request to its own REST API; prints {"status", "body"}.
# Unsafe methods authenticate with PATRONI_RESTAPI_PASSWORD from the container's env.
REST_CLIENT = f"""
import base64, json, os, sys, urllib.error, urllib.request
method, path, user = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request("http://127.0.0.1:{REST_PORT}" + path, data=body, method=method)
if method != "GET":
    cred = user + ":" + os.environ.get("PATRONI_RESTAPI_PASSWORD", "")
    req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, timeout=60) as res:
        status, text = res.status, res.read().decode()
except urllib.error.HTTPError as err:
    status, text = err.code, err.read().decode()
print(json.dumps({{"status": status, "body": text}}))
"""


@dataclass
class PreferredLeaderArgs:
    preferred: str
    # node name -> container name
    containers: Mapping[str, pulumi.Input[str]]
    synchronous: bool
    # With it, no standby left means no commit (synchronous_mode_strict).
    synchronous_strict: bool = False
    # node name -> Docker engine URL of its host (pgha:hosts); empty: the local engine.
    engines: Mapping[str, str] = field(default_factory=dict)


SYNC_KEYS = ("synchronous", "synchronous_strict")


class LeaderError(RuntimeError):
    pass


def rest(api: Any, container: str, method: str, path: str, body: Any = None) -> tuple[int, str]:
    """Status and body of one request to the REST API of the node in `container`."""
    cmd = ["python3", "-c", REST_CLIENT, method, path, REST_USER]
    if body is not None:
        cmd.append(json.dumps(body))
    code, out = dockerexec.run(api, container, cmd)
    if code != 0:
        raise LeaderError(f"{method} {path} in {container} failed: {out[-300:]}")
    answer = json.loads(out.splitlines()[-1])
    return int(answer["status"]), str(answer["body"])


def members(api: Any, containers: Mapping[str, str]) -> list[dict[str, Any]]:
    """Patroni's member list (name, role, state, lag), asked of the first node that answers."""
    for container in containers.values():
        try:
            status, body = rest(api, container, "GET", "/cluster")
        except Exception:  # noqa: BLE001 (a stopped or starting node: ask the next one)
            continue
        if status == 200:
            return list(json.loads(body).get("members", []))
    return []


def observe_leader(api: Any, containers: Mapping[str, str]) -> str:
    """The running leader's name, or "" while there is none."""
    for m in members(api, containers):
        if m.get("role") == "leader" and m.get("state") == "running":
            return str(m["name"])
    return ""


def _wait_leader(api: Any, containers: Mapping[str, str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        leader = observe_leader(api, containers)
        if leader or time.monotonic() > deadline:
            return leader
        time.sleep(1)


def switchover(api: Any, containers: Mapping[str, str], target: str) -> None:
    """Makes `target` the leader; retries while Patroni refuses (e.g. it is not streaming yet)."""
    deadline = time.monotonic() + SWITCHOVER_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        leader = _wait_leader(api, containers, 30)
        if leader == target:
            return
        if leader:
            pulumi.log.info(f"switchover from {leader} to {target}")
            status, last = rest(
                api,
                containers[target],
                "POST",
                "/switchover",
                {"leader": leader, "candidate": target},
            )
            if status == 200:
                # Patroni answers once the target leads; wait until it reports running.
                _wait_leader(api, containers, 30)
                continue
        time.sleep(2)
    raise LeaderError(f"no switchover to {target} within {SWITCHOVER_TIMEOUT}s (last: {last})")


def set_synchronous(api: Any, containers: Mapping[str, str], on: bool, strict: bool) -> None:
    """Patroni's synchronous_mode(_strict) live in etcd: changed through PATCH /config."""
    leader = _wait_leader(api, containers, LEADER_TIMEOUT)
    wanted = {"synchronous_mode": on, "synchronous_mode_strict": strict}
    status, body = rest(api, containers[leader], "PATCH", "/config", wanted)
    if status != 200:
        raise LeaderError(f"PATCH /config {wanted} answered {status}: {body}")


def _api(props: Mapping[str, Any]) -> Any:
    """The local engine's client, or one per node container when the nodes are spread
    over hosts (the `engines` input exists only then)."""
    if props.get("engines"):
        return dockerexec.engines(props["engines"], props["containers"])
    return dockerexec.client().api


def _reconcile(olds: dict[str, Any] | None, news: dict[str, Any]) -> dict[str, Any]:
    api = _api(news)
    containers: dict[str, str] = news["containers"]
    leader = _wait_leader(api, containers, LEADER_TIMEOUT)
    if not leader:
        raise LeaderError(f"the cluster elected no leader within {LEADER_TIMEOUT}s")
    # On create too: the nodes bootstrap with synchronous_mode off (infra/patroni_cfg.py).
    if olds is None or any(olds.get(k) != news.get(k) for k in SYNC_KEYS):
        set_synchronous(
            api, containers, bool(news["synchronous"]), bool(news.get("synchronous_strict"))
        )
    # Only a new preference moves the leader: after an automatic failover an up with
    # the same pgha:primary leaves the new leader where it is.
    if olds is None or olds.get("preferred") != news["preferred"]:
        switchover(api, containers, news["preferred"])
    return {**news, "leader": observe_leader(api, containers)}


class _PreferredLeaderProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="preferred-leader", outs=_reconcile(None, props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("preferred", "containers", "engines", *SYNC_KEYS)
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        if not changed:
            # No change asked for; still record a leader that moved since (a failover).
            live = observe_leader(_api(news), news["containers"])
            changed = ["leader"] if live and live != olds.get("leader") else []
        return DiffResult(changes=bool(changed), replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_reconcile(olds, news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        leader = observe_leader(_api(props), props["containers"])
        return ReadResult(id_=id_, outs={**props, "leader": leader})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class PreferredLeader(Resource, module="pgha", name="PreferredLeader"):
    preferred: pulumi.Output[str]
    leader: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        args: PreferredLeaderArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "preferred": args.preferred,
            "containers": args.containers,
            "synchronous": args.synchronous,
            "synchronous_strict": args.synchronous_strict,
            "leader": None,
        }
        # Only a spread stack has engines: a single-host stack's inputs stay as they were.
        if args.engines:
            props["engines"] = dict(args.engines)
        super().__init__(_PreferredLeaderProvider(), resource_name, props, opts)
