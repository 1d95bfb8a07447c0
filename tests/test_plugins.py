"""Plugins go through pluggy: its order, its wrappers, and the ready-made plugins by name."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext import hookimpl
from bifrost_ext.requirements import InvalidSpec
from bifrost_ext.service import PackageService
from bifrost_ext.settings import Settings


def service_with(pg_url: str, site: Path, wheelhouse: Path, **values: Any) -> PackageService:
    settings = Settings.from_values(
        {
            "database_url": pg_url,
            "site_dir": str(site),
            "find_links": [str(wheelhouse)],
            "no_index": True,
            **values,
        },
        environ={},
    )
    return PackageService.from_settings(settings, sys.executable, logging.getLogger("test"))


class Watcher:
    """Records when it saw a change, under a name."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name = name
        self.seen = seen

    @hookimpl
    def bifrost_requirements_changed(self) -> None:
        self.seen.append(self.name)


class First(Watcher):
    @hookimpl(tryfirst=True)
    def bifrost_requirements_changed(self) -> None:
        self.seen.append(self.name)


class Wrapping:
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    @hookimpl(wrapper=True)
    def bifrost_requirements_changed(self) -> Generator[None, None, None]:
        self.seen.append("wrapper before")
        yield
        self.seen.append("wrapper after")


class Failing:
    @hookimpl(tryfirst=True)
    def bifrost_requirements_changed(self) -> None:
        raise RuntimeError("the audit sink is down")


async def test_watching_hooks_run_in_pluggys_order_with_wrappers_and_failures_isolated(
    pg_url: str, wheelhouse: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = service_with(pg_url, tmp_path / "site", wheelhouse)
    seen: list[str] = []
    service.plugins.register(First("first", seen))
    service.plugins.register(Failing())
    service.plugins.register(Watcher("plain", seen))
    service.plugins.register(Wrapping(seen))
    await service.install(["bfdemo==1.0"])
    # pluggy's order: wrappers first, then tryfirst, then the last registered first. Each
    # plugin is its own call, so a wrapper wraps its own plugin's implementations.
    assert seen == ["wrapper before", "wrapper after", "first", "plain"]
    assert "failed in bifrost_requirements_changed" in caplog.text
    assert "the audit sink is down" in caplog.text
    service.close()


async def test_the_deny_list_is_a_default_plugin_that_answers_first(
    pg_url: str, wheelhouse: Path, tmp_path: Path
) -> None:
    service = service_with(pg_url, tmp_path / "site", wheelhouse, denied_packages=["BFDemo"])
    assert "bifrost_ext.denied_packages" in dict(service.plugins.list_name_plugin())

    class Other:
        @hookimpl(tryfirst=True)
        def bifrost_validate_requirement(self) -> str:
            return "another reason"

    service.plugins.register(Other())
    with pytest.raises(InvalidSpec) as refused:
        await service.install(["bfdemo==1.0"])
    assert refused.value.reason in {"this package is not allowed here (policy)", "another reason"}
    assert (await service.read()).lines == []
    service.close()


async def test_the_ready_made_plugins_are_enabled_by_name(
    pg_url: str, wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy, audit = tmp_path / "policy.toml", tmp_path / "audit.log"
    policy.write_text('deny = ["bfapp"]\n')
    monkeypatch.setenv("BIFROST_POLICY_FILE", str(policy))
    monkeypatch.setenv("BIFROST_AUDIT_LOG", str(audit))
    service = service_with(
        pg_url,
        tmp_path / "site",
        wheelhouse,
        plugins=["bifrost_ext.plugins.allow_deny", "bifrost_ext.plugins.audit"],
    )
    with pytest.raises(InvalidSpec, match=r"denied by the package policy \(bfapp\)"):
        await service.install(["bfapp"])
    await service.install(["bfdemo==1.0"])
    (line,) = audit.read_text().splitlines()
    assert json.loads(line)["added"] == ["bfdemo==1.0"]
    service.close()


def test_the_ready_made_plugins_ship_inside_the_package() -> None:
    import bifrost_ext.plugins

    folder = Path(bifrost_ext.plugins.__file__).parent
    assert folder.parent.name == "bifrost_ext"
    assert {"allow_deny.py", "audit.py", "README.md"} <= {p.name for p in folder.iterdir()}
