"""Security of patroni mode: the REST API's unsafe endpoints, etcd's exposure, hardening.

Manual mode's checks (tests/e2e/test_security.py) cover the API, Redis, HAProxy and
pg_hba; these cover what patroni mode adds: Patroni's REST API on every node and the
etcd members, plus where Patroni's passwords may (not) appear.
"""

from __future__ import annotations

import json

import pytest

from pgha_testkit import patroni
from pgha_testkit.deployment import Deployment
from pgha_testkit.stack import NAMESPACE

# Runs inside one node: POST /switchover to another node over the stack network, with the
# Authorization header given (or none); prints the HTTP status.
POST_SWITCHOVER = """
import sys, urllib.error, urllib.request
req = urllib.request.Request(
    f"http://{sys.argv[1]}:8008/switchover", data=b'{"leader": "x"}', method="POST"
)
if sys.argv[2]:
    req.add_header("Authorization", sys.argv[2])
try:
    print(urllib.request.urlopen(req, timeout=5).status)
except urllib.error.HTTPError as err:
    print(err.code)
"""


def replication_password(deployment: Deployment) -> str:
    return str(deployment.stack.get_config(f"{NAMESPACE}:replicationPassword").value)


def post_switchover(deployment: Deployment, to: str, authorization: str) -> int:
    source = next(n for n in patroni.pg_nodes(deployment) if n != to)
    code, output = deployment.container(source).exec_run(
        ["python3", "-c", POST_SWITCHOVER, to, authorization], user="postgres"
    )
    assert code == 0, output
    return int(output.decode().split()[-1])


def test_an_unauthenticated_switchover_is_refused(deployment: Deployment) -> None:
    leader = patroni.wait_whole(deployment)
    assert post_switchover(deployment, leader, "") == 401
    # A wrong password too (base64 of "patroni:wrong").
    assert post_switchover(deployment, leader, "Basic cGF0cm9uaTp3cm9uZw==") == 401
    # Positive control: with the password the request gets past authentication and is
    # refused only for its content (no such leader "x").
    status, _ = patroni.request(deployment, leader, "POST", "/switchover", {"leader": "x"})
    assert status == 412
    assert patroni.leader(deployment) == leader


def test_etcd_is_published_on_no_host_port(deployment: Deployment) -> None:
    members = patroni.etcd_members(deployment)
    assert len(members) == 3
    for member in members:
        attrs = deployment.container(member).attrs
        assert not attrs["HostConfig"]["PortBindings"], (member, attrs["HostConfig"])
        assert all(not v for v in (attrs["NetworkSettings"]["Ports"] or {}).values()), member


@pytest.mark.parametrize("role", ["etcd", "postgres"])
def test_patroni_mode_containers_keep_the_shared_hardening(
    deployment: Deployment, role: str
) -> None:
    names = patroni.etcd_members(deployment) if role == "etcd" else patroni.pg_nodes(deployment)
    for name in names:
        attrs = deployment.container(name).attrs
        host = attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True, name
        assert host["CapDrop"] == ["ALL"], name
        assert "no-new-privileges" in host["SecurityOpt"], name
        assert attrs["Config"]["User"] not in ("", "root", "0"), name


def test_patronis_passwords_are_in_no_command_line_and_not_in_its_config_file(
    deployment: Deployment,
) -> None:
    secret = replication_password(deployment).encode()
    for node in patroni.pg_nodes(deployment):
        container = deployment.container(node)
        code, cmdlines = container.exec_run(
            ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"], user="postgres"
        )
        assert code == 0 and b"patroni" in cmdlines, cmdlines[:300]
        assert secret not in cmdlines, node
        code, config = container.exec_run(["cat", "/run/patroni/patroni.yml"], user="postgres")
        assert code == 0 and json.loads(config)["name"] == node
        assert secret not in config, node
