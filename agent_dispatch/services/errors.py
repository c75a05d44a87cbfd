"""Why a service refused a request, as one line a person can act on.

Every surface shows the message as it is: the CLI prints it and exits 1; an HTTP API maps the
kind to a status (NotFound 404, Conflict 409, Invalid 422). Anything else a service raises is
a fault, not a refusal.
"""

from __future__ import annotations


class Refused(Exception):
    """A request the service will not carry out; `str(exc)` is one line."""


class NotFound(Refused):
    """The job or agent named does not exist."""


class Conflict(Refused):
    """The request clashes with the current state (a name taken, a job already finished)."""


class Invalid(Refused):
    """The request itself is wrong (an unsafe URL, an unknown token name, a value out of range).

    `field` names the input at fault, in the words of the contracts (camelCase), when one is.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
