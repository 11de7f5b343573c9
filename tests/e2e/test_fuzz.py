"""Property-based fuzzing of the deployed API from its own OpenAPI document (schemathesis).

Every operation the API publishes at /openapi.json gets a bounded number of generated
requests, valid ones (positive mode) and deliberately invalid ones (negative mode), sent to
the real container over loopback. With every dependency up, the contract is: no 5xx at
all, every status code and content type is one the document declares for that operation,
every body matches the declared schema, and invalid input is rejected with a 4xx.

Failures are collected, not raised inside Hypothesis, so one run reports every distinct
violation (with a curl line to reproduce it) instead of shrinking the first one for minutes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pgha_testkit.deployment import Deployment
from pgha_testkit.poll import wait_until

# Per operation and mode: enough to hit every schema branch, small enough that the whole
# module stays around a minute on a 2-core machine.
MAX_EXAMPLES = int(os.environ.get("PGHA_FUZZ_EXAMPLES", "50"))
# Hard wall-clock bound per operation and mode; examples past it are generated but not sent.
OPERATION_BUDGET_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0
# Products the fuzzer may address by id, so GET/PUT/DELETE also exercise their 200/204 paths
# instead of only 404s on random ids.
SEEDED_PRODUCTS = 8

# positive_data_acceptance (schema-valid input is never a 422) stays off: under OpenAPI 3.1
# (JSON Schema 2020-12) 1.0 *is* an integer, and schemathesis deliberately spells JSON-body
# integers as whole floats, while `stock` takes JSON integers only. Every other constraint
# of ProductIn is stated in the document (app/models.py).
POSITIVE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
NEGATIVE_CHECKS = [*POSITIVE_CHECKS, negative_data_rejection]
Check = Callable[..., Any]


@dataclass
class FuzzReport:
    sent: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, set[int]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def seed_products(api_url: str) -> list[int]:
    with httpx.Client(base_url=api_url, timeout=REQUEST_TIMEOUT_SECONDS) as http:
        ids = []
        for i in range(SEEDED_PRODUCTS):
            res = http.post("/products", json={"name": f"fuzz seed {i}", "price": "1", "stock": i})
            assert res.status_code == 201, res.text
            ids.append(res.json()["id"])
    return ids


def fuzz(api_url: str, mode: GenerationMode, known_ids: list[int]) -> FuzzReport:
    """Runs every operation of the live schema in `mode`; returns what was sent and broken."""
    schema = schemathesis.openapi.from_url(
        f"{api_url}/openapi.json", config=schemathesis.Config(), timeout=REQUEST_TIMEOUT_SECONDS
    )
    checks: list[Check] = POSITIVE_CHECKS if mode == GenerationMode.POSITIVE else NEGATIVE_CHECKS
    report = FuzzReport()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the API's OpenAPI document lists no operations"
    with requests.Session() as session:
        for operation in operations:
            if mode == GenerationMode.NEGATIVE and not has_inputs(operation):
                continue  # nothing to make invalid (GET /health): Hypothesis finds no case
            run_operation(operation, mode, checks, known_ids, session, api_url, report)
    return report


def has_inputs(operation: Any) -> bool:
    return bool(list(operation.iter_parameters()) or len(operation.body))


def run_operation(
    operation: Any,
    mode: GenerationMode,
    checks: list[Check],
    known_ids: list[int],
    session: requests.Session,
    api_url: str,
    report: FuzzReport,
) -> None:
    label = f"{operation.label} [{mode.value}]"
    report.sent[label] = 0
    report.statuses[label] = set()
    deadline = time.monotonic() + OPERATION_BUDGET_SECONDS
    takes_id = any(p.name == "product_id" for p in operation.path_parameters)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=False,
        # No shrinking: failures are collected, and shrinking a live-HTTP case costs minutes.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(generation_mode=mode),
        pick=st.one_of(st.none(), st.sampled_from(known_ids)),
    )
    def run(case: Any, pick: int | None) -> None:
        if time.monotonic() > deadline:
            return
        # Positive cases only: swapping the id of a negative case could turn it valid.
        if takes_id and mode == GenerationMode.POSITIVE and pick is not None:
            case.path_parameters["product_id"] = pick
        try:
            response = case.call(base_url=api_url, session=session, timeout=REQUEST_TIMEOUT_SECONDS)
        except requests.exceptions.InvalidHeader:
            return  # requests refuses to send it (e.g. a newline in If-Match): never reached us
        report.sent[label] += 1
        report.statuses[label].add(response.status_code)
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as group:
            for failure in group.exceptions:
                report.failures.setdefault(f"{label}: {failure.title}", str(group)[:3000])

    run()


@pytest.fixture(scope="module")
def known_ids(deployment: Deployment) -> list[int]:
    with deployment.client() as http:
        wait_until(lambda: http.get("/ready").status_code == 200, 60, "API ready")
    return seed_products(deployment.api)


def assert_clean(report: FuzzReport, deployment: Deployment) -> None:
    # The contract holds "while every dependency is up": prove they still were at the end,
    # so a 503 above is the API's fault, not an unrelated outage.
    with deployment.client() as http:
        ready = http.get("/ready")
    assert ready.status_code == 200, ready.text
    assert all(n > 0 for n in report.sent.values()), f"operations never exercised: {report.sent}"
    assert not report.failures, "\n\n".join(
        [f"{len(report.failures)} distinct contract violations:"] + list(report.failures.values())
    )


def test_valid_requests_get_documented_non_5xx_responses(
    deployment: Deployment, known_ids: list[int]
) -> None:
    report = fuzz(deployment.api, GenerationMode.POSITIVE, known_ids)
    assert_clean(report, deployment)
    statuses = set().union(*report.statuses.values())
    # Seeded ids make the success paths run too, not just 404s and 422s.
    assert {200, 201, 204} <= statuses, statuses


def test_invalid_requests_are_rejected_with_documented_4xx(
    deployment: Deployment, known_ids: list[int]
) -> None:
    report = fuzz(deployment.api, GenerationMode.NEGATIVE, known_ids)
    assert_clean(report, deployment)
    statuses = set().union(*report.statuses.values())
    assert 422 in statuses, statuses
