"""bifrost_ext behind a real JupyterHub, as its users meet it: through the proxy, with their
own tokens, in kernels of their own servers.

Each hub is set up as docs/jupyterhub.md says: the administrator's PostgreSQL and Redis URLs
stay in the hub's environment, and ``bifrost_ext.jupyterhub.pre_spawn_hook`` grants each
user's workspace and gives the user's server only that workspace's URLs (a PostgreSQL role
under row-level security, a Redis ACL user). The stores need passwords (conftest's
``locked_*``): with ``trust`` roles would mean nothing. Users keep their package directories
in their home folders (their volumes).

One hub per module (starting one costs seconds): each test has users of its own, so their
workspaces never meet.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from bifrost_ext.grants import Grants
from bifrost_ext.store import RequirementsStore
from tests.hub import Hub
from tests.servers import ThrowawayPostgres, ThrowawayRedis
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
    """Makes a hub's administrator URLs: a fresh database of the module's own in the
    password-protected PostgreSQL, and the password-protected Redis. At the end, every
    workspace granted there is revoked and the databases are dropped."""
    made: list[str] = []

    def make() -> dict[str, str]:
        name = f"bifrost_hub_{secrets.token_hex(4)}"
        with psycopg.connect(locked_postgres.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(locked_postgres.url.rsplit("/", 1)[0] + f"/{name}")
        return {"BIFROST_DATABASE_URL": made[-1], "BIFROST_REDIS_URL": locked_redis.url}

    yield make
    for url in made:
        store = RequirementsStore(url=url)
        grants = Grants(store, locked_redis.url)
        with psycopg.connect(url) as conn:
            granted = conn.execute("SELECT workspace FROM bifrost_workspace_grants").fetchall()
        for (workspace,) in granted:
            grants.revoke(workspace)
        store.close()
        with psycopg.connect(locked_postgres.url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _start_hub(root: Path, admin_env: dict[str, str], wheelhouse: Path, internal_ssl: bool) -> Hub:
    """A hub as docs/jupyterhub.md sets one up: the administrator's store URLs in the hub's
    own environment, bifrost's pre_spawn_hook giving each server its workspace's own."""
    return Hub(
        root,
        hub_env=admin_env,
        spawner_env={"BIFROST_FIND_LINKS": str(wheelhouse), "BIFROST_NO_INDEX": "1"},
        pre_spawn_hook="bifrost_ext.jupyterhub:pre_spawn_hook",
        internal_ssl=internal_ssl,
    ).start()


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory,
    hub_stores: Callable[[], dict[str, str]],
    hub_wheelhouse: Path,
) -> Iterator[Hub]:
    """The module's hub, over plain HTTP inside."""
    hub = _start_hub(tmp_path_factory.mktemp("hub"), hub_stores(), hub_wheelhouse, False)
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def ssl_hub(
    tmp_path_factory: pytest.TempPathFactory,
    hub_stores: Callable[[], dict[str, str]],
    hub_wheelhouse: Path,
) -> Iterator[Hub]:
    """A hub whose proxy, hub and servers talk TLS with client certificates (internal_ssl)."""
    hub = _start_hub(tmp_path_factory.mktemp("ssl-hub"), hub_stores(), hub_wheelhouse, True)
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


def test_alice_installs_through_the_magic_and_imports_after_her_server_restarts(hub: Hub) -> None:
    assert_installs_and_keeps_across_a_restart(hub, "alice", "alice")


def test_a_user_named_with_a_space_and_an_accent_works_the_same(hub: Hub) -> None:
    # JupyterHub escapes the name in URLs (/user/Jos%C3%A9%20Doe/); bifrost maps it to a key.
    assert_installs_and_keeps_across_a_restart(hub, "José Doe", "_Jos-c3-a9-20Doe")


def test_under_internal_ssl_kernels_reach_their_server_over_verified_tls(ssl_hub: Hub) -> None:
    user = "alice"
    ssl_hub.create_user(user)
    ssl_hub.start_server(user)
    url = ssl_hub.run_in_new_kernel(user, "import os; print(os.environ['BIFROST_SERVER_URL'])")
    assert url.strip().startswith("https://127.0.0.1:"), url

    out = install_in_a_kernel(ssl_hub, user)
    assert f"installed {PACKAGE} {VERSION}; saved to workspace '{user}'" in out, out
    assert_imports_from_own_volume(ssl_hub, user)
