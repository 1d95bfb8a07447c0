"""Packages cannot silently shadow the system: a build whose console scripts would come before
a command on kernels' ``PATH`` (or one on the operator's list) is refused with 422 naming the
script and what it would shadow, unless the operator allows that script; nothing is saved and
the running kernels keep finding the system's commands."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import redis

from bifrost_ext.engine.shadowing import CommandGuard
from bifrost_ext.settings import RESERVED_COMMANDS, Settings
from bifrost_ext.storage.store import RequirementsStore
from tests.refusals import snapshot, start
from tests.servers import ServerProcess, server_env, wait_until
from tests.wheels import build_wheel

HARMLESS = "bfharmless"
#: Console scripts named like commands every kernel relies on, and one named like none.
SHADOWING = ("ls", "git", "pip", "jupyter")
SYSTEM_LS = shutil.which("ls")
LOCATE_LS = "import shutil; print(shutil.which('ls'))"
SCRIPT_CODE = "def main() -> None:\n    print('not the system')\n"


@pytest.fixture(scope="module")
def shadowers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bfsystem`` ships the four scripts and a harmless one; ``bfls`` only ``ls`` and it."""
    house = tmp_path_factory.mktemp("shadowers")
    scripts = {name: "bfsystem:main" for name in (*SHADOWING, HARMLESS)}
    build_wheel(house, "bfsystem", "1.0", code=SCRIPT_CODE, scripts=scripts)
    build_wheel(
        house,
        "bfls",
        "1.0",
        code=SCRIPT_CODE,
        scripts={"ls": "bfls:main", "bfharmless2": "bfls:main"},
    )
    return house


@pytest.fixture
def env(
    tmp_path: Path, sqlite_url: str, redis_url: str, wheelhouse: Path, shadowers: Path
) -> dict[str, str]:
    settings = server_env(sqlite_url, redis_url, tmp_path / "site", wheelhouse)
    settings["BIFROST_FIND_LINKS"] = f"{wheelhouse} {shadowers}"
    return settings


async def in_kernel(server: ServerProcess, kernel_id: str, code: str) -> str:
    return (await server.execute(kernel_id, code)).strip()


async def test_scripts_named_like_system_commands_are_refused(
    tmp_path: Path,
    env: dict[str, str],
    redis_client: redis.Redis,
    servers: list[ServerProcess],
) -> None:
    assert SYSTEM_LS is not None
    server = start(tmp_path / "server", env, redis_client)
    servers.append(server)
    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    assert await in_kernel(server, kernel["id"], LOCATE_LS) == SYSTEM_LS
    before = snapshot(env, redis_client)

    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfsystem"]})

    assert status == 422, body
    message = body["message"]
    assert "bfsystem 1.0" in message
    for name in SHADOWING:
        assert f"`{name}`" in message, message
    assert SYSTEM_LS in message  # the command it would shadow, where it is
    assert HARMLESS not in message
    assert "allowed_scripts" in message  # what the operator can do about it
    assert message.endswith("nothing was saved")
    assert snapshot(env, redis_client) == before
    # The running kernel (and a new one) still find the system's ls.
    assert await in_kernel(server, kernel["id"], LOCATE_LS) == SYSTEM_LS
    assert await in_kernel(server, kernel["id"], "!command -v ls") == SYSTEM_LS  # what !ls runs
    status, other = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, other
    assert await in_kernel(server, other["id"], LOCATE_LS) == SYSTEM_LS


async def test_a_script_the_operator_allows_installs(
    tmp_path: Path,
    env: dict[str, str],
    redis_client: redis.Redis,
    servers: list[ServerProcess],
) -> None:
    server = start(tmp_path / "server", {**env, "BIFROST_ALLOWED_SCRIPTS": "ls"}, redis_client)
    servers.append(server)

    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfls"]})

    assert status == 200, body
    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    assert await in_kernel(server, kernel["id"], "!bfharmless2") == "not the system"
    # Allowed means allowed: the operator chose to let this ls come first.
    located = await in_kernel(server, kernel["id"], LOCATE_LS)
    assert located.endswith("/current/bin/ls"), located
    # The other names stay refused: allowing ls allows nothing else.
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfsystem"]})
    assert status == 422, body
    assert "`git`" in body["message"]
    assert "`ls`" not in body["message"]


async def test_a_saved_set_with_such_a_script_starts_kernels_with_the_reason(
    tmp_path: Path,
    env: dict[str, str],
    redis_client: redis.Redis,
    servers: list[ServerProcess],
) -> None:
    # Saved before this check existed: the build from nothing at start and at kernel start.
    store = RequirementsStore(url=env["BIFROST_DATABASE_URL"])
    try:
        store.save("default", "bfsystem\n", 0, "bfsystem==1.0\n")
    finally:
        store.close()
    server = ServerProcess(tmp_path / "server", env).start()
    servers.append(server)
    wait_until(lambda: "bfsystem 1.0" in server.log(), what="the start-up build to be refused")

    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    first = await in_kernel(server, kernel["id"], LOCATE_LS)

    assert first.startswith("⚠ bifrost: this kernel started without the workspace's saved")
    assert "`ls`" in first, first
    assert "`git`" in first, first
    assert first.endswith(SYSTEM_LS or "")
    assert not list(Path(env["BIFROST_SITE_DIR"]).glob("default/*/envs/*/bin/ls"))


def test_commands_are_those_on_path_without_bifrosts_own_folders(tmp_path: Path) -> None:
    site = tmp_path / "site"
    own_bin = site / "default" / "cpython-test" / "current" / "bin"
    system = tmp_path / "usr-bin"
    for folder, name in ((own_bin, "bfx"), (system, "tool"), (system, "notes")):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("#!/bin/sh\n")
    (own_bin / "bfx").chmod(0o755)
    (system / "tool").chmod(0o755)  # notes stays a plain file: not a command
    guard = CommandGuard(reserved=("@coreutils", "kube*"), allowed=("cat", "tool"), own=(site,))
    path = os.pathsep.join([str(own_bin), str(system), "relative", ""])

    assert guard.shadowed("bfx", path) is None  # on PATH only as bifrost's own
    assert guard.shadowed("notes", path) is None
    assert guard.shadowed("kubectl", path) == "reserved: kube*"
    assert guard.shadowed("ls", path) == "reserved: @coreutils"
    assert guard.shadowed("cat", path) is None  # the operator allows these two
    assert guard.shadowed("tool", path) is None
    assert CommandGuard(own=(site,)).shadowed("tool", path) == str(system / "tool")
    assert CommandGuard().shadowed("python3.12", path) == "reserved: python*"  # the default


def test_the_operator_lists_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {"BIFROST_ALLOWED_SCRIPTS": "ls, black*", "BIFROST_RESERVED_COMMANDS": "@builtins kube*"}
    )
    assert settings.allowed_scripts == ("ls", "black*")
    assert settings.reserved_commands == ("@builtins", "kube*")
    assert Settings.from_env({}).reserved_commands == RESERVED_COMMANDS
