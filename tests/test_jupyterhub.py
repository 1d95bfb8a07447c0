"""bifrost_ext behind a real JupyterHub, as its users meet it: through the proxy, with their
own tokens, in kernels of their own servers.

Each hub is set up as docs/jupyterhub.md says: the administrator's PostgreSQL and Redis URLs
stay in the hub's environment, and ``bifrost_ext.hub.jupyterhub.pre_spawn_hook`` grants each
user's workspace and gives the user's server only that workspace's URLs (a PostgreSQL role
under row-level security, a Redis ACL user). The stores need passwords (conftest's
``locked_*``): with ``trust`` roles would mean nothing. Users keep their package directories
in their home folders (their volumes).

One hub per module (starting one costs seconds): each test has users of its own, so their
workspaces never meet.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from bifrost_ext.hub.grants import Grants, role_name
from bifrost_ext.storage.redis_names import cache_key, events_channel, servers_key
from bifrost_ext.storage.store import RequirementsStore
from tests.cli import JUPYTER
from tests.hub import Hub
from tests.servers import ThrowawayPostgres, ThrowawayRedis, wait_until
from tests.wheels import build_wheel

pytestmark = pytest.mark.hub

PACKAGE, VERSION = "bfhub", "1.0"
IMPORT = f"import {PACKAGE}; print({PACKAGE}.__version__); print({PACKAGE}.__file__)"


@pytest.fixture(scope="module")
def hub_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's wheels: a tiny package no index has."""
    house = tmp_path_factory.mktemp("hub-wheels")
    build_wheel(house, PACKAGE, VERSION)
    build_wheel(house, PACKAGE, "2.0")
    return house


@pytest.fixture(scope="module")
def hub_stores(
    locked_postgres: ThrowawayPostgres, locked_redis: ThrowawayRedis
) -> Iterator[Callable[[], dict[str, str]]]:
    """Makes a hub's administrator URLs: the administrator docs/jupyterhub.md prescribes (no
    superuser) on a fresh database of the module's own in the password-protected PostgreSQL,
    whose ``public`` every role may write, and the password-protected Redis. At the end, every
    workspace granted there is revoked (by that administrator) and the databases dropped."""
    made: list[str] = []
    with contextlib.ExitStack() as databases:

        def make() -> dict[str, str]:
            made.append(databases.enter_context(locked_postgres.operator_database()))
            return {"BIFROST_DATABASE_URL": made[-1], "BIFROST_REDIS_URL": locked_redis.url}

        yield make
        for url in made:
            store = RequirementsStore(url=url)
            grants = Grants(store, locked_redis.url)
            with psycopg.connect(url) as conn:
                # No table when the hub never granted anything (it failed to start, say).
                exists = conn.execute("SELECT to_regclass('bifrost_workspace_grants')").fetchone()
                query = "SELECT workspace FROM bifrost_workspace_grants"
                granted = conn.execute(query).fetchall() if exists and exists[0] else []
            for (workspace,) in granted:
                grants.revoke(workspace)
            store.close()


def _start_hub(root: Path, admin_env: dict[str, str], wheelhouse: Path, internal_ssl: bool) -> Hub:
    """A hub as docs/jupyterhub.md sets one up: the administrator's store URLs in the hub's
    own environment, bifrost's pre_spawn_hook giving each server its workspace's own, and
    the regrant service (every second here, for the test's sake) beside it."""
    regrant = {
        "name": "bifrost-regrant",
        "command": [JUPYTER, "bifrost", "regrant", "--every", "1"],
        "environment": admin_env,
    }
    return Hub(
        root,
        hub_env=admin_env,
        spawner_env={"BIFROST_FIND_LINKS": str(wheelhouse), "BIFROST_NO_INDEX": "1"},
        pre_spawn_hook="bifrost_ext.hub.jupyterhub:pre_spawn_hook",
        internal_ssl=internal_ssl,
        services=[regrant],
    ).start()


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory,
    hub_stores: Callable[[], dict[str, str]],
    hub_wheelhouse: Path,
) -> Iterator[Hub]:
    """The module's hub, whose proxy, hub and servers talk TLS with client certificates
    (internal_ssl): every story here holds over it, and kernels reach their server over
    verified TLS. (A second hub over plain HTTP inside proved nothing more: bifrost's side of
    a hub is the same either way, and kernels on plain HTTP are every other module's story.)"""
    hub = _start_hub(tmp_path_factory.mktemp("hub"), hub_stores(), hub_wheelhouse, True)
    yield hub
    hub.stop()


