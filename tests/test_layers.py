"""The layout's one rule: nothing at a lower layer imports from a higher one.

Read from the source (every ``import``, lazy ones inside functions included), so a new import
that breaks the layering fails here before a reviewer has to find it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bifrost_ext"

#: Each part of the tree and the parts it may import from (besides itself). Beneath them all is
#: the kernel side, ``bifrost_kernel`` (the standard library and IPython only, checked by
#: test_kernel_side), which any part may import. The values at the top of ``bifrost_ext`` are
#: the bottom layer; the engine and storage know nothing of each other; the hub knows storage;
#: the service drives both; the server and the CLI sit on everything.
MAY_IMPORT: dict[str, set[str]] = {
    "values": set(),
    "engine": {"values"},
    "storage": {"values"},
    "plugins": {"values"},
    "hub": {"storage", "values"},
    "service": {"engine", "storage", "plugins", "values"},
    "server": {"service", "hub", "engine", "storage", "plugins", "values"},
    "cli": {"service", "hub", "engine", "storage", "plugins", "values", "server"},
}

#: Top-level modules that consume the layers rather than being values every layer shares.
CONSUMERS = {"service", "exporters"}


def part_of(module: str) -> str:
    """The part of the tree ``module`` (``bifrost_ext.x.y``) belongs to."""
    parts = module.split(".")
    if len(parts) == 1:
        return "values"  # bifrost_ext/__init__.py: entry points, imports lazily
    head = parts[1]
    if head in MAY_IMPORT:
        return head
    return "service" if head in CONSUMERS else "values"


def imported(path: Path, module: str) -> set[str]:
    """Every bifrost_ext module ``path`` imports, absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # from . import x
    return {name for name in found if name.split(".")[0] == "bifrost_ext" and resolves(name)}


def resolves(name: str) -> bool:
    """Whether ``name`` is a module or package of the tree (not a name inside one)."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def modules() -> list[tuple[Path, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append((path, ".".join(parts)))
    return found


def test_the_tree_is_read() -> None:
    parts = {part_of(module) for _, module in modules()}
    assert parts == set(MAY_IMPORT), parts


@pytest.mark.parametrize(("path", "module"), modules(), ids=lambda v: str(v))
def test_nothing_imports_from_a_layer_above(path: Path, module: str) -> None:
    if module == "bifrost_ext" or module.startswith("bifrost_ext.storage.migrations"):
        return  # the entry points; Alembic's scripts, frozen, read the store's tables
    mine = part_of(module)
    wrong = sorted(
        target
        for target in imported(path, module)
        if (theirs := part_of(target)) != mine and theirs not in MAY_IMPORT[mine]
    )
    assert not wrong, f"{module} ({mine}) imports from above its layer: {wrong}"


def test_a_layer_violation_is_seen(tmp_path: Path) -> None:
    """The check can fail: a value module importing the service is caught."""
    source = tmp_path / "pins.py"
    source.write_text("from .service import PackageService\n", "utf-8")
    targets = imported(source, "bifrost_ext.pins")
    assert "bifrost_ext.service" in targets
    assert part_of("bifrost_ext.service") not in MAY_IMPORT[part_of("bifrost_ext.pins")]
