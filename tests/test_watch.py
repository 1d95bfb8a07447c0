"""The kernel-side watch and the server's view of what a change replaced."""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from pathlib import Path

import pytest

from bifrost_ext.records import RequirementsRecord
from bifrost_ext.server.recycle import changed_distributions, imported_distributions
from bifrost_kernel.report import kernel_report
from bifrost_kernel.stale import env_top_levels
from bifrost_kernel.watch import PackageWatch, stale_report


def make_env(root: Path, name: str, dists: dict[str, str]) -> Path:
    env = root / "envs" / name
    for dist, version in dists.items():
        info = env / f"{dist}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "RECORD").write_text(f"{dist}/__init__.py,,\n{info.name}/RECORD,,\n")
    env.mkdir(parents=True, exist_ok=True)
    return env


def point(root: Path, env: Path) -> str:
    link = root / "current"
    tmp = root / ".link"
    os.symlink(os.path.relpath(env, root), tmp)
    os.replace(tmp, link)
    return str(link)


@pytest.fixture
def imported_bfwatched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bfwatched", sys)  # any module object will do
    monkeypatch.setitem(sys.modules, "bfwatched.sub", sys)


@pytest.mark.usefixtures("imported_bfwatched")
def test_only_imported_distributions_that_changed_are_named(tmp_path: Path) -> None:
    old = make_env(tmp_path, "a", {"bfwatched": "1.0", "bfother": "1.0", "bfsame": "1.0"})
    new = make_env(tmp_path, "b", {"bfwatched": "2.0", "bfother": "2.0", "bfsame": "1.0"})
    assert stale_report(old, new) == [
        "⚠ bifrost: the workspace's packages changed: bfwatched 1.0 (now 2.0) is imported in"
        " this kernel; restart the kernel to use the new versions (Kernel ▸ Restart)",
    ]
    removed = make_env(tmp_path, "c", {"bfsame": "1.0"})
    assert "(now removed)" in stale_report(old, removed)[0]


@pytest.mark.usefixtures("imported_bfwatched")
@pytest.mark.parametrize(
    ("policy", "told"), [("notify", True), ("restart-idle", False), ("never", False)]
)
def test_the_watch_speaks_once_and_only_under_notify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, told: bool
) -> None:
    link = point(tmp_path, make_env(tmp_path, "a", {"bfwatched": "1.0"}))
    watch = PackageWatch(link, policy, None)
    watch.before_cell()
    assert capsys.readouterr().out == ""  # nothing moved yet
    point(tmp_path, make_env(tmp_path, "b", {"bfwatched": "2.0"}))
    watch.before_cell()
    assert ("bfwatched 1.0 (now 2.0) is imported" in capsys.readouterr().out) is told
    watch.before_cell()
    assert capsys.readouterr().out == ""  # said once


@pytest.mark.usefixtures("imported_bfwatched")
def test_under_restart_idle_the_kernel_reports_what_it_imported(tmp_path: Path) -> None:
    link = point(tmp_path, make_env(tmp_path, "a", {"bfwatched": "1.0", "bfunused": "1.0"}))
    state = tmp_path / "kernels" / "k1.json"
    PackageWatch(link, "restart-idle", str(state)).after_cell()
    assert imported_distributions(state) == {"bfwatched"}
    assert imported_distributions(tmp_path / "missing.json") == set()


def test_changed_distributions_compare_the_locks() -> None:
    before = RequirementsRecord.of("w", "a\nb\n", 1, "a==1.0\nb==1.0\nc==1.0\n")
    after = RequirementsRecord.of("w", "a\nd\n", 2, "a==2.0\nc==1.0\nd==1.0\n")
    assert changed_distributions(before, after) == {"a", "b"}
    assert changed_distributions(None, after) == set()


def test_the_kernel_reports_the_versions_it_has_in_memory_not_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = point(tmp_path, make_env(tmp_path, "a", {"bfwatched": "1.0", "bflater": "1.0"}))
    watch = PackageWatch(link, "notify", None)
    monkeypatch.setitem(sys.modules, "bfwatched", sys)
    watch.before_cell()
    watch.after_cell()  # bfwatched imported while "a" was current
    point(tmp_path, make_env(tmp_path, "b", {"bfwatched": "2.0", "bflater": "2.0"}))
    watch.before_cell()
    monkeypatch.setitem(sys.modules, "bflater", sys)
    watch.after_cell()  # bflater imported after the move: from "b"
    assert watch.loaded_versions() == {"bfwatched": "1.0", "bflater": "2.0"}
    assert json.loads(kernel_report(watch)) == {"loaded": {"bfwatched": "1.0", "bflater": "2.0"}}


@pytest.mark.usefixtures("imported_bfwatched")
def test_the_notice_gives_the_version_in_memory_and_only_for_a_real_change(
    tmp_path: Path,
) -> None:
    second = make_env(tmp_path, "b", {"bfwatched": "2.0"})
    third = make_env(tmp_path, "c", {"bfwatched": "3.0"})
    again = make_env(tmp_path, "d", {"bfwatched": "3.0"})
    loaded = {"bfwatched": "1.0"}  # imported before the move to 2.0, which was told already
    assert (
        "bfwatched 1.0 (now 3.0) is imported in this kernel"
        in stale_report(second, third, loaded)[0]
    )
    assert stale_report(third, again, loaded) == []  # a rebuild of the same versions


def test_the_panel_reads_the_report_as_json_through_user_expressions() -> None:
    # The expression of src/kernelreport.ts, as ipykernel evaluates it for the panel.
    from IPython.core.interactiveshell import InteractiveShell

    expression = "__import__('bifrost_kernel.report', fromlist=['report']).report()"
    shell = InteractiveShell.instance()
    try:
        answer = shell.user_expressions({"bifrost": expression})["bifrost"]
    finally:
        InteractiveShell.clear_instance()
    assert answer["status"] == "ok"
    loaded = answer["data"]["application/json"]["loaded"]
    assert loaded["ipython"] == importlib.metadata.version("ipython")
    assert list(loaded) == sorted(loaded)


def test_top_level_names_come_from_record_rows_as_csv_reads_them(tmp_path: Path) -> None:
    # RECORD is a CSV file: a path with a comma in it is quoted (the wheel spec, PEP 376).
    env = make_env(tmp_path, "e1", {"bfquoted": "1.0"})
    record = env / "bfquoted-1.0.dist-info" / "RECORD"
    record.write_text(
        '"bfquoted/data, one.txt",sha256=abc,3\n'
        '"bf,odd.py",,\n'
        "bfquoted/__init__.py,sha256=def,10\n"
        "bfquoted-1.0.dist-info/RECORD,,\n",
        "utf-8",
    )
    assert env_top_levels(env) == {"bfquoted": {"bfquoted", "bf,odd"}}


def test_a_cell_after_current_was_swept_runs_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mutant: the watch lacks its ``target is None`` guard (the next cell after a clean-up
    removed ``current`` fails with a TypeError from the watch)."""
    env = tmp_path / "envs" / "a"
    (env / "bfdemo-1.0.dist-info").mkdir(parents=True)
    link = tmp_path / "current"
    os.symlink(os.path.relpath(env, tmp_path), link)
    watch = PackageWatch(str(link), "notify", None)
    watch.before_cell()
    link.unlink()  # a clean-up job swept it
    watch.before_cell()
    watch.after_cell()
    assert capsys.readouterr().out == ""
    os.symlink(os.path.relpath(env, tmp_path), link)  # rebuilt by the next kernel start
    watch.before_cell()
    watch.after_cell()
    assert capsys.readouterr().out == ""
