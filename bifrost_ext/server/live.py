"""Tell the browser when the workspace's packages changed, through jupyter_server's events.

… store → cache → events → **browsers** (and kernels).

JupyterLab listens to the server's event bus (``api/events/subscribe``, which
``app.serviceManager.events.stream`` reads), so the Packages panel of every open tab hears of a
change without polling: one made through this server (the panel, a notebook's ``%bifrost``, the
API), and one another server of the workspace made, once this server has followed it
(:class:`~.events.ChangeListener`). A change no server saw (the CLI on a laptop without Redis)
reaches the panel through its slower status poll.
"""

from __future__ import annotations

from typing import Any

from ..plugins.hookspecs import hookimpl
from ..records import Origin, RequirementsRecord

SCHEMA_ID = "https://bifrost-ext.dev/events/packages/v1"

SCHEMA: dict[str, Any] = {
    "$id": SCHEMA_ID,
    "version": "1",
    "title": "bifrost_ext: the workspace's packages changed",
    "personal-data": True,
    "description": "The saved requirements of the server's workspace changed; the package"
    " directory of this server holds them (or is being brought up to them).",
    "type": "object",
    "required": ["action", "workspace", "hash", "version"],
    "properties": {
        "action": {"enum": ["changed"], "description": "What happened."},
        "workspace": {"type": "string", "description": "The workspace whose packages changed."},
        "hash": {"type": "string", "description": "sha256 of the new requirements."},
        "version": {"type": "integer", "description": "The new revision's version."},
        "where": {
            "enum": ["this server", "another server"],
            "description": "Which server saved the change.",
        },
        "user": {"type": ["string", "null"], "description": "Who made it, when known."},
        "source": {"type": ["string", "null"], "description": "api, cli, kernel <id>, …"},
    },
}


class LiveEvents:
    """Emits :data:`SCHEMA_ID` events on a jupyter_server's event logger.

    Registered with the service's plugins for the changes this server makes; the app calls
    :meth:`followed` for those it followed from another server.
    """

    def __init__(self, event_logger: Any, workspace: str) -> None:
        self.event_logger = event_logger
        self.workspace = workspace
        event_logger.register_event_schema(SCHEMA)

    @hookimpl
    def bifrost_requirements_changed(
        self, workspace: str, old: RequirementsRecord, new: RequirementsRecord, origin: Origin
    ) -> None:
        """A change this server saved."""
        self._emit(new, "this server", origin.user, origin.source)

    def followed(self, record: RequirementsRecord) -> None:
        """This server followed a change another server saved."""
        self._emit(record, "another server", None, None)

    def _emit(
        self, record: RequirementsRecord, where: str, user: str | None, source: str | None
    ) -> None:
        self.event_logger.emit(
            schema_id=SCHEMA_ID,
            data={
                "action": "changed",
                "workspace": self.workspace,
                "hash": record.hash,
                "version": record.version,
                "where": where,
                "user": user,
                "source": source,
            },
        )
