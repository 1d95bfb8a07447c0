"""Build hook: a wheel or sdist of bifrost_ext carries the production build of the Packages
panel, or is not built.

pyproject.toml's jupyter-builder hook runs ``jlpm build:prod`` unless the production build is
already there (``static/third-party-licenses.json``, which only a production build writes and
every build's clean start removes). This hook runs after it and refuses what it would have
let through: a development build (``jlpm build``, as ``scripts/run`` makes one: source maps and
a ``build_log.json`` holding the checkout's absolute paths) reaching a distribution when the
builder was skipped (``SKIP_JUPYTER_BUILDER``) or a build left it behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LABEXTENSION = Path("bifrost_ext", "labextension")
#: Written by the production build alone (JupyterLab's license plugin).
PRODUCTION_MARK = LABEXTENSION / "static" / "third-party-licenses.json"


class ProductionPanelHook(BuildHookInterface):  # type: ignore[type-arg]
    """Refuse to build a distribution around a development build of the panel."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Check the built panel before any file is collected."""
        if version == "editable":  # a development install links the checkout's own build
            return
        root = Path(self.root)
        development = sorted(
            str(path.relative_to(root))
            for path in (root / LABEXTENSION).rglob("*")
            if path.name == "build_log.json" or path.name.endswith(".map")
        )
        if development:
            listed = ", ".join(development[:3])
            found = f"holds a development build of the Packages panel ({listed})"
        elif not (root / PRODUCTION_MARK).is_file():
            found = f"holds no production build of the Packages panel (no {PRODUCTION_MARK})"
        else:
            return
        raise RuntimeError(
            f"{LABEXTENSION} {found}; a {self.target_name} carries the production build: "
            "run `jlpm build:prod` (or build without SKIP_JUPYTER_BUILDER), then build again"
        )
