"""What every use case is handed: the catalog as it is now, the ports and the clock."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from ..domain.model import Request, utc
from ..domain.timing import DEFAULT_PENDING_WINDOW
from ..policy import DEFAULT_MANAGED_POLICIES_PER_USER
from ..ports import Clock, Grants, Notifier, SessionCuts, Store, UserGroups

#: re-read-and-decide rounds after losing a conditional write
RETRIES = 5


def _new_id(now: datetime) -> str:
    return f"req-{now:%Y%m%d}-{secrets.token_hex(3)}"


@dataclass
class Deps:
    catalog: object  # chalicelib.catalog.Catalog (reloaded when the file changes)
    store: Store
    grants: Grants
    slack: Notifier
    clock: Clock
    pending_window: timedelta = DEFAULT_PENDING_WINDOW
    max_open_per_user: int = DEFAULT_MANAGED_POLICIES_PER_USER
    new_id: Callable[[datetime], str] = field(default=_new_id)
    sleep: Callable[[float], None] = field(default=time.sleep)  # the sweep waits for Slack's pace
    #: the JIT roles' cut-off policies (chalicelib/cutoff.py); None: session cut-offs are off
    #: (``DRAWBRIDGE_SESSION_CUTOFFS=off``) and a session outlives its grant by up to MAX_SESSION
    cuts: SessionCuts | None = None
    #: who is in a Slack user group named as an approver; None: groups supply nobody
    groups: UserGroups | None = None
    #: hands jobs to the async ``worker`` Lambda (wiring, in Lambda); None: run them here, in
    #: process (tests, local) - :func:`chalicelib.usecases.dispatch.hand_off`
    handoff: Callable[[list], None] | None = None
    #: user group handle -> its members last logged as not in the catalog (usecases/groups.py)
    strangers_reported: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    def now(self) -> datetime:
        return utc(self.clock())

    def role_of(self, req: Request):
        """The request's role as the catalog says *now*, its user groups resolved into the
        people in them now (usecases/groups.py); None if it is gone."""
        try:
            return self.resolved(self.catalog.find_role(req.account, req.role))
        except LookupError:
            return None

    def resolved(self, role):
        """``role`` with its approvers' user groups replaced by their catalog people now."""
        from .groups import resolved

        return resolved(self, role)

    def approves_anything(self, person: str) -> bool:
        """Whether ``person`` is an approver of some role now (named, or in one of its groups)."""
        roles = self.catalog.roles()
        return any(person in r.approvers for r in roles) or \
            any(person in self.resolved(r).approvers for r in roles if r.groups)

    @property
    def people(self) -> dict[str, str]:
        """Person key -> Slack user id (for mentions)."""
        return {k: p.slack_user for k, p in self.catalog.people.items()}
