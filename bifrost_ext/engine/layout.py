"""The names in a package directory: environments, the pool, temporary folders, markers.

request → requirements → installer → **package directory** (its layout) → store → cache →
kernels.

Every step of a build (:mod:`bifrost_ext.engine.packagedir`, :mod:`bifrost_ext.engine.staging`,
:mod:`bifrost_ext.engine.collector`) names what it makes here, so that the collector removes
exactly what builds leave behind, and nothing else a shared ``envs/`` may hold.
"""

from __future__ import annotations

import re
import uuid

#: An environment's name: its requirements hash.
ENVIRONMENT = re.compile(r"[0-9a-f]{64}")
#: The names of what builds leave in ``envs/``, the only entries the collector removes there
#: (besides the pool's folders, :data:`SHARED_ID`): an environment, the short name an earlier
#: release gave it, the spare clone of one (:func:`spare`), and the temporary folders of a
#: build, a staging, a resolution, a trial or a spare, with the installer's files beside them.
COLLECTABLE = re.compile(
    r"[0-9a-f]{64}|@[0-9a-f]{16}|\.spare-[0-9a-f]{64}"
    r"|\.tmp-(?:(?:incomplete-)?[0-9a-f]{12}-|staging-|resolve-|trial-|spare-)[0-9a-f]{8}"
    r"(?:\.pid|\.constraints\.txt|\.in|\.out)?"
)

#: The names the pool (``envs/.shared/``) gives its folders
#: (:func:`bifrost_ext.engine.delta.share`).
SHARED_ID = re.compile(r"[0-9a-f]{10}")


def complete_marker(digest: str) -> str:
    """The file written last into the environment of requirements hash ``digest``."""
    return f".bifrost-complete-{digest}"


def spare(env: str) -> str:
    """The name of the clone of environment ``env`` made ahead of the next change."""
    return f".spare-{env}"


def suffix() -> str:
    """Eight random hex digits: what makes a temporary name (``.tmp-staging-<suffix>``) unique."""
    return uuid.uuid4().hex[:8]
