"""Restore in failoverMode patroni: point-in-time recovery of the suite's stack into a second
patroni stack, through Patroni's custom bootstrap method (patroni#1870: recovery settings
count only there). The same exactness check as tests/e2e/test_backup_restore.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from infra import outputs as out
from pgha_testkit import backup, patroni
from pgha_testkit.deployment import Deployment, log, throwaway

NODES = os.environ.get("PGHA_TEST_NODES", "pg-0 pg-1").split()


@pytest.fixture
def second() -> Iterator[Deployment]:
    with throwaway(NODES) as deployed:
        yield deployed


def test_pitr_into_a_new_patroni_stack_brings_back_exactly_the_rows_before_the_target(
    deployment: Deployment, second: Deployment
) -> None:
    leader = patroni.wait_whole(deployment)
    name = deployment.container_name(leader)

    def sql(query: str) -> str:
        return deployment.sql(leader, query)

    sql("create table if not exists pgha.restore_ledger (id bigserial primary key, phase text)")
    for _ in range(10):
        sql("insert into pgha.restore_ledger(phase) values ('before')")
    target = sql(
        "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    )
    for _ in range(10):
        sql("insert into pgha.restore_ledger(phase) values ('after')")
    code, text = backup.pgbackrest(deployment, "backup", "check")
    assert code == 0, text
    log(f"restoring {name}'s stack to {target}")

    backup.restore_config(second.stack, deployment, target)
    second.up(failoverMode="patroni")
    new_leader = patroni.wait_whole(second)
    phases = second.sql(
        new_leader, "select phase || ':' || count(*) from pgha.restore_ledger group by phase"
    )
    assert phases.split() == ["before:10"]
    assert second.outputs[out.RESTORED_FROM] == deployment.stack.name
    assert second.outputs[out.RESTORE_TIMELINE] >= 2
    with second.client() as http:
        second.write(http, "written after the restore")
    code, text = backup.pgbackrest(second, new_leader, "check")
    assert code == 0, text