def install_in_a_kernel(hub: Hub, user: str) -> str:
    """``%bifrost install`` in a kernel of the user's server; what the cell printed."""
    kernel_id = hub.start_kernel(user)
    try:
        return hub.execute(user, kernel_id, f"%bifrost install {PACKAGE}=={VERSION}")
    finally:
        hub.shutdown_kernel(user, kernel_id)


def assert_imports_from_own_volume(hub: Hub, user: str) -> None:
    """A new kernel of the user's imports the package from their own package directory."""
    out = hub.run_in_new_kernel(user, IMPORT)
    version, _, path = out.strip().partition("\n")
    assert version == VERSION, out
    assert Path(path).is_relative_to(hub.site_dir(user)), out


def assert_installs_and_keeps_across_a_restart(hub: Hub, user: str, workspace: str) -> None:
    hub.create_user(user)
    hub.start_server(user)
    out = install_in_a_kernel(hub, user)
    assert f"installed {PACKAGE} {VERSION}; saved to workspace '{workspace}'" in out, out

    hub.stop_server(user)
    hub.start_server(user)  # a fresh process, as after the idle culler
    assert_imports_from_own_volume(hub, user)


# The story: a user installs through the magic and imports after the server restarts. A user
# whose name JupyterHub must escape proves it and the name's mapping at once (the plain
# names' mapping: bob's, carol's and erin's workspaces below).
def test_a_user_named_with_a_space_and_an_accent_works_the_same(hub: Hub) -> None:
    # JupyterHub escapes the name in URLs (/user/Jos%C3%A9%20Doe/); bifrost maps it to a key.
    assert_installs_and_keeps_across_a_restart(hub, "José Doe", "_Jos-c3-a9-20Doe")


def test_under_internal_ssl_kernels_reach_their_server_over_verified_tls(hub: Hub) -> None:
    assert hub.internal_ssl
    user = "sslcarol"
    hub.create_user(user)
    hub.start_server(user)
    url = hub.run_in_new_kernel(user, "import os; print(os.environ['BIFROST_SERVER_URL'])")
    assert url.strip().startswith("https://127.0.0.1:"), url

    out = install_in_a_kernel(hub, user)
    assert f"installed {PACKAGE} {VERSION}; saved to workspace '{user}'" in out, out
    assert_imports_from_own_volume(hub, user)


