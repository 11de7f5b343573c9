"""The fast path answers a cache hit with exactly the headers the route would send."""

from __future__ import annotations

from app.api.fastpath import hit_headers
from app.catalog import ReadResult


def test_fast_path_hit_headers_match_the_routes_read_result() -> None:
    body = b'{"id":7}'
    route = ReadResult(body, 12, "HIT", "cache").headers
    fast = {k.decode(): v.decode() for k, v in hit_headers(12, body)}
    assert {k: fast[k.lower()] for k in route} == route
    assert fast["content-length"] == str(len(body))
    assert fast["content-type"] == "application/json"
