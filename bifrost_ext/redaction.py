"""The one URL redactor: what a log line, an error message or installer output may show of a URL.

request → requirements → installer → store → cache → kernels: URLs with credentials travel
through every step (the operator's index, the database and Redis URLs), and whatever a user or
a log reads of them passes through :func:`redact_urls` first. Standard library only, so that
every layer can import it.
"""

from __future__ import annotations

import re

#: A URL's scheme and its userinfo (``user:password@``): a user name, then a password, which
#: may hold a ``/`` its writer did not percent-encode (SQLAlchemy's URLs take it so).
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:]*)(?P<password>:[^\s@]*)?@"
)


def redact_urls(text: str, keep_user: bool = False) -> str:
    """``text`` with the userinfo of each URL in it hidden: all of it (``https://***@host``),
    or with ``keep_user`` the password alone (``postgresql://role:***@host``: a database role
    names what it may do, where an index's user name is a credential of its own)."""

    def hide(match: re.Match[str]) -> str:
        scheme, user, password = match.group("scheme", "user", "password")
        if not keep_user:
            return f"{scheme}***@"
        return f"{scheme}{user}:***@" if password is not None else match.group(0)

    return _USERINFO.sub(hide, text)


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries a user name or password."""
    return redact_urls(url) != url
