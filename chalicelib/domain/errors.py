"""Errors the use cases understand, raised by the domain and by the adapters behind the ports.

Adapters translate their service's errors into these (e.g. DynamoDB's failed condition
into :class:`Conflict`), so no use case ever imports an adapter to catch its errors.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class; ``str()`` is fit to show a person."""


class Conflict(DomainError):
    """A conditional write lost: somebody changed the item first. Re-read and re-decide."""


class AlreadyDelivered(Exception):
    """The write carried a delivery claim (Slack's trigger id) that an earlier delivery of the
    same command or click already made: this one is a repeat and must not act. Not a
    :class:`Conflict` - re-deciding would act twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"delivery {key} was already handled")
        self.key = key


class IllegalTransition(DomainError):
    """A move the state machine does not allow from the request's current state."""


class GrantLimitReached(DomainError):
    """The principal already holds as many grants as IAM allows."""


class GrantMismatch(DomainError):
    """What IAM already holds under a grant's name is not what the grant should be."""


class CutOffsUnavailable(DomainError):
    """A member account cannot take session cut-offs: its revoker role or the role's cut-off
    policy is missing (the member-account template is not deployed there, or is older)."""


class RateLimited(DomainError):
    """Slack refused a message for now (HTTP 429): nothing was posted or changed. Try again
    after ``retry_after`` seconds (the ``Retry-After`` Slack sent)."""

    def __init__(self, retry_after: float = 1.0, message: str = "rate limited by Slack"):
        super().__init__(message)
        self.retry_after = max(0.0, float(retry_after))


class NotInChannel(DomainError):
    """Slack will not show a private (ephemeral) message in that channel: the bot is not a
    member of it, the person is not, or it is archived (``error``: Slack's word). Nothing
    was posted; the answer can go as a DM instead."""

    def __init__(self, error: str):
        super().__init__(f"no ephemeral message there: {error}")
        self.error = error


class ViewNotOpened(DomainError):
    """Slack did not open a modal (``views.open``): ``error`` is Slack's word for why, e.g.
    ``expired_trigger_id`` (the trigger id is good for 3 seconds, once). Nothing opened."""

    def __init__(self, error: str):
        super().__init__(f"views.open failed: {error}")
        self.error = error
