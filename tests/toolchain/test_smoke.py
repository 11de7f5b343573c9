"""The toolchain end to end: a throwaway stack with one container, deployed and destroyed.

It runs before the full stack's tests and needs only the base image, so a
broken Pulumi CLI, language host, dynamic provider or Docker engine shows up
here with a small, readable failure.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import docker
import pulumi
from pulumi import automation as auto

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import leftovers, pulumi_env  # noqa: E402

import dockerres  # noqa: E402


def test_pulumi_cli_and_language_host_are_on_path() -> None:
    env = pulumi_env()
    version = subprocess.run(
        ["pulumi", "version"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version.startswith("v3.")
    for tool in (
        "pulumi-language-python",
        "pulumi-language-python-exec",
        "pulumi-resource-pulumi-python",
    ):
        found = subprocess.run(["which", tool], env=env, capture_output=True, text=True)
        assert found.returncode == 0, f"{tool} is not on PATH"


def test_one_container_stack_deploys_and_destroys_cleanly() -> None:
    name = f"smoke-{secrets.token_hex(3)}"
    prefix = f"pgha-{name}"
    labels = {dockerres.LABEL: prefix}

    def program() -> None:
        box = dockerres.Container(
            "probe",
            dockerres.ContainerArgs(
                name=f"{prefix}-probe",
                image="debian:bookworm-slim",
                command=["sleep", "600"],
                labels=labels,
            ),
        )
        pulumi.export("id", box.id)

    stack = auto.create_or_select_stack(
        stack_name=name,
        project_name="pgha-smoke",
        program=program,
        opts=auto.LocalWorkspaceOptions(env_vars=pulumi_env()),
    )
    client = docker.from_env()
    try:
        result = stack.up()
        container = client.containers.get(result.outputs["id"].value)
        assert container.status == "running"
        assert container.labels[dockerres.LABEL] == prefix
    finally:
        stack.destroy()
        stack.workspace.remove_stack(name)
    assert leftovers(client, prefix) == {"containers": [], "networks": [], "volumes": []}
