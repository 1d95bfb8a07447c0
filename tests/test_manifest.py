"""What a change's manifest carries from the one before (:meth:`Manifest.changed`).

A change costs what it changes only if what a manifest derived from its distributions (each
entry's JSON, the lock's lines, the owners of each top-level name) is carried to the next
manifest and edited where the change touched it. Hypothesis makes chains of changes
(distributions going, coming, coming at another version, sharing top-level names) and checks
each carried manifest against one derived afresh from the same distributions.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost_ext.engine.manifest import MANIFEST, Entry, Manifest, Needs, needed

NAMES = [f"dist{i}" for i in range(8)]
TOPS = ["a", "b", "c", "shared", "d.pth"]


@st.composite
def entries(draw: st.DrawFn, name: str) -> Entry:
    version = draw(st.sampled_from(["1.0", "1.10", "2.0", "10.0rc1"]))
    dist_info = f"{name}-{version}.dist-info"
    tops = draw(st.sets(st.sampled_from(TOPS), max_size=3))
    requires = tuple(draw(st.lists(st.sampled_from(NAMES), max_size=2)))
    return Entry(version, dist_info, tuple(sorted({dist_info, *tops})), requires)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    names = draw(st.sets(st.sampled_from(NAMES), max_size=6))
    return Manifest({name: draw(entries(name)) for name in sorted(names)})


def derived(manifest: Manifest) -> tuple[str, dict[str, frozenset[str]]]:
    """What ``manifest`` derives from its distributions, read through its public methods."""
    tops = TOPS + [entry.dist_info for entry in manifest.dists.values()]
    owners = {top: manifest.owners(top) for top in tops}
    return manifest.lock(), {top: names for top, names in owners.items() if names}


def written(manifest: Manifest, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    manifest.write(folder)
    return (folder / MANIFEST).read_text("utf-8")


@settings(max_examples=40, deadline=None)
@given(
    first=manifests(),
    steps=st.lists(st.tuples(st.sets(st.sampled_from(NAMES)), manifests()), max_size=4),
    warm=st.booleans(),
)
def test_a_carried_manifest_is_the_one_derived_afresh(
    tmp_path_factory: pytest.TempPathFactory,
    first: Manifest,
    steps: list[tuple[set[str], Manifest]],
    warm: bool,
) -> None:
    folder = tmp_path_factory.mktemp("manifest")
    current = first
    if warm:  # what it derives, made before the chain (as a build's write and lock do)
        derived(current)
        written(current, folder)
    for gone, came in steps:
        current = current.changed(gone, came)
        afresh = Manifest(dict(current.dists))
        assert derived(current) == derived(afresh)
        assert written(current, folder) == written(afresh, folder)
        assert set(current.dists) == (set(current.dists) - gone) | set(came.dists)


def test_a_change_edits_only_what_it_touched() -> None:
    """The carried lock keeps its order and drops the old version of what came again."""
    one = Entry("1.0", "one-1.0.dist-info", ("one", "one-1.0.dist-info"), ())
    two = Entry("1.0", "two-1.0.dist-info", ("shared", "two-1.0.dist-info"), ())
    three = Entry("1.0", "three-1.0.dist-info", ("shared", "three-1.0.dist-info"), ())
    base = Manifest({"one": one, "two": two, "three": three})
    assert base.lock() == "one==1.0\nthree==1.0\ntwo==1.0\n"
    assert base.owners("shared") == {"two", "three"}
    newer = Entry("2.0", "one-2.0.dist-info", ("one", "one-2.0.dist-info"), ())
    after = base.changed({"three"}, Manifest({"one": newer}))
    assert after.lock() == "one==2.0\ntwo==1.0\n"
    assert after.owners("shared") == {"two"}
    assert after.owners("one-1.0.dist-info") == frozenset()
    assert after.owners("one-2.0.dist-info") == {"one"}


REQUIRES = [
    "dist1",
    "dist2>=2",
    "dist3<2",
    "dist4[x]",
    "dist5; extra == 'x'",
    "dist6; python_version < '3'",
    "dist7; python_version >= '3'",
    "kernelpkg",
]
ENVIRONMENT = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux"}
KERNEL = {"kernelpkg": "1.0"}


@st.composite
def graphs(draw: st.DrawFn, every: bool = False) -> dict[str, Entry]:
    """Distributions requiring each other: every one of NAMES, or some (what a change brings)."""
    dists = {}
    for name in NAMES if every else sorted(draw(st.sets(st.sampled_from(NAMES)))):
        version = draw(st.sampled_from(["2.0", "2.0", "1.0"]))
        requires = tuple(draw(st.lists(st.sampled_from(REQUIRES), max_size=3)))
        dists[name] = Entry(version, f"{name}-{version}.dist-info", (name,), requires)
    return dists


LINES = ["dist0", "dist1>=1", "dist2", "dist4[x]", "dist5", "dist0; python_version < '3'"]


@settings(max_examples=150, deadline=None)
@given(
    first=graphs(every=True),
    lines=st.sets(st.sampled_from(LINES)),
    steps=st.lists(st.tuples(graphs(), st.sets(st.sampled_from(LINES))), max_size=3),
)
def test_needs_kept_line_by_line_are_what_a_whole_walk_finds(
    first: dict[str, Entry], lines: set[str], steps: list[tuple[dict[str, Entry], set[str]]]
) -> None:
    """A change's needs, from the last ones and what it changed, are what walking every line
    over the new distributions finds (or None, when a walk of every line is None)."""
    needs = Needs.walk(lines, first, ENVIRONMENT, KERNEL)
    assert (needs and set(needs.lines_of)) == needed(lines, first, ENVIRONMENT, KERNEL)
    dists = first
    for came, new_lines in steps:
        if needs is None:
            break
        changed = [name for name, entry in came.items() if dists.get(name) != entry]
        dists = {**dists, **came}
        needs = needs.after(new_lines, dists, changed, ENVIRONMENT, KERNEL)
        assert (needs and set(needs.lines_of)) == needed(new_lines, dists, ENVIRONMENT, KERNEL)
        if needs is not None:
            assert set(needs.by_line) == new_lines
