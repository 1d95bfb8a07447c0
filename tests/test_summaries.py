"""The change summary the server forms once (bifrost_ext/summaries.py), for every wording:
what the magic, the CLI and the panel print as it is."""

from __future__ import annotations

from bifrost_ext.summaries import change_summary, orphans

NUMPY = [
    {"name": "numpy", "old": "2.4.6", "new": "1.26.4"},
    {"name": "pandas", "old": "3.1.1", "new": "3.0.6"},
    {"name": "six", "old": None, "new": "1.17.0"},
    {"name": "tzdata", "old": "2025.1", "new": None},
]


def test_every_version_an_install_moved_is_in_the_summary() -> None:
    summary = change_summary(
        "install",
        named=["numpy"],
        installed=[{"name": "numpy", "version": "1.26.4"}],
        versions=NUMPY,
        also_changed=NUMPY[1:],  # the server's: what the change did not name
    )
    assert summary == (
        "installed numpy 1.26.4 (was 2.4.6); also changed: pandas 3.1.1 → 3.0.6 (dependency),"
        " six 1.17.0 added, tzdata 2025.1 removed"
    )


def test_an_install_that_drops_a_dependency_says_nothing_needs_it() -> None:
    summary = change_summary(
        "install",
        named=["numpy"],
        installed=[{"name": "numpy", "version": "1.26.4"}],
        versions=NUMPY,
        also_changed=NUMPY[1:],
        gone=orphans(NUMPY, ["numpy"]),
        kept=[{"name": "tornado", "version": "6.4"}],
    )
    assert summary == (
        "installed numpy 1.26.4 (was 2.4.6); also changed: pandas 3.1.1 → 3.0.6 (dependency),"
        " six 1.17.0 added; also removed the dependency nothing needs any more: tzdata;"
        " kept the kernel's own tornado 6.4"
    )


def test_nothing_to_install_says_already_installed() -> None:
    installed = [{"name": "bfdemo", "version": "1.0"}]
    summary = change_summary("install", named=["bfdemo"], installed=installed, changed=False)
    assert summary == "already installed bfdemo 1.0"


def test_a_removal_names_its_orphans_apart_from_what_moved() -> None:
    versions = [
        {"name": "certifi", "old": "2024.2.2", "new": None},
        {"name": "charset-normalizer", "old": "3.3", "new": "3.4"},
        {"name": "idna", "old": "3.7", "new": None},
        {"name": "requests", "old": "2.32", "new": None},
        {"name": "urllib3", "old": "2.2", "new": None},
    ]
    gone = orphans(versions, ["requests", "pandas"])
    assert gone == ["certifi", "idna", "urllib3"]
    summary = change_summary(
        "remove",
        named=["requests"],
        versions=versions,
        also_changed=versions[:2] + versions[4:],
        gone=gone,
    )
    assert summary == (
        "removed requests 2.32; also changed: charset-normalizer 3.3 → 3.4 (dependency);"
        " also removed its dependencies certifi, idna, urllib3"
    )
    two = change_summary("remove", named=["a", "b"], versions=[], gone=["c"])
    assert two == "removed a, b; also removed their dependency c"


def test_orphans_are_none_when_only_requirements_went() -> None:
    versions = [{"name": "Bf_App", "old": "1.0", "new": None}]
    assert orphans(versions, ["bf-app"]) == []  # compared as canonical names
    assert orphans([{"name": "x", "old": None, "new": "1"}], []) == []  # added, not removed


def test_a_rollback_and_an_import_say_every_version_without_calling_it_a_dependency() -> None:
    versions = [
        {"name": "bfapp", "old": None, "new": "1.0"},
        {"name": "bfbase", "old": "1.0", "new": "2.0"},
        {"name": "bfdep2", "old": "1.0", "new": None},
        {"name": "bfdown", "old": "2.0", "new": None},
    ]
    summary = change_summary(
        "rollback", revision=3, versions=versions, gone=orphans(versions, ["bfdown"])
    )
    assert summary == (
        "rolled back to revision 3; changed: bfapp 1.0 added, bfbase 1.0 → 2.0,"
        " bfdown 2.0 removed; also removed the dependency nothing needs any more: bfdep2"
    )
    assert change_summary("rollback", revision=3, changed=False) == (
        "the requirements already are revision 3's"
    )
    assert change_summary("replace", count=1) == "imported 1 requirement"
    assert change_summary("replace", count=2, versions=versions[:1]) == (
        "imported 2 requirements; changed: bfapp 1.0 added"
    )
