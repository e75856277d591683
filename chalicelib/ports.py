"""What the use cases need from the outside world, as ``Protocol``s (no implementation here).

Five ports, each with a real adapter in ``chalicelib/adapters/`` and an in-memory fake in
``tests/fakes.py``:

* :class:`Store` - the table: requests and their audit events, the card's location,
  one-time claims (messages, alerts, deliveries) and recorded uses;
* :class:`Grants` - the grant as IAM holds it, for one kind of :class:`Principal`;
* :class:`Notifier` - Slack's Web API: posts, updates, ephemerals, DMs, the App Home, modals;
* :class:`UserGroups` - who is in a Slack user group named as an approver (``@sre-leads``);
* :class:`SessionCuts` - the session cut-off policy on each JIT role, in its member
  account (written through that account's revoker role).

Every method either succeeds, raises a domain error (:mod:`chalicelib.domain.errors`:
``Conflict`` for a lost conditional write, ``GrantLimitReached``), or raises something
unexpected that the caller treats as a transient failure (the sweep retries).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from .domain.model import AuditEvent, Principal, Request

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Owed:
    """A message a change of state owes somebody, not delivered yet (the outbox)."""

    request_id: str
    key: str  # "card", "dm:access_granted", "security:grant_failed", ...
    job: dict  # the job that delivers it, in its wire form
    version: int  # the record version that owed it
    attempts: int
    due_at: datetime


@dataclass(frozen=True)
class Trail:
    """The audit trail of a time window (``Store.events_between``): the requests' audit
    events and the alert path's records of denied attempts (uncovered ways in, failed
    attempts), each oldest first."""

    events: list
    attempts: list[dict]


@dataclass(frozen=True)
class Delivery:
    """The one delivery of a message: who started it when, and where it landed (if known)."""

    first: bool
    started_at: datetime
    channel: str | None
    ts: str | None


@dataclass(frozen=True)
class AlertContext:
    """What the alert path's one Query tells about a principal: the grants whose usable
    window ends at or after the event, the grants whose first use was already told on
    their card, and the principal's recent burst digests."""

    grants: list
    digests: list[dict]
    used: frozenset[str]


@dataclass(frozen=True)
class CallClaim:
    """The claim of one call (one ``sharedEventID``/``eventID``): ``first`` (this attempt
    claimed it), ``again`` (an earlier attempt of this same copy did: ``attempt_at``, when
    it started, None if it is known to have failed; ``digest``), or ``taken`` (the other
    copy of the call did; it delivers it)."""

    state: str
    attempt_at: datetime | None = None
    digest: str | None = None


@dataclass(frozen=True)
class DigestJoin:
    """One call joining a burst digest (see chalicelib/usecases/alert_digest.py)."""

    key: str
    member: str  # the call's alert key
    principal: str  # the principal's index key (the digest sits in its partition)
    loud: bool
    channel: str
    open_until: datetime
    cap: int
    event_time: datetime
    request_id: str | None = None  # covered: the grant it counts under ...
    grant: str | None = None  # ... and what the digest shows of it (JSON, the first joiner's)
    line: str | None = None  # uncovered: its named line (JSON)
    not_before: datetime | None = None  # a new digest: no Slack write before (Retry-After)


