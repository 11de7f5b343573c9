"""The toolchain end to end: a throwaway stack with one container, deployed and destroyed.

It runs before the full stack's tests and needs only the base image, so a
broken Pulumi CLI, language host, docker provider plugin or Docker engine shows
up here with a small, readable failure.
"""

from __future__ import annotations

import json
import secrets
import subprocess

import docker
import pulumi
import pulumi_docker as pdocker
from pulumi import automation as auto

from infra.outputs import STACK_LABEL
from pgha_testkit.env import pulumi_env, subprocess_env
from pgha_testkit.nodes import leftovers


def test_pulumi_cli_and_language_host_are_on_path() -> None:
    env = subprocess_env()
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


def test_the_official_docker_provider_plugin_is_installed() -> None:
    listed = subprocess.run(
        ["pulumi", "plugin", "ls", "--json"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    plugins = {(p["kind"], p["name"], p["version"]) for p in json.loads(listed)}
    assert ("resource", "docker", "5.1.0") in plugins, plugins


def test_one_container_stack_deploys_and_destroys_cleanly() -> None:
    name = f"smoke-{secrets.token_hex(3)}"
    prefix = f"pgha-{name}"

    def program() -> None:
        box = pdocker.Container(
            "probe",
            pdocker.ContainerArgs(
                name=f"{prefix}-probe",
                image="debian:bookworm-slim",
                command=["sleep", "600"],
                labels=[pdocker.ContainerLabelArgs(label=STACK_LABEL, value=prefix)],
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
        assert container.labels[STACK_LABEL] == prefix
    finally:
        stack.destroy()
        stack.workspace.remove_stack(name)
    assert leftovers(prefix, client=client) == {"containers": [], "networks": [], "volumes": []}
