"""Schema migrations in a child process, for a server's store.

… installer → **store** (its schema) → cache → kernels.

A migration needs Alembic, which brings Mako and Pygments: about 10 MiB that a Python
process never gives back once imported, and that a server would carry for its whole life
to run a migration once, on its first start with a new database (a restart finds the schema
at :data:`~.store.SCHEMA_HEAD` with one query and imports none of it). So a server's store
(:attr:`RequirementsStore.migrate_apart <.store.RequirementsStore.migrate_apart>`) runs
:meth:`~.store.RequirementsStore.ensure_schema` in a child of the same interpreter, with the
server's own import path and the store's settings handed over on stdin (never on the
command line, where the database password would show). The child answers with one line of
JSON, and its failure is raised in the server as the same error: the class (by its
``kind``) and the words the operator would have read from an in-process migration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import RequirementsStore

#: The store settings the child is given (traits of :class:`~.store.RequirementsStore`).
SETTINGS = ("url", "connect_timeout", "busy_timeout", "lock_timeout", "statement_timeout")
#: What the child runs: the server's import path first, then nothing from the current folder
#: or the environment's PYTHON* variables (``-I``).
CHILD = (
    "import json, sys; given = json.loads(sys.stdin.readline()); sys.path[:] = given['path'];"
    " from bifrost_ext.storage.migrate import child; child(given['settings'])"
)


def migrate_in_child(store: RequirementsStore) -> None:
    """Bring ``store``'s schema to this release's head in a child process, or raise there the
    :class:`~.store.StoreUnavailable` (or subclass) the migration met."""
    from ..redaction import redact_urls
    from .store import StoreRefused, StoreUnavailable, UnknownSchema

    given = {"path": sys.path, "settings": {name: getattr(store, name) for name in SETTINGS}}
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", CHILD],
            input=json.dumps(given) + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise StoreUnavailable(f"cannot run the schema migration: {exc}") from exc
    if done.returncode == 0:
        return
    answer: dict[str, Any] = {}
    lines = done.stdout.strip().splitlines()
    if lines:
        try:
            answer = json.loads(lines[-1])
        except ValueError:
            answer = {}
    if not isinstance(answer, dict) or not isinstance(answer.get("message"), str):
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StoreUnavailable(
            f"the schema migration of database {redact_urls(store.url, keep_user=True)} failed"
            f" (exit status {done.returncode}): {said}"
        )
    kinds: dict[str, type[StoreUnavailable]] = {
        UnknownSchema.kind: UnknownSchema,
        StoreRefused.kind: StoreRefused,
    }
    raise kinds.get(str(answer.get("kind")), StoreUnavailable)(answer["message"])


def child(settings: dict[str, Any]) -> None:
    """The child's side: migrate in this process; say a failure as one line of JSON on
    stdout and exit 1."""
    from traitlets.config import Config

    from .store import RequirementsStore, StoreUnavailable

    # An empty config: every setting is given, none read again from BIFROST_* variables.
    store = RequirementsStore(config=Config(), **{name: settings[name] for name in SETTINGS})
    try:
        store.ensure_schema()
    except StoreUnavailable as exc:
        print(json.dumps({"kind": exc.kind, "message": str(exc)}))
        sys.exit(1)
    finally:
        store.close()
