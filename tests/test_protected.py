"""Nothing a user installs can break the kernel: the kernel's own runtime (ipykernel and all it
needs, read from the kernel interpreter) is protected, a build is tried in the kernel
interpreter before anything is saved, and a refusal leaves the database, Redis and the
package directory as they were."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest
import redis
from packaging.markers import default_environment

from bifrost_ext.engine.protection import closure, kernel_runtime
from tests.refusals import snapshot, start
from tests.servers import ServerProcess
from tests.wheels import build_wheel

BROKEN_DATEUTIL = {"dateutil/__init__.py": "raise ImportError('a broken dateutil')\n"}
KERNEL_DATEUTIL = importlib.metadata.version("python-dateutil")
KERNEL_TRAITLETS = importlib.metadata.version("traitlets")
KERNEL_TORNADO = importlib.metadata.version("tornado")


@pytest.fixture(scope="module")
def breakers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels that would break a kernel, and one that merely needs what the kernel has."""
    house = tmp_path_factory.mktemp("breakers")
    # jupyter_client imports dateutil: a broken one by its own name, one a dependency drags
    # in, and one shipped under another project's name.
    build_wheel(house, "python-dateutil", "99.0", extra_files=BROKEN_DATEUTIL)
    build_wheel(house, "bfnewdateutil", "1.0", requires=["python-dateutil>=99"])
    build_wheel(house, "bfshadow", "1.0", extra_files=BROKEN_DATEUTIL)
    # A newer tornado, and a broken copy of the kernel's own: neither may reach a kernel.
    broken_tornado = {"tornado/__init__.py": "raise ImportError('a broken tornado')\n"}
    build_wheel(house, "tornado", "99.0", extra_files=broken_tornado)
    build_wheel(house, "tornado", KERNEL_TORNADO, extra_files=broken_tornado)
    build_wheel(house, "bfweb", "1.0", requires=["tornado>=6"])
    # A package that wants an old traitlets (ipykernel's own dependency), and an old traitlets
    # that cannot even import.
    build_wheel(house, "traitlets", "4.0", code="raise ImportError('an old, broken traitlets')\n")
    build_wheel(house, "bfbreaker", "1.0", requires=["traitlets<5"])
    return house


@pytest.fixture
def server_env(
    tmp_path: Path, sqlite_url: str, redis_url: str, wheelhouse: Path, breakers: Path
) -> dict[str, str]:
    return {
        "BIFROST_DATABASE_URL": sqlite_url,
        "BIFROST_REDIS_URL": redis_url,
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
        "BIFROST_FIND_LINKS": f"{wheelhouse} {breakers}",
        "BIFROST_NO_INDEX": "1",
    }


async def kernel_imports(server: ServerProcess, code: str) -> str:
    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    try:
        return await server.execute(kernel["id"], code)
    finally:
        server.request("DELETE", f"/api/kernels/{kernel['id']}")


KERNEL_RUNTIME = (
    "import dateutil, jupyter_client, tornado;"
    " print(dateutil.__version__, tornado.version, dateutil.__file__)"
)


async def test_a_package_the_kernel_runs_on_cannot_be_replaced(
    tmp_path: Path,
    server_env: dict[str, str],
    redis_client: redis.Redis,
    servers: list[ServerProcess],
) -> None:
    server = start(tmp_path / "server", server_env, redis_client)
    servers.append(server)
    before = snapshot(server_env, redis_client)

    # Asked for by name: refused before anything is installed.
    status, body = server.request(
        "POST", "/api/packages/install", {"packages": ["python-dateutil==99.0"]}
    )
    assert status == 422, body
    message = body["message"]
    assert "python-dateutil" in message
    assert KERNEL_DATEUTIL in message  # the version the kernel holds
    assert "jupyter-client" in message  # why: ipykernel → jupyter-client → python-dateutil
    assert message.endswith("nothing was saved")

    # Dragged in by a dependency: the user sees which package wants what.
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfnewdateutil"]})
    assert status == 422, body
    assert "bfnewdateutil" in body["message"]
    assert "python-dateutil>=99" in body["message"]
    assert KERNEL_DATEUTIL in body["message"]

    # Which package wants what, and the version the kernel holds, whose closure it is in
    # (from test_policy.py's test_an_install_cannot_replace_what_the_kernel_runs_on, which
    # proved the same on a server of its own and with less: this one also checks Redis and
    # the package directory).
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfbreaker"]})
    assert status == 422, body
    assert "nothing was saved" in body["message"]
    assert "bfbreaker 1.0 needs traitlets<5" in body["message"]
    assert "(ipykernel → traitlets)" in body["message"]
    assert "traitlets" in body["output"]  # the installer says what conflicts

    assert snapshot(server_env, redis_client) == before
    out = await kernel_imports(server, KERNEL_RUNTIME)
    assert out.split()[:2] == [KERNEL_DATEUTIL, KERNEL_TORNADO], out
    # The kernel starts on its own traitlets, and other installs still work.
    out = await kernel_imports(server, "import traitlets; print(traitlets.__version__)")
    assert out.strip() == KERNEL_TRAITLETS
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo"]})
    assert status == 200, body