class Store(Protocol):
    # -- requests: every change is the record (conditional on its version) + its audit event
    # ``claim``: a delivery key (Slack's trigger id) written in the same transaction, on
    # condition that no earlier delivery wrote it (else AlreadyDelivered, and nothing changes)
    def create(self, req: Request, event: AuditEvent, owed: Sequence[tuple[str, dict]] = (),
               claim: str | None = None) -> None: ...
    def transition(self, before: Request, after: Request, event: AuditEvent,
                   owed: Sequence[tuple[str, dict]] = (), claim: str | None = None) -> None: ...
    # ``claim``: AlreadyDelivered if that delivery wrote the record's current version
    def get(self, request_id: str, claim: str | None = None) -> Request | None: ...
    def history(self, request_id: str) -> list[AuditEvent]: ...
    # the audit trail by time (the ``by_day`` index): one Query per day of the window
    def events_between(self, start: datetime, end: datetime) -> Trail: ...
    def open_for(self, person: str, claim: str | None = None) -> list[Request]: ...
    def due(self, now: datetime, limit: int = 500) -> list[Request]: ...
    def live(self) -> list[Request]: ...
    def grants_ending_after(self, principal: Principal, at: datetime) -> list[Request]: ...

    # -- short leases: one holder at a time (e.g. one writer of a role's cut-off policy); a
    # holder that outlives ``lease`` loses it to the next taker. A lease keeps what its last
    # holder left in it (``data``, e.g. the document it wrote), strongly consistent.
    def take_lease(self, key: str, token: str, now: datetime, lease: timedelta) -> dict | None:
        """The data the last holder left ({} if none) once taken; None if somebody holds it."""
    def release_lease(self, key: str, token: str, data: dict | None = None) -> None:
        """Give it back if still ours, leaving ``data`` (None: keep what is there)."""

    # -- the sweep's rotation over live grants: where it has got to, moved conditionally
    def verify_cursor(self) -> tuple[str, int]:
        """(the last request id whose holders reconcile verified, the cursor's version)."""
    def move_verify_cursor(self, cursor: str, version: int) -> bool:
        """Move the cursor on if it is still at ``version``; False if somebody moved it."""

    # -- the outbox: messages a change owes, written in the same transaction as the change
    def owed_for(self, person: str) -> list[Owed]: ...
    def owe(self, request_id: str, key: str, job: dict, at: datetime, version: int = 0,
            person: str | None = None) -> None: ...
    def owed_due(self, now: datetime, limit: int = 200) -> list[Owed]: ...
    def settle(self, request_id: str, key: str, version: int) -> None: ...
    def retry_later(self, owed: Owed, at: datetime) -> None: ...

    # -- at most one post per message, even when Slack's answer was lost
    def begin_delivery(self, scope: str, kind: str, now: datetime) -> Delivery: ...
    def delivery(self, scope: str, kind: str) -> Delivery | None: ...
    def finish_delivery(self, scope: str, kind: str, channel: str, ts: str) -> None: ...

    # -- the approval card
    def save_card(self, request_id: str, channel: str, ts: str) -> bool: ...
    def card(self, request_id: str) -> tuple[str, str] | None: ...

    # -- one-time claims: True the first time, False afterwards; release undoes a claim
    def claim_alert(self, key: str, record: dict, now: datetime, keep_days: int = 400) -> bool: ...
    def release_alert(self, key: str) -> None: ...
    def alert(self, key: str) -> dict | None: ...
    # (True, None) the first time ``key`` is claimed; afterwards (False, the request id the
    # claiming write changed, if it changed one)
    def first_delivery(self, key: str, now: datetime) -> tuple[bool, str | None]: ...

    # -- the alert path's heartbeats (chalicelib.usecases.liveness): one item per path, each a
    # dict of account, region and the fields of chalicelib/adapters/path_items.py (ISO Z or None)
    def path_beat(self, account: str, region: str, now: datetime) -> dict: ...
    def path_create(self, account: str, region: str, fields: dict) -> bool: ...
    def path_delete(self, account: str, region: str, *, expect: dict) -> bool: ...
    def paths(self) -> list[dict]: ...
    def path_update(self, account: str, region: str, *, set_: dict | None = None, remove: tuple = (),
                    expect: dict) -> bool: ...

    # -- failed attempts of one caller on one target in one window: one Slack line, a count
    def join_alert_group(self, key: str, member: str, event_time: datetime, now: datetime,
                         keep_days: int = 400) -> dict: ...
    def take_alert_group(self, key: str, old_owner: str, member: str, now: datetime) -> bool: ...
    def save_alert_group_message(self, key: str, member: str, channel: str, ts: str) -> bool: ...
    def leave_alert_group(self, key: str, member: str) -> None: ...
    def alert_group(self, key: str) -> dict | None: ...

    # -- ways in (chalicelib/adapters/alert_calls.py): two calls on the common path
    def alert_context(self, principal_key: str, at: datetime) -> AlertContext: ...
    def claim_call(self, key: str, owner: str, record: dict, now: datetime, *, token: str,
                   digest: str | None = None, use: tuple[str, str] | None = None) -> CallClaim: ...
    def put_call_in_digest(self, key: str, owner: str, digest: str, instead_of: str | None = None) -> bool: ...
    def call_failed(self, key: str, owner: str) -> None: ...
    def call(self, key: str) -> dict | None: ...
    def uses(self, request_id: str) -> list[dict]: ...
    def first_use(self, request_id: str, principal_key: str, window_end: datetime, now: datetime) -> bool: ...

    # -- grant activity (chalicelib/adapters/activity_items.py): one write per call counted
    def activity(self, request_id: str) -> dict | None: ...
    def record_activity(self, request_id: str, event_id: str, update: Callable[[dict | None], dict],
                        now: datetime) -> tuple[bool, dict | None]:
        """Count the call ``event_id`` in the grant's tally (``update(old) -> new``), in one
        write with its dedupe claim: (True, the new tally); (False, None) if counted before."""

    # -- burst digests: many calls, one Slack message
    def join_digest(self, join: DigestJoin, now: datetime) -> dict | None: ...
    def alert_digest(self, key: str) -> dict | None: ...
    def take_digest(self, key: str, token: str, now: datetime, lease: timedelta) -> dict | None: ...
    def release_digest(self, key: str, token: str, *, next_at: datetime, shown: int | None = None,
                       where: tuple[str, str] | None = None, clean: bool = True) -> bool: ...
    def digests_due(self, now: datetime, limit: int = 50) -> list[str]: ...
    def stop_tracking_digest(self, key: str, members: int) -> bool: ...


