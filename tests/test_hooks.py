"""Plugins, loaded the way an operator loads them: the repository's hooks/ files in a hooks
folder (server and CLI), a packaged plugin through its entry point, and the hook calls."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext import hookimpl
from bifrost_ext.engine.installer import InstallError
from bifrost_ext.records import Origin, RequirementsRecord
from tests.cli import CLI, cli_env
from tests.servers import ServerProcess
from tests.wheels import make_service, stopped

REPO_HOOKS = Path(__file__).resolve().parent.parent / "hooks"


@pytest.fixture
def operator_hooks(tmp_path: Path) -> dict[str, str]:
    """hooks/allow_deny.py and hooks/audit.py copied into a hooks folder, with a policy."""
    folder = tmp_path / "hooks"
    folder.mkdir()
    for name in ("allow_deny.py", "audit.py"):
        shutil.copy(REPO_HOOKS / name, folder / name)
    policy = tmp_path / "policy.toml"
    policy.write_text('deny = ["bfapp", "bfdemo<2"]\n')
    return {
        "BIFROST_HOOKS_DIR": str(folder),
        "BIFROST_POLICY_FILE": str(policy),
        "BIFROST_AUDIT_LOG": str(tmp_path / "audit.log"),
    }


def audit_lines(hooks: dict[str, str]) -> list[dict[str, Any]]:
    path = Path(hooks["BIFROST_AUDIT_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_policy_and_audit_plugins_in_a_real_server(
    operator_hooks: dict[str, str],
    pg_url: str,
    wheelhouse: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
) -> None:
    env = {
        "BIFROST_DATABASE_URL": pg_url,
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
        **operator_hooks,
    }
    server = ServerProcess(tmp_path / "server", env).start()
    servers.append(server)

    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfapp"]})
    assert (status, body["reason"]) == (400, "denied by the package policy (bfapp)")
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==1.0"]})
    assert (status, body["reason"]) == (400, "denied by the package policy (bfdemo<2)")
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdemo==2.0"]})
    assert status == 200, body
    status, body = server.request("POST", "/api/packages/install", {"packages": ["nothere"]})
    assert status == 422, body

    changed, failed = audit_lines(operator_hooks)
    assert changed["event"] == "requirements_changed"
    assert (changed["added"], changed["removed"], changed["new_version"]) == (
        ["bfdemo==2.0"],
        [],
        1,
    )
    assert changed["source"] == "api"
    assert changed["user"]
    assert (failed["event"], failed["requirements"]) == (
        "install_failed",
        ["bfdemo==2.0", "nothere"],
    )

    # The policy file is re-read when it changes: now only an allow list.
    Path(operator_hooks["BIFROST_POLICY_FILE"]).write_text('allow = ["bfdemo", "bfdep>=1"]\n')
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfapp"]})
    assert (status, body["reason"]) == (400, "not on the list of allowed packages")
    status, body = server.request("POST", "/api/packages/install", {"packages": ["bfdep"]})
    assert status == 200, body


def test_the_cli_loads_the_same_hooks(
    operator_hooks: dict[str, str], pg_url: str, wheelhouse: Path, tmp_path: Path
) -> None:
    env = cli_env(pg_url, "", tmp_path / "site", wheelhouse, tmp_path)
    cli = CLI({**env, **operator_hooks}, tmp_path)
    assert "denied by the package policy (bfapp)" in cli("install", "bfapp", code=2)
    cli("install", "bfdep")
    assert [line["source"] for line in audit_lines(operator_hooks)] == ["cli"]


def test_a_packaged_plugin_is_found_through_its_entry_point(
    pg_url: str, wheelhouse: Path, tmp_path: Path
) -> None:
    site = tmp_path / "plugin-site"
    (site / "bfpolicy-1.0.dist-info").mkdir(parents=True)
    (site / "bfpolicy-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bfpolicy\nVersion: 1.0\n"
    )
    (site / "bfpolicy-1.0.dist-info" / "entry_points.txt").write_text(
        "[bifrost_ext]\nbfpolicy = bfpolicy\n"
    )
    (site / "bfpolicy.py").write_text(
        "from bifrost_ext import hookimpl\n\n"
        "@hookimpl\n"
        "def bifrost_validate_requirement(requirement):\n"
        "    return 'no bfdep here' if requirement.name == 'bfdep' else None\n"
    )
    env = cli_env(pg_url, "", tmp_path / "site", wheelhouse, tmp_path)
    cli = CLI({**env, "PYTHONPATH": str(site)}, tmp_path)
    assert "no bfdep here" in cli("install", "bfdep", code=2)


class Recorder:
    """A plugin object that records every watching hook it sees."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def bifrost_before_install(self, requirements: list[str], origin: Origin) -> None:
        self.calls.append(("before_install", {"requirements": requirements}))

    @hookimpl
    def bifrost_after_install(
        self, record: RequirementsRecord | None, error: BaseException | None
    ) -> None:
        self.calls.append(("after_install", {"record": record, "error": error}))

    @hookimpl
    def bifrost_requirements_changed(
        self, old: RequirementsRecord, new: RequirementsRecord
    ) -> None:
        self.calls.append(("changed", {"old": old.version, "new": new.version}))

    @hookimpl
    def bifrost_before_kernel_install(self, record: RequirementsRecord, python: str) -> None:
        self.calls.append(("before_kernel_install", {"version": record.version}))


class Broken:
    @hookimpl
    def bifrost_requirements_changed(self) -> None:
        raise RuntimeError("the audit sink is down")


async def test_every_hook_is_called_at_its_moment(
    pg_url: str, wheelhouse: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(pg_url, "", tmp_path / "site", wheelhouse)
    recorder = Recorder()
    service.plugins.register(recorder)
    service.plugins.register(Broken())  # a failing watcher must not break the install
    saved = (await service.install(["bfdemo==1.0"])).record
    with pytest.raises(InstallError):
        await service.install(["nothere"])
    assert [name for name, _ in recorder.calls] == [
        "before_install",
        "after_install",
        "changed",
        "before_install",
        "after_install",
    ]
    assert recorder.calls[1][1] == {"record": saved, "error": None}
    assert recorder.calls[2][1] == {"old": 0, "new": 1}
    assert isinstance(recorder.calls[4][1]["error"], InstallError)
    assert "failed in bifrost_requirements_changed" in caplog.text

    # A kernel start on a fresh machine installs, and says so first; an unchanged one does not.
    recorder.calls.clear()
    fresh = make_service(pg_url, "", tmp_path / "other-site", wheelhouse)
    fresh.plugins.register(recorder)
    await fresh.prepare_kernel(sys.executable)
    await fresh.prepare_kernel(sys.executable)
    assert recorder.calls == [("before_kernel_install", {"version": 1})]
    await stopped(service, fresh)
