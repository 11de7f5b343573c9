"""Real PostgreSQL (primary + streaming replica), Redis and API processes for the tests."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

SERVICE_DIR = Path(__file__).resolve().parents[2] / "service"
PG_TOOLS = ("initdb", "pg_ctl", "postgres", "pg_basebackup")

APP_USER, APP_PASSWORD, APP_DB = "pgha", "pgha-test-pw", "pgha"
REPL_USER, REPL_PASSWORD = "replicator", "repl-test-pw"
REDIS_PASSWORD = "redis-test-pw"
FALLBACK_PG_USER = "pgha-pg"


def find_pg_bin() -> Path | None:
    """Directory holding all PostgreSQL server tools, or None."""
    candidates: list[Path] = []
    if initdb := shutil.which("initdb"):
        candidates.append(Path(os.path.realpath(initdb)).parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if all((directory / tool).is_file() for tool in PG_TOOLS):
            return directory
    return None


def find_redis() -> str | None:
    return shutil.which("redis-server")


def missing_servers() -> str | None:
    """Why the server-backed tests cannot run here, or None when they can."""
    if find_pg_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup) not found"
    if find_redis() is None:
        return "redis-server not found (apt-get install redis-server)"
    if os.geteuid() == 0 and not (_user_exists("postgres") or shutil.which("useradd")):
        return "running as root with no 'postgres' user and no useradd to create one"
    return None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def pg_run_as() -> str | None:
    """The non-root user PostgreSQL runs as (it refuses root); None when not root."""
    if os.geteuid() != 0:
        return None
    if _user_exists("postgres"):
        return "postgres"
    if not _user_exists(FALLBACK_PG_USER):
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                FALLBACK_PG_USER,
            ],
            check=True,
        )
    return FALLBACK_PG_USER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if result := predicate():
                return result
        except Exception as exc:  # noqa: BLE001 - polling tolerates transient failures
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


class PgNode:
    def __init__(self, name: str, base: Path, bin_dir: Path, run_as: str | None) -> None:
        self.name = name
        self.datadir = base / name
        self.sockdir = base / "sock"
        self.logfile = base / f"{name}.log"
        self.bin_dir = bin_dir
        self.run_as = run_as
        self.port = free_port()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def configure(self, extra: Mapping[str, str]) -> None:
        with open(self.datadir / "postgresql.conf", "a") as conf:
            for key, value in extra.items():
                conf.write(f"{key} = {value}\n")

    def start(self) -> None:
        self.run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=str(self.sockdir),
            port=self.port,
            user="postgres",
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def sql(self, query: str, params: tuple[Any, ...] = (), dbname: str = "postgres") -> list[Any]:
        with self.connect(dbname) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def dsn(self, dbname: str = APP_DB) -> str:
        return f"postgresql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{self.port}/{dbname}"


class PgCluster:
    """A primary and one hot-standby streaming replica, run as a non-root user."""

    def __init__(self, base: Path) -> None:
        bin_dir = find_pg_bin()
        assert bin_dir is not None
        run_as = pg_run_as()
        self.base = base
        (base / "sock").mkdir()
        if run_as:
            pw = pwd.getpwnam(run_as)
            for path in (base, base / "sock"):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        self.primary = PgNode("primary", base, bin_dir, run_as)
        self.replica = PgNode("replica", base, bin_dir, run_as)

    def create(self) -> None:
        p = self.primary
        p.run(
            "initdb",
            "-D",
            str(p.datadir),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        common = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{p.sockdir}'",
            "wal_level": "replica",
            "max_wal_senders": "5",
            "wal_keep_size": "'256MB'",
            "hot_standby": "on",
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "'32MB'",
            "max_connections": "60",
            "wal_retrieve_retry_interval": "'100ms'",
            "wal_receiver_status_interval": "'1s'",
        }
        p.configure({**common, "port": str(p.port)})
        p.start()
        p.sql(f"CREATE ROLE {REPL_USER} WITH REPLICATION LOGIN PASSWORD '{REPL_PASSWORD}'")
        p.sql(f"CREATE ROLE {APP_USER} WITH LOGIN PASSWORD '{APP_PASSWORD}'")
        p.sql(f"CREATE DATABASE {APP_DB} OWNER {APP_USER}")

        r = self.replica
        r.run(
            "pg_basebackup",
            "-D",
            str(r.datadir),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
            "-d",
            f"host=127.0.0.1 port={p.port} user={REPL_USER} password={REPL_PASSWORD}",
        )
        r.configure({"port": str(r.port)})
        r.start()
        self.wait_streaming()

    def wait_streaming(self, timeout: float = 30) -> None:
        wait_until(
            lambda: (
                self.primary.sql(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                )[0][0]
                >= 1
            ),
            timeout,
            what="replica streaming",
        )

    def wait_caught_up(self, timeout: float = 30) -> None:
        target = self.primary.sql("SELECT pg_current_wal_lsn()")[0][0]
        wait_until(
            lambda: self.replica.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))[0][
                0
            ],
            timeout,
            what="replica replay to catch up",
        )

    def pause_replay(self) -> None:
        self.replica.sql("SELECT pg_wal_replay_pause()")
        wait_until(
            lambda: self.replica.sql("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused",
            10,
            what="replay paused",
        )

    def resume_replay(self) -> None:
        self.replica.sql("SELECT pg_wal_replay_resume()")

    def destroy(self) -> None:
        for node in (self.replica, self.primary):
            if node.is_running():
                with contextlib.suppress(Exception):
                    node.stop("immediate")


class RedisNode:
    def __init__(self, base: Path) -> None:
        self.dir = base / "redis"
        self.dir.mkdir()
        self.logfile = base / "redis.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://default:{REDIS_PASSWORD}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=REDIS_PASSWORD, socket_timeout=5
        )

    def start(self) -> None:
        exe = find_redis()
        assert exe is not None
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--requirepass",
                REDIS_PASSWORD,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.logfile),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with self.client() as client:
            wait_until(client.ping, 10, what="redis to answer PING")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class ApiProcess:
    """The service under uvicorn, exactly as the image runs it (uvloop + httptools)."""

    def __init__(
        self,
        name: str,
        base: Path,
        env: Mapping[str, str],
        *,
        app_dir: Path = SERVICE_DIR,
        target: str = "app.main:create_app",
        factory: bool = True,
    ) -> None:
        self.name = name
        self.env = dict(env)
        # Overridable so the load check can run an older tree or a bare Starlette app
        # under exactly the same uvicorn flags.
        self.app_dir = app_dir
        self.target = target
        self.factory = factory
        self.port = free_port()
        self.logfile = base / f"api-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGHA_")}
        env.update(self.env)
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            self.target,
            *(["--factory"] if self.factory else []),
            "--app-dir",
            str(self.app_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"api {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"api {self.name} not healthy in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @contextlib.contextmanager
    def running(self) -> Iterator[ApiProcess]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
