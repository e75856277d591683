"""Slack may deliver one command or click twice (a retry repeats its ``trigger_id``):
act on the first delivery only.

The claim on a delivery rides on the write the command makes: the first create or
transition of the request carries ``ONCE#<key>`` in its own transaction, on condition that
no earlier delivery wrote it. So a command costs no extra round trip for its claim, a
failure before that write leaves no claim (the redelivery acts), and a repeat - or
botocore retrying a transaction whose answer was lost - finds the claim and changes
nothing (:class:`Repeated`). A command that writes nothing but still has something to
send (a click refused with a private answer) claims afterwards with a write of its own,
before anything is sent; one that writes and sends nothing (help, list, a refusal) just
answers again.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, TypeVar

from ..domain.errors import AlreadyDelivered
from .deps import Deps

T = TypeVar("T")


class Repeated(Exception):
    """This delivery was already handled; ``reply`` says so in words (when there are any),
    ``request_id`` names the request the first delivery changed (when known)."""

    def __init__(self, reply: str | None, request_id: str | None = None) -> None:
        super().__init__("repeated delivery")
        self.reply = reply
        self.request_id = request_id


def in_flight(deps: Deps, request_id: str | None) -> list:
    """The job a request in flight needs, for a repeat to hand on again: when the first
    delivery's own answer was lost (botocore retried its transaction, which then met its own
    claim), nobody handed on its grant or revocation. Both jobs re-read the record and act
    only on GRANTING / REVOKING, so handing them on twice does no harm."""
    from ..domain.lifecycle import GrantStatus
    from . import jobs

    req = deps.store.get(request_id) if request_id else None
    if req is None:
        return []
    if req.grant_status is GrantStatus.GRANTING:
        return [jobs.Grant(request_id)]
    if req.grant_status is GrantStatus.REVOKING:
        return [jobs.EndGrant(request_id)]
    ext = req.extension
    if req.grant_status is GrantStatus.ACTIVE and ext is not None and ext.state == ext.APPROVED:
        return [jobs.ExtendGrant(request_id, ext.n)]
    return []


class _Claiming:
    """The store, with the delivery claim added to each write until one of them lands."""

    def __init__(self, store, key: str) -> None:
        self._store = store
        self.key = key
        self.written = False

    def create(self, req, event, owed=(), claim=None):
        self._store.create(req, event, owed, claim=None if self.written else self.key)
        self.written = True

    def transition(self, before, after, event, owed=(), claim=None):
        self._store.transition(before, after, event, owed, claim=None if self.written else self.key)
        self.written = True

    # the reads a use case makes before deciding recognise a repeat (no read of their own)
    def get(self, request_id, claim=None):
        return self._store.get(request_id, claim=None if self.written else self.key)

    def owe(self, request_id, key, job, at, version=0, person=None):
        """A command that owes a message without changing a request (``/aws-access review``):
        the claim first, so a repeated delivery owes nothing a second time."""
        if not self.written:
            first, _ = self._store.first_delivery(self.key, at)
            if not first:
                raise AlreadyDelivered(self.key)
            self.written = True
        self._store.owe(request_id, key, job, at, version, person)

    def open_for(self, person, claim=None):
        return self._store.open_for(person, claim=None if self.written else self.key)

    def __getattr__(self, name):
        return getattr(self._store, name)


def once(deps: Deps, key: str | None, act: Callable[[Deps], T],
         replay: Callable[[str | None], str | None] = lambda _: None,
         sends: Callable[[T], bool] = bool) -> T:
    """Run ``act(deps)`` for the first delivery of ``key`` (no key: always).

    ``replay(request_id)`` words the answer to a repeat (the request the first delivery
    changed, if known); ``sends(result)`` says whether a result that wrote nothing still
    has something to send, and so needs a claim of its own."""
    if not key:
        return act(deps)
    claiming = _Claiming(deps.store, key)
    try:
        result = act(dataclasses.replace(deps, store=claiming))
    except AlreadyDelivered:
        _, request_id = deps.store.first_delivery(key, deps.now())  # (False, the id) - or a claim for nothing
        raise Repeated(replay(request_id), request_id) from None
    if not claiming.written and sends(result):
        first, request_id = deps.store.first_delivery(key, deps.now())
        if not first:
            raise Repeated(replay(request_id), request_id)
    return result
