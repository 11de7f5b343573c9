"""The Pulumi environment `source scripts/env.sh` gives a shell, for Python callers.

Runs outside `make` (an IDE, a bare `pytest`) must reach the same CLI, the same file
backend and the same dev-only passphrase as a shell that sourced env.sh, or they would
see no stacks at all. Values already set in the environment win, as in env.sh.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".pulumi-state"
# Only for local dev and test stacks; env.sh documents the same default.
DEV_PASSPHRASE = "pgha-dev-stack-only"  # dev-only: never protects a real stack


def _defaults() -> dict[str, str]:
    return {
        "PULUMI_BACKEND_URL": f"file://{STATE_DIR}",
        "PULUMI_CONFIG_PASSPHRASE": DEV_PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
    }


def pulumi_env() -> dict[str, str]:
    """The variables env.sh exports (not the rest of the environment).

    Fit for `LocalWorkspaceOptions(env_vars=...)`, which layers them over `os.environ`.
    No PYTHONPATH: `infra` is an installed package, so the language host finds it in .venv.
    """
    # `or`, not `get(k, default)`: env.sh uses ${VAR:-default}, so an empty value counts
    # as unset there and must here too.
    env = {key: os.environ.get(key) or value for key, value in _defaults().items()}
    env["PATH"] = os.pathsep.join(
        [str(ROOT / ".tools" / "bin"), str(ROOT / ".venv" / "bin"), os.environ.get("PATH", "")]
    )
    # The file backend refuses to work on a missing directory; env.sh creates it too.
    STATE_DIR.mkdir(exist_ok=True)
    return env


def subprocess_env() -> dict[str, str]:
    """The whole environment with `pulumi_env()` on top, for `subprocess.run(env=...)`."""
    return {**os.environ, **pulumi_env()}
