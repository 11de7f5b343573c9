"""Requests answered by one API instance itself, not through HAProxy: from inside its
container, so that a test knows which instance served, and can cut that one off alone."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from pgha_testkit.deployment import Deployment

# Run inside one API container, so that every request reaches that instance and no other:
# PUT, or GET in a loop for a while, printing one JSON line per answer.
_IN_INSTANCE = """
import json, sys, time, urllib.request
method, path, seconds, body = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
start = time.monotonic()
while True:
    req = urllib.request.Request("http://127.0.0.1:8000" + path, method=method,
        data=body.encode() or None, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as res:
        doc = json.load(res)
        print(json.dumps([round(time.monotonic() - start, 2), res.status, doc["version"],
            res.headers["X-Cache"] if method == "GET" else "", res.headers.get("X-Read-Source")]))
    if time.monotonic() - start >= seconds:
        break
    time.sleep(0.05)
"""


def in_instance(
    deployment: Deployment,
    instance: str,
    method: str,
    path: str,
    seconds: float = 0,
    body: str = "",
) -> list[list[Any]]:
    """Answers of `instance` itself (not through HAProxy) to `method path`, in a loop."""
    code, output = deployment.container(instance).exec_run(
        ["python3", "-c", _IN_INSTANCE, method, path, str(seconds), body]
    )
    text = cast(bytes, output).decode(errors="replace")
    assert code == 0, text
    return [json.loads(line) for line in text.splitlines()]


@contextmanager
def cut_off(api: Any, instance: str, target: str) -> Iterator[None]:
    """Drops every packet from container `instance` to container `target`, and nothing
    else: an iptables rule in the instance's own network namespace (entered from the host,
    so the image needs no tools and no capability), as a partial partition looks from that
    instance. `api` is the engine's low-level client. The rule dies with the namespace."""
    pid = api.inspect_container(instance)["State"]["Pid"]
    networks = api.inspect_container(target)["NetworkSettings"]["Networks"]
    address = next(n["IPAddress"] for n in networks.values() if n["IPAddress"])
    rule = ["OUTPUT", "-d", address, "-j", "DROP"]
    enter = ["nsenter", "-t", str(pid), "-n", "iptables", "-w"]
    subprocess.run([*enter, "-I", *rule], check=True)
    try:
        yield
    finally:
        # Gone already if the instance was killed meanwhile.
        subprocess.run([*enter, "-D", *rule], check=False, capture_output=True)


@contextmanager
def cut_off_from(deployment: Deployment, instance: str, target: str) -> Iterator[None]:
    """`cut_off` for two roles of a deployed single-host stack."""
    names = (deployment.container_name(instance), deployment.container_name(target))
    with cut_off(deployment.docker.api, *names):
        yield
