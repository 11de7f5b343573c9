"""Role endpoint of a pgha PostgreSQL node, on port 8008.

HAProxy's health checks ask it which role the node really has, the way
Patroni's REST API does: GET /primary answers 200 only on the writable primary
that is also *meant* to be primary, GET /replica only on a standby, GET /role
returns JSON for humans. The role comes from pg_is_in_recovery() on the local
socket; the intent from the desired-role file the failover writes (pgha-lib.sh
`desired`). HAProxy lists every node in its write backend, so a node that was
promoted or restarted writable by hand must not pass /primary, and a primary
being fenced must fail it from the moment it is told to follow another node.
"""

import json
import os
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PGHA_ROLE_PORT", "8008"))
NODE = os.environ.get("PGHA_NODE", "")
PG_PORT = os.environ.get("PGHA_PORT", "5432")
DESIRED_FILE = os.path.join(
    os.environ.get("PGHA_DATA_ROOT", "/var/lib/postgresql/data"), "pgha.desired"
)
BOOTSTRAP = os.environ.get("PGHA_BOOTSTRAP_PRIMARY", "")


def desired() -> str:
    """The first word of the desired-role file, with the same default as pgha-lib.sh."""
    try:
        with open(DESIRED_FILE) as f:
            words = f.read().split()
    except OSError:
        words = []
    if words:
        return words[0]
    return "primary" if NODE and NODE == BOOTSTRAP else "replica"


def role() -> str:
    try:
        out = subprocess.run(
            [
                "psql",
                "-h",
                "/var/run/postgresql",
                "-p",
                PG_PORT,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-XAtqc",
                "select pg_is_in_recovery()",
            ],
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return "down"
    return "replica" if out == "t" else "primary"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        current = role()
        wanted = self.path.strip("/")
        if wanted == "primary":
            ok = current == "primary" and desired() == "primary"
        elif wanted == "replica":
            ok = current == "replica"
        elif wanted in ("health", "readable"):
            ok = current != "down"
        else:
            ok = True
        body = json.dumps({"node": NODE, "role": current}).encode()
        try:
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # HAProxy hangs up once it has read the status line.

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # HAProxy checks every second; logging each would drown the real logs.


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
