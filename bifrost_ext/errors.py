"""The error taxonomy: what a failure answers, wherever in the flow it is met.

request → requirements → installer → store → cache → kernels: each step fails with a
subclass of :class:`BifrostError` declared beside it (an invalid spec in
:mod:`bifrost_ext.requirements`, an installer failure in :mod:`bifrost_ext.engine.installer`, a
database that does not answer in :mod:`bifrost_ext.storage.store` …), and the class says what
that failure answers: its HTTP :attr:`~BifrostError.status` (the API's one ``write_error``), its
``jupyter bifrost`` :attr:`~BifrostError.exit_code`, its :attr:`~BifrostError.kind` for programs,
and the one line a user reads. The magic and the panel show that line as the API sent it.

Modelled on datasette's ``Base400`` (``status = 400`` on the class). Standard library only:
every layer imports this module, and it imports none of them.
"""

from __future__ import annotations

from typing import Any, ClassVar

#: ``jupyter bifrost`` exit codes (README, "Command line").
EXIT_OK = 0
#: The installer (or the kernel interpreter it builds for) failed.
EXIT_INSTALL = 1
#: Bad usage or an invalid requirement: nothing changed.
EXIT_USAGE = 2
#: A name to remove, a revision to restore: not there.
EXIT_NOT_FOUND = 3
#: The database (or the Redis that grants need) is unavailable or refused.
EXIT_STORE = 4
#: The requirements kept changing under the command: try again.
EXIT_CONFLICT = 5
#: The saved requirements fail validation (written past bifrost); nothing of them installed.
EXIT_SAVED_INVALID = 6


class BifrostError(Exception):
    """A failure a user is told about: one line, its HTTP status, exit code and kind.

    A subclass declares the class attributes; :meth:`headline` says what failed and why, and
    :meth:`details` adds what programs read beside it (the installer's ``output``, the
    ``names`` not found). :meth:`refusal` is the API's answer, and what the CLI prints is its
    ``message``.
    """

    #: The status the API answers (no input may get a 5xx but an unavailable store's 503).
    status: ClassVar[int] = 400
    #: ``jupyter bifrost``'s exit code.
    exit_code: ClassVar[int] = EXIT_USAGE
    #: What went wrong, for programs (the panel and the magic show the message whatever it is).
    kind: str = "refused"
    #: What a change this failure stopped left as it was, said after the headline (None:
    #: nothing to say, as for a name that is not there).
    unchanged: ClassVar[str | None] = "nothing was saved"

    def headline(self) -> str:
        """What failed and why, in one line."""
        return str(self)

    def details(self) -> dict[str, Any]:
        """What the API body carries beside the message and kind, for programs."""
        return {}

    def user_message(self, change: bool = True) -> str:
        """The line a user reads: the headline, and for a change it stopped, what was left."""
        if change and self.unchanged:
            return f"{self.headline()}; {self.unchanged}"
        return self.headline()

    def refusal(self, change: bool = True) -> dict[str, Any]:
        """The API's answer (its body): the same words in the panel, the magic and
        ``jupyter bifrost``."""
        return {"message": self.user_message(change), "kind": self.kind, **self.details()}