#: What bob runs in his kernel: every credential it can find (its own environment, and its
#: server's through /proc), aimed at another user's workspace. Prints one line per attempt,
#: then a JSON report.
ATTACK = r"""
import json, os, subprocess, sys, urllib.error, urllib.request
from urllib.parse import urlsplit
import psycopg, redis

VICTIM, CACHE_KEY, SERVERS_KEY, CHANNEL, VICTIM_URL = {args!r}

def environ_of(pid):
    with open(f"/proc/{{pid}}/environ", "rb") as f:
        items = f.read().decode(errors="replace").split("\0")
    return dict(item.split("=", 1) for item in items if "=" in item)

report = {{"kernel_store_urls": sorted(
    k for k in ("BIFROST_DATABASE_URL", "BIFROST_REDIS_URL") if k in os.environ)}}
everything = {{**environ_of(os.getppid()), **os.environ}}
# The kernel's own PYTHONPATH is kept: `jupyter bifrost` must run with it.
db_url, redis_url = everything["BIFROST_DATABASE_URL"], everything["BIFROST_REDIS_URL"]
report["role"] = urlsplit(db_url).username
db, cache = urlsplit(db_url), urlsplit(redis_url)

def attempt(name, action):
    try:
        report[name] = {{"done": action()}}
    except Exception as exc:
        report[name] = {{"refused": f"{{type(exc).__name__}}: {{str(exc).splitlines()[0]}}"}}
    print(f"{{name}}: {{report[name]}}")

cli = subprocess.run(
    [os.path.join(os.path.dirname(sys.executable), "jupyter-bifrost"),
     "--workspace", VICTIM, "install", "bfhub==2.0"],
    env=everything, capture_output=True, text=True, timeout=300)
report["cli"] = {{"code": cli.returncode, "output": (cli.stdout + cli.stderr)[-1500:]}}
print(f"jupyter bifrost --workspace {{VICTIM}} install bfhub==2.0: exit {{cli.returncode}}")

def sql(statement, url=db_url):
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else cur.rowcount

attempt("sql select", lambda: sql(
    f"SELECT content FROM workspace_files WHERE workspace = '{{VICTIM}}'"))
attempt("sql update", lambda: sql(
    f"UPDATE workspace_files SET content = 'evil' WHERE workspace = '{{VICTIM}}'"))
attempt("sql delete", lambda: sql(
    f"DELETE FROM workspace_revisions WHERE workspace = '{{VICTIM}}'"))
attempt("sql insert", lambda: sql(
    "INSERT INTO workspace_files (workspace, path, entity_type, content, content_hash, version,"
    f" created_at, updated_at) VALUES ('{{VICTIM}}', 'x', 'requirements', 'evil', 'h', 1, now(),"
    " now())"))
attempt("sql insert revision", lambda: sql(
    "INSERT INTO workspace_revisions (workspace, path, version, content, content_hash,"
    f" created_at) VALUES ('{{VICTIM}}', 'requirements.txt', 99, 'evil', 'h', now())"))
attempt("sql set role", lambda: sql("SET ROLE postgres"))
attempt("sql as postgres without a password", lambda: sql(
    "SELECT 1", f"postgresql://postgres@{{db.hostname}}:{{db.port}}{{db.path}}"))

client = redis.Redis.from_url(redis_url, socket_timeout=10)
attempt("redis get", lambda: client.get(CACHE_KEY))
attempt("redis set", lambda: client.set(CACHE_KEY, "evil"))
attempt("redis hset", lambda: client.hset(SERVERS_KEY, "evil", "1"))
attempt("redis publish", lambda: client.publish(CHANNEL, "evil"))
attempt("redis default user", lambda: redis.Redis(
    host=cache.hostname, port=cache.port, socket_timeout=10).set(CACHE_KEY, "evil"))

def post(authorization):
    request = urllib.request.Request(
        VICTIM_URL + "api/packages/install", method="POST",
        data=json.dumps({{"packages": ["bfhub==2.0"]}}).encode(),
        headers={{"Authorization": authorization, "Content-Type": "application/json"}})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code

report["http with the server's hub token"] = post(
    "token " + everything["JUPYTERHUB_API_TOKEN"])
report["http with the kernel's secret"] = post(
    "bifrost-kernel " + everything["BIFROST_KERNEL_TOKEN"])
print(json.dumps(report))
"""