class Grants(Protocol):
    def grant(self, *, principal: Principal, request_id: str, document: dict, description: str,
              tags: dict[str, str]) -> str:
        """Create (or reuse) the grant's policy and attach it; returns its ARN.
        ``GrantLimitReached`` when the principal holds as many as IAM allows."""

    def revoke(self, *, principal: Principal, request_id: str) -> list[Principal]:
        """Remove exactly this grant; already gone is done. Returns the *other* principals
        it had to be taken from too (a copy made by hand)."""

    def extend(self, *, principal: Principal, request_id: str, document: dict,
               expected_expiry: str | None = None) -> str:
        """Make ``document`` the grant policy's default version - one atomic switch: IAM
        evaluates either the old or the new version, never neither - and keep the policy
        attached; returns the policy ARN. Already the default: done (safe to repeat after
        a lost answer). ``GrantMismatch`` (nothing changed) if the policy does not exist, is
        not attached to ``principal`` or is attached to anybody else too, or ``document``
        differs from its current one in anything but the ``aws:CurrentTime`` expiry (the
        role included): an extension never changes what a grant allows, only until when.
        With ``expected_expiry`` (ISO 8601), also when the current version's expiry is not
        that one: the switch starts from the expiry IAM holds, not only from a record's."""

    def mfa_serial(self, principal: Principal) -> str | None: ...

    def drawbridge_policies(self) -> list[tuple[str, str, int]]:
        """Every grant policy Drawbridge made: (request id, policy ARN, attachment count)."""

    def attached_principals(self, policy_arn: str) -> list[Principal] | None:
        """Who holds the policy; None if it no longer exists."""
    def revoke_from(self, principal: Principal, request_id: str) -> None: ...
    def remove_policy(self, request_id: str, principals: list[Principal]) -> None: ...


