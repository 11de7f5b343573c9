"""The configuration reference (docs/configuration.md) names every key infra/config.py reads.

Why: `infra/config.py` is the one place that reads stack config; a key added there and
not to the reference would be a setting no user can find. The keys are parsed from the
source (every `cfg.<getter>("key")` call, plus the secrets read through `SECRET_KEYS`),
not imported from a list someone must remember to update.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from infra import config

ROOT = Path(__file__).resolve().parents[2]
CONFIG_PY = ROOT / "infra" / "config.py"
REFERENCE = ROOT / "docs" / "configuration.md"
SECTION = "## Stack config (namespace `pgha`)"


def keys_read() -> set[str]:
    """Each key `load()` reads through its `pulumi.Config` object, `cfg`."""
    keys: set[str] = set()
    variable_reads = 0
    for node in ast.walk(ast.parse(CONFIG_PY.read_text())):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "cfg"
        ):
            continue
        arg = node.args[0] if node.args else None
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            keys.add(arg.value)
        else:
            variable_reads += 1
    # The one read through a variable: `cfg.require_secret(key)` over SECRET_KEYS. Any
    # other would hide its key from this test, so it must be taught here first.
    assert variable_reads == 1, f"{variable_reads} cfg reads whose key is not a literal"
    return keys | set(config.SECRET_KEYS.values())


def keys_documented() -> set[str]:
    """The keys named in the first column of the reference's stack config table."""
    text = REFERENCE.read_text()
    assert SECTION in text, f"{REFERENCE.name} lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {key for row in rows for key in re.findall(r"`(\w+)`", row.split("|")[1])}


def test_the_parser_finds_the_known_keys() -> None:
    # Guards the parser itself: if it found nothing, the next test would pass vacuously.
    assert {"nodes", "primary", "failoverMode", "cacheMode", "hosts", "apiReplicas"} <= (
        keys_read()
    )
    assert len(keys_read()) >= 25


def test_every_key_read_is_documented() -> None:
    missing = keys_read() - keys_documented()
    assert not missing, f"add to {REFERENCE.relative_to(ROOT)}: {sorted(missing)}"


def test_every_documented_key_is_read() -> None:
    stale = keys_documented() - keys_read()
    assert not stale, f"documented but never read by infra/config.py: {sorted(stale)}"
