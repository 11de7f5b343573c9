"""Security claims of the deployed stack, each checked against the real containers.

Secrets: the four passwords exist only as Pulumi secrets (encrypted config, encrypted in
every checkpoint, secret outputs, never baked into an image) and never appear on a process
command line (the Redis healthcheck passes it through REDISCLI_AUTH). PostgreSQL: SCRAM
only, pg_hba admits only the stack network, the replication roles cannot read tables, the
API's role owns nothing but its schema. Redis: no anonymous access, no admin commands for
the API's user. HAProxy stats need a password. Containers: non-root, no capabilities,
read-only root filesystems, every published port on loopback only. Input: SQL
metacharacters are stored verbatim.

Every refusal below is paired with a positive control using the right credentials, so a
test cannot pass just because a password, host or port in it was wrong.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from infra import outputs as out
from pgha_testkit.deployment import Deployment
from pgha_testkit.env import ROOT, STATE_DIR
from pgha_testkit.stack import NAMESPACE as PROJECT
from pgha_testkit.stack import SECRET_KEYS as PASSWORD_KEYS

STATE = STATE_DIR / ".pulumi"
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@pytest.fixture(scope="module")
def passwords(deployment: Deployment) -> dict[str, str]:
    """The real passwords, decrypted by the Automation API, to search for in plain text."""
    values = {k: deployment.stack.get_config(f"pgha:{k}").value for k in PASSWORD_KEYS}
    # Short values would match by accident and make "absent" meaningless.
    assert all(len(v) >= 16 for v in values.values()), "stack passwords are unexpectedly short"
    return values


def encodings(secret: str) -> Iterator[bytes]:
    """The plain value plus its base64 forms at every alignment (pickles, tarballs, data URIs)."""
    raw = secret.encode()
    yield raw
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        # Drop the characters that also depend on the neighbouring bytes.
        yield encoded[4:-4]


def leaked(blob: bytes, passwords: dict[str, str]) -> list[str]:
    return [k for k, v in passwords.items() if any(e in blob for e in encodings(v))]


def state_files(stack: str) -> list[Path]:
    """The stack's checkpoint, its .bak, and every history and backup copy of the file backend."""
    files = [p for p in (STATE / "stacks" / PROJECT).glob(f"{stack}.json*") if p.is_file()]
    for folder in (STATE / "history" / PROJECT / stack, STATE / "backups" / PROJECT / stack):
        files += [p for p in folder.rglob("*") if p.is_file()]
    return files


# --- secrets --------------------------------------------------------------------------


def test_passwords_are_secret_config(deployment: Deployment) -> None:
    config = deployment.stack.get_all_config()
    for key in PASSWORD_KEYS:
        assert config[f"pgha:{key}"].secret, f"pgha:{key} is not a secret"
    text = (ROOT / f"Pulumi.{deployment.stack.name}.yaml").read_text()
    # Encrypted values in the stack file look like `secure: v1:...`.
    assert text.count("secure: v1:") >= len(PASSWORD_KEYS), text


def test_no_password_in_plain_text_in_stack_file_or_any_checkpoint(
    deployment: Deployment, passwords: dict[str, str]
) -> None:
    stack_file = ROOT / f"Pulumi.{deployment.stack.name}.yaml"
    assert leaked(stack_file.read_bytes(), passwords) == []
    files = state_files(deployment.stack.name)
    checkpoint = STATE / "stacks" / PROJECT / f"{deployment.stack.name}.json"
    assert checkpoint in files, f"no checkpoint at {checkpoint}; found {files}"
    text = checkpoint.read_text()
    # Proves this is the live checkpoint of the deployed stack, with encrypted secrets in it.
    assert deployment.outputs[out.CONTAINERS]["api-1"] in text
    assert '"ciphertext"' in text
    found = {str(p.relative_to(ROOT)): leaked(p.read_bytes(), passwords) for p in files}
    assert {p: keys for p, keys in found.items() if keys} == {}


