"""The dependency graph behind the panel's tree: markers for the kernel interpreter, extras,
shared dependencies and cycles, from a manifest as the engine writes it."""

from __future__ import annotations

from packaging.markers import default_environment

from bifrost_ext.engine.manifest import Entry, Manifest
from bifrost_ext.server.tree import dependency_tree


def entry(version: str, *requires: str) -> Entry:
    return Entry(version, f"x-{version}.dist-info", (), requires)


def test_markers_extras_shared_dependencies_and_cycles() -> None:
    manifest = Manifest(
        {
            "app": entry(
                "1.0",
                "lib>=1",
                "fast[speed]; python_version >= '3'",
                "legacy; python_version < '3'",
                "docs-tool; extra == 'docs'",
            ),
            "tool": entry("2.0", "lib"),
            "lib": entry("1.5", "app"),  # a cycle back to a root
            "fast": entry("0.3", "accel; extra == 'speed'"),
            "accel": entry("9"),
            "docs-tool": entry("1"),
            "legacy": entry("1"),
        }
    )
    environment = dict(default_environment())
    tree = dependency_tree(["App[docs]>=1", "tool", "not a requirement!"], manifest, environment)
    assert tree["roots"] == ["app", "tool"]
    assert tree["nodes"]["app"]["spec"] == "App[docs]>=1"
    assert {r["name"]: r["extra"] for r in tree["nodes"]["app"]["requires"]} == {
        "lib": None,
        "fast": None,
        "docs-tool": "docs",
    }
    assert tree["nodes"]["fast"]["requires"] == [
        {"name": "accel", "specifier": "", "extra": "speed"}
    ]
    assert "legacy" not in tree["nodes"]  # its marker does not hold on this Python
    assert tree["required_by"]["lib"] == ["app", "tool"]
    assert tree["required_by"]["app"] == ["lib"]


def test_a_requirement_not_installed_is_a_node_without_a_version() -> None:
    tree = dependency_tree(["ghost"], Manifest({}), dict(default_environment()))
    assert tree["nodes"] == {"ghost": {"version": None, "requires": []}}
