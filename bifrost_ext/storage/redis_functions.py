"""bifrost's Redis function library: the compare-and-set every cache write goes through.

… store → **cache** (:mod:`.cache`) → kernels.

A write is compare-and-set on ``version`` in a small Redis 7 function, so a slow writer can
never put an older value back over a newer one. A function, not ``EVAL``: a workspace's ACL
user may call bifrost's function and run no Lua of its own (``EVAL`` would let it run a loop
that leaves Redis answering ``BUSY`` to every client). Whoever may load the library does:
``jupyter bifrost grant`` as the administrator, or the cache itself on a Redis without ACLs
(:func:`put_if_newer`).
"""

from __future__ import annotations

from typing import Any, Protocol

from .redis_connection import FunctionsMissing
from .resp import NoPermissionError, Redis, ResponseError


class FunctionLoader(Protocol):
    """A client that loads a function library: the server's (:mod:`.resp`), or redis-py's in
    the hub and the tests."""

    def function_load(self, code: str, replace: bool = ...) -> Any:
        """``FUNCTION LOAD``."""


#: The function that sets KEYS[1] to ARGV[1] unless the stored value carries a newer version
#: than ARGV[2], in bifrost's Redis 7 function library. A workspace's user may put anything
#: in its own key, and Redis serves nobody while a function runs: so the stored version is
#: read from the value's first bytes (bifrost writes ``{"version": N, ...}``), never by
#: decoding whatever is there; only a small value in an older release's key order is
#: decoded whole. Anything else is not bifrost's and is overwritten.
PUT_FUNCTION = "bifrost_put_if_newer"
#: The largest stored value the function decodes whole (bifrost's are a few kB: at most
#: 100 lines of 256 characters and their lock).
LEGACY_DECODE_LIMIT = 128 * 1024
PUT_IF_NEWER = f"""
local size = redis.call('STRLEN', KEYS[1])
if size > 0 then
  local head = redis.call('GETRANGE', KEYS[1], 0, 63)
  local stored = tonumber(string.match(head, '^{{"version": (%d+),'))
  if not stored and size <= {LEGACY_DECODE_LIMIT} then
    local ok, value = pcall(cjson.decode, redis.call('GET', KEYS[1]))
    if ok and type(value) == 'table' then stored = tonumber(value['version']) end
  end
  if stored and stored > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
#: The library's name in ``FUNCTION LIST``.
FUNCTION_LIBRARY_NAME = "bifrost"
#: bifrost's function library. A workspace's ACL user may ``FCALL`` it and run no script of
#: its own.
FUNCTION_LIBRARY = (
    f"#!lua name={FUNCTION_LIBRARY_NAME}\n"
    f"redis.register_function('{PUT_FUNCTION}', function(KEYS, ARGV){PUT_IF_NEWER}end)\n"
)


def load_functions(client: FunctionLoader) -> None:
    """Load (or replace with this release's) bifrost's function library; needs a Redis user
    allowed ``FUNCTION LOAD``, which no workspace's is."""
    client.function_load(FUNCTION_LIBRARY, replace=True)


def put_if_newer(client: Redis, key: str, value: str, version: int) -> bool:
    """``FCALL`` the compare-and-set (True if written), loading the library when Redis has
    none (one user, a plain Redis, or one that restarted without persistence) and this user
    may; :class:`~.redis_connection.FunctionsMissing` when it may not."""
    try:
        return bool(client.fcall(PUT_FUNCTION, 1, key, value, version))
    except NoPermissionError:
        raise
    except ResponseError as exc:
        if "unknown command" in str(exc):  # Redis 6: no functions, nor ACL-bound users
            return bool(client.eval(PUT_IF_NEWER, 1, key, value, version))
        if "Function not found" not in str(exc):
            raise
    try:
        load_functions(client)
    except NoPermissionError as exc:
        raise FunctionsMissing(
            "Redis has no bifrost function library (restarted without persistence?) and"
            " this workspace's user may not load it: `jupyter bifrost regrant` (the hub's"
            " service) or the next spawn loads it; until then reads go to the database"
        ) from exc
    return bool(client.fcall(PUT_FUNCTION, 1, key, value, version))