async def test_a_build_that_breaks_the_kernel_is_never_switched_to(
    tmp_path: Path,
    server_env: dict[str, str],
    redis_client: redis.Redis,
    servers: list[ServerProcess],
) -> None:
    server = start(tmp_path / "server", server_env, redis_client)
    servers.append(server)
    before = snapshot(server_env, redis_client)

    # bfshadow's name is harmless; its dateutil/ folder would shadow the kernel's.
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfshadow"]})
    assert status == 422, body
    assert "ipykernel" in body["message"]
    assert "nothing was saved" in body["message"]
    assert "a broken dateutil" in body["output"]  # the import error itself
    assert snapshot(server_env, redis_client) == before
    assert (await kernel_imports(server, KERNEL_RUNTIME)).startswith(KERNEL_DATEUTIL)

    # Nothing was saved that a restart could pick up: kernels still start afterwards.
    server.stop()
    server = start(tmp_path / "again", server_env, redis_client)
    servers.append(server)
    assert snapshot(server_env, redis_client) == before
    assert (await kernel_imports(server, KERNEL_RUNTIME)).startswith(KERNEL_DATEUTIL)


async def test_a_package_that_needs_what_the_kernel_has_installs(
    tmp_path: Path,
    server_env: dict[str, str],
    servers: list[ServerProcess],
) -> None:
    server = ServerProcess(tmp_path / "server", server_env).start()
    servers.append(server)
    # bfweb needs tornado>=6: the kernel's own tornado satisfies it, so neither the newest
    # tornado on the index nor a copy of the kernel's version is put before the kernel's.
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfweb"]})
    assert status == 200, body
    assert body["installed"] == [{"name": "bfweb", "version": "1.0"}]
    current = next(Path(server_env["BIFROST_SITE_DIR"]).glob("default/*/current"))
    assert sorted(p.name for p in current.iterdir() if p.name.endswith(".dist-info")) == [
        "bfweb-1.0.dist-info"
    ]
    out = await kernel_imports(server, "import bfweb, tornado; print(tornado.version)")
    assert out.strip() == KERNEL_TORNADO


async def test_the_runtime_is_read_from_the_kernel_interpreter() -> None:
    runtime = await kernel_runtime(sys.executable, ("filelock",), timeout=60)
    # Whatever ipykernel needs as installed here: ipykernel 7 runs on nest-asyncio2.
    for name in ("ipykernel", "jupyter-client", "python-dateutil", "tornado", "nest-asyncio2"):
        assert runtime.versions[name] == importlib.metadata.version(name), name
    assert "nest-asyncio" not in runtime.versions
    assert runtime.reasons["python-dateutil"] == "ipykernel → jupyter-client → python-dateutil"
    assert runtime.reasons["filelock"] == "protected by the operator: protected_packages"
    assert runtime.environment["python_version"] == "{}.{}".format(*sys.version_info[:2])
    assert await kernel_runtime(sys.executable, ("filelock",), timeout=60) is runtime  # kept


def test_markers_and_extras_are_evaluated_with_the_kernels_values() -> None:
    dists = {
        "kernel": {
            "requires": [
                'old-loop; python_version < "3.12"',
                'new-loop; python_version >= "3.12"',
                "tools[fast]",
                'docs-only; extra == "docs"',
            ]
        },
        "old-loop": {"requires": []},
        "new-loop": {"requires": []},
        "tools": {"requires": ['speedups; extra == "fast"', 'slowdowns; extra == "slow"']},
        "speedups": {"requires": []},
        "slowdowns": {"requires": []},
        "docs-only": {"requires": []},
    }
    environment = dict(default_environment())
    for version, loop in (("3.11", "old-loop"), ("3.12", "new-loop")):
        chains = closure(dists, {**environment, "python_version": version}, ["kernel"])
        assert set(chains) == {"kernel", loop, "tools", "speedups"}, version
        assert chains["speedups"] == ("kernel", "tools", "speedups")
