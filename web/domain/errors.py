"""What a domain rule refuses, by kind, naming the input at fault (`field`).

The kinds know nothing of HTTP: web/http.py answers each with its status code."""

from __future__ import annotations


class DomainError(Exception):
    """A refusal: `message` says why, `field` names the input it concerns."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Invalid(DomainError):
    """The input breaks a rule of the run it describes."""


class NotFound(DomainError):
    """No such thing, or not the user's (another user's run does not exist for them)."""


class Conflict(DomainError):
    """The thing is not in a state that allows it (a run that has ended, no checkpoint)."""


class Impossible(DomainError):
    """Valid input that cannot be carried out (a start state the environment cannot take)."""


class Unavailable(DomainError):
    """A service it needs (the broker) did not answer; trying again may succeed."""