def test_bobs_kernel_with_every_credential_it_finds_cannot_change_another_workspace(
    hub: Hub,
) -> None:
    victim, attacker = "carol", "bob"
    for user in (victim, attacker):
        hub.create_user(user)
        hub.start_server(user)
    status, body = hub.user_api(victim, "POST", "packages/install", {"packages": ["bfhub==1.0"]})
    assert status == 200, body
    saved = (
        hub.user_api(victim, "GET", "packages"),
        hub.user_api(victim, "GET", "packages/history"),
    )
    rows = _rows(hub.hub_env["BIFROST_DATABASE_URL"], victim)

    args = (
        victim,
        cache_key(victim),
        servers_key(victim),
        events_channel(victim),
        hub.url + hub.user_url(victim),
    )
    out = hub.run_in_new_kernel(attacker, ATTACK.format(args=args))
    print(out)  # the transcript of the attempts, shown when a check below fails (or with -s)
    report = json.loads(out.strip().splitlines()[-1])

    assert report["kernel_store_urls"] == []  # the kernel itself got no store URLs
    assert report["role"].endswith(".bob")  # its server's are bob's workspace's, not admin's
    assert report["cli"]["code"] == 4, report["cli"]
    assert f"role {report['role']} may not write workspace {victim}" in report["cli"]["output"]
    # PostgreSQL: the other workspace's rows are invisible, and the role may only read the
    # tables (it saves through bifrost.save_requirements); no way to another role.
    assert report["sql select"] == {"done": []}
    for name in ("sql update", "sql delete"):  # no row to touch, or no right to at all
        assert report[name] == {"done": 0} or "InsufficientPrivilege" in report[name].get(
            "refused", ""
        ), (name, report[name])
    assert "InsufficientPrivilege" in report["sql insert"]["refused"]
    assert "InsufficientPrivilege" in report["sql insert revision"]["refused"]
    assert "InsufficientPrivilege" in report["sql set role"]["refused"]
    assert "password" in report["sql as postgres without a password"]["refused"]
    # Redis: the workspace's ACL user may name only its own keys and channels.
    for name in ("redis get", "redis set", "redis hset", "redis publish"):
        assert "NoPermissionError" in report[name]["refused"], (name, report[name])
    assert "Authentication" in report["redis default user"]["refused"]
    # JupyterHub: bob's server's token, and bob's kernel's secret, open nothing of carol's.
    assert report["http with the server's hub token"] == 403
    assert report["http with the kernel's secret"] == 403

    after = (
        hub.user_api(victim, "GET", "packages"),
        hub.user_api(victim, "GET", "packages/history"),
    )
    assert after == saved
    assert _rows(hub.hub_env["BIFROST_DATABASE_URL"], victim) == rows
    assert "bfhub==1.0" in saved[0][1]["requirements"]


def test_the_regrant_service_brings_back_a_redis_user_a_restart_lost(
    hub: Hub, locked_redis: ThrowawayRedis
) -> None:
    """The service entry docs/jupyterhub.md shows, run by the hub: a running server whose
    Redis user vanished (what a Redis restart without an aclfile does) works again by
    itself, with no spawn."""
    hub.create_user("erin")
    hub.start_server("erin")
    database = hub.hub_env["BIFROST_DATABASE_URL"].rsplit("/", 1)[1]
    admin = redis.Redis.from_url(locked_redis.url, socket_timeout=5)
    try:
        assert admin.acl_deluser(role_name(database, "erin")) == 1  # its connections end too
    finally:
        admin.close()
    wait_until(
        lambda: "restored the Redis user of workspace erin" in hub.log(),
        timeout=60,
        what="the hub's regrant service",
    )

    def cache_ok() -> bool:
        status, body = hub.user_api("erin", "GET", "packages/status")
        assert status == 200, body
        return bool(body["cache"]["ok"]) and body["servers_in_sync"] is True

    wait_until(cache_ok, timeout=60, what="erin's server back on Redis")


def _rows(admin_url: str, workspace: str) -> list[tuple[object, ...]]:
    """Every row of the workspace, read as the administrator."""
    with psycopg.connect(admin_url) as conn:
        files = conn.execute(
            "SELECT path, content, version FROM workspace_files WHERE workspace = %s ORDER BY 1",
            (workspace,),
        ).fetchall()
        revisions = conn.execute(
            "SELECT id, version, content FROM workspace_revisions WHERE workspace = %s ORDER BY id",
            (workspace,),
        ).fetchall()
    return [*files, *revisions]