def test_credential_outputs_are_secret_and_no_plain_output_holds_a_password(
    deployment: Deployment, passwords: dict[str, str]
) -> None:
    raw = deployment.stack.outputs()
    for key in (out.WRITE_DSN, out.READ_DSN, out.REDIS_URL):
        assert raw[key].secret, f"output {key} is not secret"
    assert passwords["postgresPassword"] in raw[out.WRITE_DSN].value
    plain = json.dumps({k: v.value for k, v in raw.items() if not v.secret}).encode()
    assert leaked(plain, passwords) == []


def test_no_password_is_baked_into_an_image(
    deployment: Deployment, passwords: dict[str, str]
) -> None:
    for role in ("pg-0", "haproxy", "redis", "api-1"):
        image = deployment.container(role).image
        baked = json.dumps(
            {"config": image.attrs["Config"], "history": image.history()}, default=str
        ).encode()
        assert leaked(baked, passwords) == [], role


def healthcheck_argvs(container: Any) -> list[str]:
    """The command lines a container's HEALTHCHECK starts, with every expansion done.

    A shell-form check runs once under `bash -x`, which prints each command as executed:
    exactly what the host's process table shows while the probe runs. bash, not Docker's
    sh (dash): dash writes a trace line in pieces, so a pipeline's lines can interleave.
    """
    test = (container.attrs["Config"].get("Healthcheck") or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return []
    if test[0] == "CMD":
        return [" ".join(test[1:])]
    _, output = container.exec_run(["bash", "-xc", test[1]], demux=True)
    trace = (output[1] or b"").decode(errors="replace")
    argvs = []
    for line in trace.splitlines():
        if not line.startswith("+"):
            continue
        words = line[1:].split()
        # `VAR=value cmd` puts value in cmd's environment (private), not in its arguments.
        while words and ENV_ASSIGNMENT.match(words[0]):
            words.pop(0)
        argvs.append(" ".join(words))
    return argvs


def test_no_password_appears_on_any_command_line(
    deployment: Deployment, passwords: dict[str, str]
) -> None:
    # Process arguments are world-readable on the Docker host (/proc/<pid>/cmdline), unlike
    # a process's environment, so a password must never be an argument.
    found: dict[str, list[str]] = {}
    for container in stack_containers(deployment):
        running = [" ".join(p[-1:]) for p in container.top()["Processes"]]
        assert running, container.name
        for argv in running + healthcheck_argvs(container):
            keys = leaked(argv.encode(), passwords)
            if keys:
                found.setdefault(container.name, []).extend(keys)
    assert found == {}


def test_no_password_appears_in_any_process_argv_during_the_first_up(
    deployment: Deployment, passwords: dict[str, str]
) -> None:
    # initdb, psql and pg_basebackup live for a second or two during bootstrap; the sampler
    # ran through the whole first `up` (tests/e2e/conftest.py), so it saw them.
    seen = deployment.bootstrap_argvs
    assert any(b"initdb" in argv or b"patroni" in argv for argv in seen), len(seen)
    found = {key for argv in seen for key in leaked(argv, passwords)}
    assert found == set()


# --- PostgreSQL -----------------------------------------------------------------------


def pg_nodes(deployment: Deployment) -> list[str]:
    return [deployment.primary, *deployment.replicas]


def test_passwords_are_stored_as_scram_verifiers(deployment: Deployment) -> None:
    for node in pg_nodes(deployment):
        assert deployment.sql(node, "show password_encryption") == "scram-sha-256"
        rows = deployment.sql(
            node, "select rolname, rolpassword from pg_authid where rolpassword is not null"
        ).splitlines()
        verifiers = dict(r.split("|", 1) for r in rows)
        assert {"pgha", "replicator", "rewinder"} <= set(verifiers), verifiers.keys()
        assert all(v.startswith("SCRAM-SHA-256$") for v in verifiers.values()), node


def stack_subnet(deployment: Deployment) -> ipaddress.IPv4Network:
    network = deployment.docker.networks.get(deployment.outputs[out.NETWORK])
    (ipam,) = network.attrs["IPAM"]["Config"]
    return ipaddress.ip_network(ipam["Subnet"])


def stack_gateway(deployment: Deployment) -> str:
    network = deployment.docker.networks.get(deployment.outputs[out.NETWORK])
    (ipam,) = network.attrs["IPAM"]["Config"]
    return ipam["Gateway"]


def test_pg_hba_admits_only_the_stack_network_with_scram(deployment: Deployment) -> None:
    subnet = stack_subnet(deployment)
    for node in pg_nodes(deployment):
        rows = deployment.sql(
            node,
            "select json_agg(r) from (select type, database, user_name, address, netmask,"
            " auth_method, error from pg_hba_file_rules) r",
        )
        rules: list[dict[str, Any]] = json.loads(rows)
        assert all(r["error"] is None for r in rules), rules
        local = [r for r in rules if r["type"] == "local"]
        host = [r for r in rules if r["type"] != "local"]
        assert host, f"no host rule on {node}: the test would prove nothing"
        # The superuser only over the socket, by OS identity.
        assert all(r["user_name"] == ["postgres"] and r["auth_method"] == "peer" for r in local)
        # The host's own address on the bridge is rejected first, so nothing on the
        # host reaches PostgreSQL except through HAProxy.
        gateway = ipaddress.ip_network(f"{stack_gateway(deployment)}/32")
        rejects = [r for r in host if r["auth_method"] == "reject"]
        assert [ipaddress.ip_network(f"{r['address']}/{r['netmask']}") for r in rejects] == [
            gateway
        ], (node, rejects)
        assert host[0] == rejects[0], (node, host)
        for rule in host[1:]:
            network = ipaddress.ip_network(f"{rule['address']}/{rule['netmask']}")
            assert network == subnet, (node, rule)
            assert rule["auth_method"] == "scram-sha-256", (node, rule)
            assert "all" not in rule["database"] and "all" not in rule["user_name"], rule


def psql_over_tcp(
    deployment: Deployment, conninfo: str, password: str, query: str
) -> tuple[int, str]:
    """psql from a replica's container to the primary over the stack network, by password."""
    code, output = deployment.container(deployment.replicas[0]).exec_run(
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", query],
        user="postgres",
        # Only this password: no passfile, no peer identity can help.
        environment={"PGPASSWORD": password, "PGPASSFILE": "/dev/null", "PGCONNECT_TIMEOUT": "5"},
    )
    return code, output.decode(errors="replace").strip()


def test_replication_roles_cannot_read_application_tables(
    deployment: Deployment, passwords: dict[str, str]
) -> None:
    primary, pw = deployment.primary, passwords["replicationPassword"]
    # Positive controls: the password is right and both roles do what they exist for.
    code, text = psql_over_tcp(
        deployment,
        f"host={primary} user=replicator dbname=replication replication=true",
        pw,
        "IDENTIFY_SYSTEM",
    )
    assert code == 0, text
    code, text = psql_over_tcp(
        deployment, f"host={primary} user=rewinder dbname=postgres", pw, "select 1"
    )
    assert (code, text) == (0, "1")

    read = "select count(*) from pgha.products"
    attempts = {
        # (conninfo, query): what must stop it
        (f"host={primary} user=replicator dbname=pgha", read): "no pg_hba.conf entry",
        (f"host={primary} user=replicator dbname=postgres", "select 1"): "no pg_hba.conf entry",
        (
            f"host={primary} user=replicator dbname=pgha replication=database",
            read,
        ): "no pg_hba.conf entry",
        (
            f"host={primary} user=replicator dbname=replication replication=true",
            read,
        ): "cannot execute SQL commands in WAL sender for physical replication",
        (f"host={primary} user=rewinder dbname=pgha", read): "no pg_hba.conf entry",
        (
            f"host={primary} user=rewinder dbname=postgres",
            "select rolpassword from pg_authid",
        ): "permission denied",
    }
    for (conninfo, query), reason in attempts.items():
        code, text = psql_over_tcp(deployment, conninfo, pw, query)
        assert code != 0 and reason in text, (conninfo, query, text)


def test_the_api_role_is_unprivileged_and_owns_only_its_schema(deployment: Deployment) -> None:
    primary = deployment.primary
    attrs = deployment.sql(
        primary,
        "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin"
        " from pg_roles where rolname = 'pgha'",
    )
    assert attrs == "f|f|f|f|f|t"
    assert (
        deployment.sql(
            primary, "select count(*) from pg_auth_members where member = 'pgha'::regrole"
        )
        == "0"
    )
    assert (
        deployment.sql(primary, "select datdba::regrole from pg_database where datname = 'pgha'")
        == "postgres"
    )
    assert deployment.sql(primary, "select has_schema_privilege('pgha', 'public', 'CREATE')") == "f"
    # Positive control: it does own its schema and the table the API created in it.
    assert (
        deployment.sql(
            primary, "select relowner::regrole from pg_class where oid = 'pgha.products'::regclass"
        )
        == "pgha"
    )
    owned_elsewhere = """
        select kind || ' ' || name from (
            select 'relation' as kind, c.oid::regclass::text as name, c.relowner as owner,
                   c.relnamespace as ns from pg_class c
            union all select 'function', p.oid::regprocedure::text, p.proowner, p.pronamespace
                from pg_proc p
            union all select 'type', t.oid::regtype::text, t.typowner, t.typnamespace
                from pg_type t
        ) o where owner = 'pgha'::regrole and ns <> coalesce(to_regnamespace('pgha'), 0)
          -- A table's TOAST storage lives in pg_toast and always belongs to the table.
          and ns <> 'pg_toast'::regnamespace
    """
    for db in ("pgha", "postgres"):
        schemas = deployment.sql(
            primary, "select nspname from pg_namespace where nspowner = 'pgha'::regrole", db=db
        )
        assert schemas.split() == (["pgha"] if db == "pgha" else []), (db, schemas)
        assert deployment.sql(primary, owned_elsewhere, db=db) == "", db


# --- Redis ----------------------------------------------------------------------------


def redis_address(deployment: Deployment) -> tuple[str, int]:
    host, port = deployment.outputs[out.REDIS_ENDPOINT].rsplit(":", 1)
    return host, int(port)


def raw_redis(address: tuple[str, int], *commands: bytes) -> list[bytes]:
    """Sends inline commands on a fresh connection; returns the first line of each reply."""
    replies = []
    with socket.create_connection(address, timeout=5) as conn, conn.makefile("rb") as reader:
        for command in commands:
            conn.sendall(command + b"\r\n")
            replies.append(reader.readline().rstrip())
    return replies


def test_redis_refuses_anonymous_clients(deployment: Deployment, passwords: dict[str, str]) -> None:
    address = redis_address(deployment)
    ping, get = raw_redis(address, b"PING", b"GET product:1")
    assert ping.startswith(b"-NOAUTH") and get.startswith(b"-NOAUTH"), (ping, get)
    # The default user is off: even the real password does not open it.
    pw = passwords["redisPassword"].encode()
    (default,) = raw_redis(address, b"AUTH " + pw)
    assert default.startswith(b"-WRONGPASS"), default
    # Positive control: the API's user with that password gets in.
    assert raw_redis(address, b"AUTH pgha " + pw, b"PING") == [b"+OK", b"+PONG"]


def test_redis_api_user_cannot_run_admin_or_destructive_commands(
    deployment: Deployment, passwords: dict[str, str]
) -> None:
    host, port = redis_address(deployment)
    client = redis.Redis(
        host=host,
        port=port,
        username="pgha",
        password=passwords["redisPassword"],
        socket_timeout=5,
    )
    with client:
        client.set("pgha:security-canary", "1", ex=60)
        for command in (
            ("CONFIG", "GET", "*"),
            ("CONFIG", "SET", "maxmemory", "1"),
            ("FLUSHALL",),
            ("FLUSHDB",),
            ("KEYS", "*"),
            ("ACL", "LIST"),
            ("SHUTDOWN",),
            ("MONITOR",),
            ("REPLICAOF", "127.0.0.1", "1"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        # A Lua script runs with the caller's ACL, so it is no way around the rules.
        with pytest.raises(redis.exceptions.ResponseError, match="can't run this command"):
            client.eval("return redis.call('FLUSHALL')", 0)
        assert client.get("pgha:security-canary") == b"1"


# --- HAProxy, containers, ports -------------------------------------------------------


def test_haproxy_stats_page_requires_the_admin_password(
    deployment: Deployment, passwords: dict[str, str]
) -> None:
    url = deployment.outputs[out.HAPROXY_STATS_URL]
    # One connection per request: HAProxy closes the connection after a 401 without saying so,
    # and a pooled client would then fail on the reused socket.
    assert httpx.get(url, timeout=5).status_code == 401
    assert httpx.get(url, auth=("admin", "not-the-password"), timeout=5).status_code == 401
    ok = httpx.get(url, auth=("admin", passwords["haproxyStatsPassword"]), timeout=5)
    assert ok.status_code == 200
    assert "Statistics Report" in ok.text


def stack_containers(deployment: Deployment) -> list[Any]:
    prefix = deployment.outputs[out.NETWORK]
    containers = deployment.docker.containers.list(filters={"label": f"{out.STACK_LABEL}={prefix}"})
    assert len(containers) == len(deployment.outputs[out.CONTAINERS]), containers
    return containers


def test_the_api_runs_as_non_root_on_a_read_only_root_filesystem(
    deployment: Deployment,
) -> None:
    api = deployment.container("api-1")
    api.reload()
    assert api.attrs["Config"]["User"] not in ("", "0", "root")
    assert api.attrs["HostConfig"]["ReadonlyRootfs"] is True
    code, uid = api.exec_run(["id", "-u"])
    assert code == 0 and int(uid) != 0, uid
    code, output = api.exec_run(["sh", "-c", "echo x > /srv/app/injected.py"])
    assert code != 0 and b"Read-only file system" in output, output
    # Positive control: /tmp is the one writable place, and it cannot hold executables.
    assert api.exec_run(["sh", "-c", "echo x > /tmp/probe && rm /tmp/probe"])[0] == 0


def test_no_container_runs_as_root_or_with_extra_privileges(deployment: Deployment) -> None:
    for container in stack_containers(deployment):
        code, uid = container.exec_run(["id", "-u"])
        assert code == 0 and int(uid) != 0, (container.name, uid)
        host = container.attrs["HostConfig"]
        assert host["Privileged"] is False, container.name
        assert not host.get("CapAdd"), container.name
        assert "no-new-privileges" in (host.get("SecurityOpt") or []), container.name


def test_every_container_drops_all_capabilities(deployment: Deployment) -> None:
    for container in stack_containers(deployment):
        host = container.attrs["HostConfig"]
        assert [c.upper() for c in host.get("CapDrop") or []] == ["ALL"], container.name
        assert not host.get("CapAdd"), container.name
        # Behaviour, not just config: PID 1 (docker-init) holds no capability at all.
        code, status = container.exec_run(["grep", "^CapBnd:", "/proc/1/status"])
        assert code == 0, (container.name, status)
        assert int(status.split()[1], 16) == 0, (container.name, status)


def test_every_container_has_a_read_only_root_filesystem(deployment: Deployment) -> None:
    for container in stack_containers(deployment):
        assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True, container.name
        code, output = container.exec_run(["sh", "-c", "echo x > /usr/local/bin/injected"])
        assert code != 0 and b"Read-only file system" in output, (container.name, output)
        # Positive control: each keeps one writable scratch tmpfs, so the probe could succeed.
        writable = container.attrs["HostConfig"].get("Tmpfs") or {}
        assert writable, container.name
        place = sorted(writable)[0]
        assert (
            container.exec_run(["sh", "-c", f"echo x > {place}/probe && rm {place}/probe"])[0] == 0
        ), (container.name, place)


def test_every_published_port_binds_loopback_only(deployment: Deployment) -> None:
    published: list[tuple[str, int]] = []
    for container in stack_containers(deployment):
        # None for a container that publishes nothing (the PostgreSQL nodes).
        for bindings in (container.attrs["HostConfig"]["PortBindings"] or {}).values():
            published += [(b["HostIp"], int(b["HostPort"])) for b in bindings]
        for bindings in container.attrs["NetworkSettings"]["Ports"].values():
            published += [(b["HostIp"], int(b["HostPort"])) for b in bindings or []]
    ports = {port for _, port in published}
    # api, write, read, redis and stats: all five must be there, or a binding was missed.
    assert len(ports) == 5, published
    assert {ip for ip, _ in published} == {"127.0.0.1"}, published
    # Behaviour, not just config: the host's address on the stack network must not answer.
    gateway = deployment.docker.networks.get(deployment.outputs[out.NETWORK]).attrs["IPAM"][
        "Config"
    ][0]["Gateway"]
    for port in ports:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass
        with pytest.raises(OSError):
            socket.create_connection((gateway, port), timeout=3).close()


# --- input handling -------------------------------------------------------------------

HOSTILE = [
    "'; DROP TABLE products; --",
    '" OR 1=1 --',
    "\\",
    "back\\slash \\' \\\\ E'\\x41'",
    "$$; DROP TABLE products; $$",
    "$tag$ select pg_sleep(10) $tag$",
    "%s %(name)s %% {} ?",
    "1); DELETE FROM products WHERE (1=1",
    "' || (select rolpassword from pg_authid limit 1) || '",
    "/* comment */ -- line \n; COMMIT; DROP SCHEMA pgha CASCADE;",
    "Ünïcødé ☃ 𝔘𝔫𝔦 עברית 日本語 \u202eevil \u2028 😀",
]


def sql_hex(deployment: Deployment, pid: int) -> tuple[str, str]:
    """Name and description as stored on the primary, hex-encoded so psql cannot reformat."""
    row = deployment.sql(
        deployment.primary,
        "select encode(convert_to(name, 'UTF8'), 'hex') || '|' ||"
        f" encode(convert_to(description, 'UTF8'), 'hex') from pgha.products where id = {pid}",
    )
    name, description = row.split("|")
    return name, description


def test_sql_metacharacters_are_stored_verbatim_and_nothing_else_happens(
    deployment: Deployment,
) -> None:
    before = int(deployment.sql(deployment.primary, "select count(*) from pgha.products"))
    created: list[int] = []
    with deployment.client() as http:
        for i, text in enumerate(HOSTILE):
            posted = http.post(
                "/products", json={"name": text, "description": text, "price": "1.5", "stock": i}
            )
            assert posted.status_code == 201, (text, posted.text)
            pid = posted.json()["id"]
            created.append(pid)
            # PUT swaps the fields, so each value also travels through the UPDATE statement.
            other = HOSTILE[-1 - i]
            put = http.put(
                f"/products/{pid}",
                json={"name": other, "description": text, "price": 2, "stock": 1},
            )
            assert put.status_code == 200, (text, put.text)
            got = http.get(f"/products/{pid}").json()
            assert (got["name"], got["description"]) == (other, text)
            assert sql_hex(deployment, pid) == (other.encode().hex(), text.encode().hex())
        # Metacharacters where a number belongs never reach SQL either.
        for bad in ("1; DROP TABLE products", "1 OR 1=1"):
            assert (
                http.post("/products", json={"name": "n", "price": bad, "stock": 1}).status_code
                == 422
            )
            assert http.get("/products", params={"after": bad}).status_code == 422
        assert http.get("/products/1;DROP TABLE products").status_code == 422
    assert deployment.sql(deployment.primary, "select to_regclass('pgha.products')") == (
        "pgha.products"
    )
    after = int(deployment.sql(deployment.primary, "select count(*) from pgha.products"))
    assert after == before + len(created)
