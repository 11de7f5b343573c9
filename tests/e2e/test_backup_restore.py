"""Restore is a new stack: point-in-time recovery of the suite's stack into a second stack, and
the preview-time refusals of a restore that cannot work.

The ledger rows are written in their own transactions and the target is read from the
source primary's clock between the two groups, so "every row committed at or before the
target is there and none after it" is exact, not a matter of host clock skew.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pulumi import automation as auto

from infra import outputs as out
from pgha_testkit import backup
from pgha_testkit.deployment import Deployment, log, record, throwaway
from pgha_testkit.stack import NAMESPACE

NODES = os.environ.get("PGHA_TEST_NODES", "pg-0 pg-1").split()


@pytest.fixture
def second() -> Iterator[Deployment]:
    with throwaway(NODES) as deployed:
        yield deployed


def ledger_write(deployment: Deployment, phase: str, count: int) -> None:
    for _ in range(count):
        # One transaction per row: each has its own commit time.
        deployment.sql(
            deployment.primary, f"insert into pgha.restore_ledger(phase) values ('{phase}')"
        )


def test_pitr_into_a_new_stack_brings_back_exactly_the_rows_before_the_target(
    deployment: Deployment, second: Deployment
) -> None:
    deployment.sql(
        deployment.primary,
        "create table if not exists pgha.restore_ledger "
        "(id bigserial primary key, phase text, at timestamptz default clock_timestamp())",
    )
    ledger_write(deployment, "before", 20)
    target = deployment.sql(
        deployment.primary,
        "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    ledger_write(deployment, "after", 20)
    # `check` switches WAL and waits until the segment with the last commits is archived.
    code, text = backup.pgbackrest(deployment, "backup", "check")
    assert code == 0, text

    backup.restore_config(second.stack, deployment, target)
    started = datetime.now(UTC)
    second.up()
    record("restore_up_seconds", round((datetime.now(UTC) - started).total_seconds(), 1))
    log(f"restored {deployment.stack.name} to {target} into {second.stack.name}")

    phases = second.sql(
        second.primary, "select phase || ':' || count(*) from pgha.restore_ledger group by phase"
    )
    assert phases.split() == ["before:20"]
    assert second.outputs[out.RESTORED_FROM] == deployment.stack.name
    assert second.outputs[out.RESTORE_TIMELINE] >= 2
    assert second.outputs[out.RESTORE_LSN]
    # Writable through its own API, its replicas stream, and it archives into its own repository.
    with second.client() as http:
        second.write(http, "written after the restore")
    second.wait_streaming(timeout=120)
    code, text = backup.pgbackrest(second, "backup", "check")
    assert code == 0, text
    assert backup.status(second)["backups"] >= 1
    assert second.outputs[out.BACKUP]["volume"] != deployment.outputs[out.BACKUP]["volume"]


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("no-such-stack", "latest", "no repository volume"),
        (None, "2026-12-07 14:03", "not an RFC 3339 time"),
        (None, "2999-01-01T00:00:00Z", "in the future"),
        (None, "2020-01-01T00:00:00Z", "before the oldest backup"),
    ],
)
def test_a_restore_that_cannot_work_is_refused_at_preview(
    deployment: Deployment, source: str | None, target: str, message: str
) -> None:
    stack = Deployment.throwaway(NODES).stack
    try:
        backup.restore_config(stack, deployment, target)
        if source:
            stack.set_config(f"{NAMESPACE}:restoreFrom", auto.ConfigValue(value=source))
        with pytest.raises(auto.CommandError, match=message):
            stack.preview(on_output=log)
        # Nothing was built: the stack holds no resources at all.
        assert stack.export_stack().deployment.get("resources") in (None, [])
    finally:
        stack.workspace.remove_stack(stack.name)
