"""The documented product schema and the validators agree on every body."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from pydantic import ValidationError

from app.models import ProductIn
from tests.product_bodies import INVALID_BODIES, ODD_VALID_BODIES, VALID, with_


def test_documented_schema_matches_validation() -> None:
    """The OpenAPI schema of ProductIn states the validators' constraints, so fuzzers generating
    from it (schemathesis) produce accepted bodies and rejected ones exactly where we say."""
    schema = jsonschema_rs.Draft202012Validator(ProductIn.model_json_schema())
    for label, body in INVALID_BODIES.items():
        assert not schema.is_valid(body), label
    for label, body in {"valid": VALID, **ODD_VALID_BODIES}.items():
        assert schema.is_valid(body), label
        ProductIn.model_validate_json(json.dumps(body))
    with pytest.raises(ValidationError):
        ProductIn.model_validate_json(json.dumps(with_(name="\u3000\x85 \t")))
    # The one gap JSON Schema cannot close: 1.0 is an integer there, not to the strict `stock`.
    assert schema.is_valid(with_(stock=1.0))
    with pytest.raises(ValidationError):
        ProductIn.model_validate_json(json.dumps(with_(stock=1.0)))
