"""Errors the use cases understand, raised by the domain and by the adapters behind the ports.

Adapters translate their service's errors into these (e.g. DynamoDB's failed condition
into :class:`Conflict`), so no use case ever imports an adapter to catch its errors.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class; ``str()`` is fit to show a person."""


class Conflict(DomainError):
    """A conditional write lost: somebody changed the item first. Re-read and re-decide."""


class IllegalTransition(DomainError):
    """A move the state machine does not allow from the request's current state."""


class GrantLimitReached(DomainError):
    """The principal already holds as many grants as IAM allows."""


class GrantMismatch(DomainError):
    """What IAM already holds under a grant's name is not what the grant should be."""


class RateLimited(DomainError):
    """Slack refused a message for now (HTTP 429): nothing was posted or changed. Try again
    after ``retry_after`` seconds (the ``Retry-After`` Slack sent)."""

    def __init__(self, retry_after: float = 1.0, message: str = "rate limited by Slack"):
        super().__init__(message)
        self.retry_after = max(0.0, float(retry_after))