class SessionCuts(Protocol):
    """The cut-off policy of a JIT role (``/drawbridge/drawbridge-session-cutoffs-<RoleName>``
    in the role's account, chalicelib/cutoff.py), reached through that account's revoker
    role. A role is named by its ARN. ``CutOffsUnavailable`` when the account has no revoker
    or the role no cut-off policy (the member template is not deployed there)."""

    def role_id(self, role_arn: str) -> str:
        """The role's unique id (``AROA...``): what ``aws:userid`` starts with."""

    def read(self, role_arn: str) -> dict:
        """The cut-off policy's default version, as a document."""

    def write(self, role_arn: str, document: dict) -> None:
        """Make ``document`` the default version; when the policy already holds the five
        versions IAM allows, the oldest one that is not the default is deleted first."""


class Notifier(Protocol):
    def post(self, channel: str, text: str, blocks: list[dict] | None, event_type: str, payload: dict,
             thread_ts: str | None = None) -> tuple[str, str]: ...
    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None, event_type: str,
               payload: dict) -> None: ...
    def try_post(self, channel: str, text: str, blocks: list[dict] | None, event_type: str,
                 payload: dict) -> tuple[str, str]:
        """``post`` that does not wait out Slack's rate limit: ``RateLimited`` (with the
        ``Retry-After``) at once when Slack refuses it; nothing was posted then."""
    def try_update(self, channel: str, ts: str, text: str, blocks: list[dict] | None, event_type: str,
                   payload: dict) -> None:
        """``update`` that raises ``RateLimited`` at once on a 429 (nothing changed)."""
    def delete(self, channel: str, ts: str) -> None:
        """Remove one of our own messages; already gone is done."""

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        """A message only ``user`` sees in ``channel``; ``NotInChannel`` when Slack will not
        show it there (the bot or the person is not a member, the channel is archived)."""

    def find(self, channel: str, event_type: str | None, match: dict) -> tuple[str, str] | None:
        """A recent top-level message we posted to ``channel`` (a user id means their DM)
        whose metadata has ``event_type`` (None: any) and every key/value of ``match`` - to learn that a
        post whose answer was lost did land. (channel, ts), or None."""
    def dm(self, user: str, text: str, blocks: list[dict] | None, event_type: str,
           payload: dict) -> tuple[str, str]: ...
    def upload_files(self, channel: str, thread_ts: str, files: Sequence[tuple[str, str]]) -> list[str]:
        """Share text files ((file name, content) pairs) as one reply in the thread
        ``thread_ts`` of ``channel`` (a channel or DM id, not a user id): Slack's
        files.getUploadURLExternal, the upload, files.completeUploadExternal. Their file ids."""
    def thread_file_names(self, channel: str, thread_ts: str) -> set[str]:
        """The names of the files shared in the thread ``thread_ts`` of ``channel``
        (``conversations.replies``): what an earlier attempt's upload left there, when its
        answer was lost."""
    def publish_home(self, user_id: str, view: dict) -> None:
        """Make ``view`` (``{"type": "home", "blocks": [...]}``) the person's App Home
        (``views.publish``): it replaces the whole view, so publishing again is harmless."""
    def open_view(self, trigger_id: str, view: dict) -> None:
        """Open ``view`` (``{"type": "modal", ...}``) for whoever made ``trigger_id``
        (``views.open``): within 3 seconds of it, once. ``ViewNotOpened`` (with Slack's error,
        e.g. ``expired_trigger_id``) when Slack refuses; nothing opened then."""


class UserGroups(Protocol):
    def members(self, handle: str) -> frozenset[str] | None:
        """The Slack user ids in the enabled user group ``handle`` (without the ``@``), or
        None when that cannot be known: no such group, or Slack failed. Never raises: a
        group that cannot be resolved supplies no approvers (fail closed). May be cached
        briefly (the Slack adapter: a minute)."""

    def channel_members(self, channel: str) -> frozenset[str] | None:
        """The Slack user ids in ``channel`` (the security channel: who may read any grant's
        activity), or None when that cannot be known. Never raises; cached like groups."""
