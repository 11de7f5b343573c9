"""The PostgreSQL major guard: which majors it refuses, and what it says."""

from __future__ import annotations

import pytest

from infra.major_guard import DOCKERFILE, image_major, refusal


def test_the_image_major_is_read_from_the_node_dockerfile() -> None:
    assert image_major(DOCKERFILE.read_text()) == "15"


def test_a_dockerfile_without_a_postgresql_package_is_an_error() -> None:
    with pytest.raises(ValueError, match="postgresql-NN"):
        image_major("RUN apt-get install -y python3")


def test_nodes_on_the_same_major_are_not_refused() -> None:
    assert refusal("15", {"pgha-s-pg-0": "15", "pgha-s-pg-1": "15"}) == ""


def test_a_new_stack_without_running_nodes_is_not_refused() -> None:
    assert refusal("16", {}) == ""


def test_another_major_is_refused_naming_the_nodes_and_the_way_out() -> None:
    why = refusal("16", {"pgha-s-pg-0": "15", "pgha-s-pg-1": "15"})
    assert "PostgreSQL 16" in why
    assert "pgha-s-pg-0: 15" in why and "pgha-s-pg-1: 15" in why
    assert "pg_upgrade" in why
