"""Drawbridge's use cases: the one place that sequences I/O.

Two halves, so that Slack's 3 seconds never wait on IAM:

* the **ack path** (``command``, ``click``) reads the catalog and the table and
  makes at most one conditional write; it returns the reply plus *jobs*;
* **jobs** (``run``) do the slow part: Slack posts/updates/DMs and IAM. In
  Lambda they run in the async worker; elsewhere in-process before the HTTP
  response returns (docs/REFERENCE.md, handlers). Jobs are small JSON dicts that name a
  request id, and re-read the table, so a retried job converges instead of
  repeating itself.

The ``sweep`` (every minute) ends grants past expiry, expires stale pending
requests and retries grants or revocations that a crashed worker left behind.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Protocol

from . import policy as pol
from .domain.eligibility import approval_blocker
from .adapters.iam import GrantLimitReached
from .adapters.store import Conflict
from .domain import decide as rules
from .domain.duration import DurationError, DurationTooLong, format_duration, parse_duration
from .domain.model import (
    Approval,
    GrantStatus,
    Request,
    RequestStatus,
    event_for,
    hhmm,
    iso_z,
    utc,
)
from .slack import views
from .slack.escape import escape_mrkdwn
from .slack.parse import (
    USAGE,
    Click,
    CommandError,
    HelpCmd,
    ListCmd,
    RequestCmd,
    RevokeCmd,
    SlashCommand,
    is_request_id,
    parse_command_text,
)

Job = dict
SYSTEM = "drawbridge"
MAX_GRANT_ATTEMPTS = 3
#: IAM is eventually consistent: a listing right after an attach may not show it yet. The
#: sweep's "policy vanished" check leaves a grant alone for this long after it was made
#: (one sweep period: the next sweep judges it).
IAM_SETTLE = timedelta(minutes=5)
_RETRIES = 5  # re-read-and-decide rounds after losing a conditional write


class Store(Protocol):
    def create(self, req, event) -> None: ...
    def transition(self, before, after, event) -> None: ...
    def get(self, request_id: str): ...
    def open_for(self, person: str) -> list: ...
    def due(self, now: datetime, limit: int = ...) -> list: ...
    def live(self) -> list: ...
    def save_card(self, request_id: str, channel: str, ts: str) -> bool: ...
    def card(self, request_id: str): ...
    def claim_message(self, request_id: str, kind: str) -> bool: ...
    def release_message(self, request_id: str, kind: str) -> None: ...


class Grants(Protocol):
    def grant(self, *, iam_user, request_id, document, description, tags) -> str: ...
    def revoke(self, *, iam_user, request_id) -> None: ...
    def mfa_serial(self, iam_user: str) -> str | None: ...


class Notifier(Protocol):
    def post(self, channel, text, blocks, event_type, payload, thread_ts=None) -> tuple[str, str]: ...
    def update(self, channel, ts, text, blocks, event_type, payload) -> None: ...
    def ephemeral(self, channel, user, text) -> None: ...
    def dm(self, user, text, blocks, event_type, payload) -> None: ...


@dataclass
class Reply:
    """What the slash command answers at once (ephemeral) and what happens after."""

    text: str
    jobs: list[Job] = field(default_factory=list)


@dataclass
class SweepReport:
    looked_at: int = 0
    drift: int = 0
    expired_grants: int = 0
    expired_requests: int = 0
    retried: int = 0
    errors: int = 0


def _card_job(request_id: str, event_type: str, payload: dict) -> Job:
    return {"job": "card", "request_id": request_id, "event_type": event_type, "payload": payload}


def _dm_job(request_id: str, event_type: str, payload: dict) -> Job:
    return {"job": "dm", "request_id": request_id, "event_type": event_type, "payload": payload}


def _security_job(text: str, event_type: str, payload: dict) -> Job:
    return {"job": "security", "text": text, "event_type": event_type, "payload": payload}


def granted_payload(req: Request) -> dict:
    return {"request_id": req.request_id, "requester": req.requester, "account": req.account,
            "role": req.role, "role_arn": req.role_arn, "expires_at": iso_z(req.expires_at),
            "approvers": list(req.approvers)}


def card_event(req: Request, job: Job) -> tuple[str, dict]:
    """The card's metadata for the record's *current* state (docs/REFERENCE.md, metadata).

    The job's own event type and payload are kept when they still describe the record
    (e.g. ``access_approved`` with the approver who clicked); otherwise they are derived
    from the record, so the metadata never disagrees with the card's text.
    """
    rid, g = req.request_id, req.grant_status
    if g is GrantStatus.ACTIVE:
        event_type, payload = "access_granted", granted_payload(req)
    elif g in (GrantStatus.REVOKING, GrantStatus.REVOKED, GrantStatus.FAILED):
        by = None if req.ended_by == SYSTEM else req.ended_by  # person keys only (docs/REFERENCE.md)
        event_type, payload = "access_revoked", {"request_id": rid, "revoked_by": by, "reason": req.note}
    elif g is GrantStatus.EXPIRED or req.status is RequestStatus.EXPIRED:
        event_type, payload = "access_expired", {"request_id": rid}
    elif req.status is RequestStatus.DENIED:
        event_type, payload = "access_denied", {"request_id": rid, "denied_by": req.decided_by}
    elif req.status is RequestStatus.CANCELLED:
        event_type, payload = "access_revoked", {"request_id": rid, "revoked_by": req.decided_by}
    elif req.approvals:  # PENDING with approvals, or APPROVED and GRANTING
        event_type, payload = "access_approved", {"request_id": rid, "approver": req.approvals[-1].person}
    else:
        event_type, payload = "access_requested", {
            "request_id": rid, "requester": req.requester, "account": req.account, "role": req.role,
            "duration_seconds": req.duration_seconds, "reason": req.reason}
    if job.get("event_type") == event_type:
        return event_type, job["payload"]
    return event_type, payload


class Drawbridge:
    def __init__(self, *, catalog, store: Store, grants: Grants, slack: Notifier,
                 clock: Callable[[], datetime], pending_window: timedelta = timedelta(hours=1),
                 max_open_per_user: int = pol.DEFAULT_MANAGED_POLICIES_PER_USER,
                 new_id: Callable[[datetime], str] | None = None):
        self.catalog = catalog
        self.store = store
        self.grants = grants
        self.slack = slack
        self._clock = clock
        self.pending_window = pending_window
        self.max_open_per_user = max_open_per_user
        self._new_id = new_id or (lambda now: f"req-{now:%Y%m%d}-{secrets.token_hex(3)}")

    def now(self) -> datetime:
        return utc(self._clock())

    @property
    def _people(self) -> dict[str, str]:
        return {k: p.slack_user for k, p in self.catalog.people.items()}

    def _role(self, req: Request):
        try:
            return self.catalog.find_role(req.account, req.role)
        except LookupError:
            return None

    # ==== ack path: slash commands ===================================================
    def command(self, cmd: SlashCommand) -> Reply:
        person = self.catalog.person_by_slack(cmd.user_id)
        try:
            parsed = parse_command_text(cmd.text)
        except CommandError as exc:
            return Reply(str(exc))
        if person is None:
            return Reply(f"You are not in the Drawbridge catalog (Slack user `{cmd.user_id}`); "
                         "ask an admin to add you to `policies/access.toml`.")
        if isinstance(parsed, HelpCmd):
            return Reply(views.help_text(person.key, self.catalog.requestable_by(person.key), USAGE))
        if isinstance(parsed, ListCmd):
            now = self.now()
            return Reply(views.list_text(self.store.open_for(person.key), now,
                                         waiting=self._waiting_for(person.key, now)))
        if isinstance(parsed, RevokeCmd):
            return self._revoke(person.key, parsed.request_id)
        return self._request(person, parsed)

    def _request(self, person, cmd: RequestCmd) -> Reply:
        try:
            role = self.catalog.find_role(cmd.account, cmd.role)
        except LookupError as exc:
            return Reply(str(exc.args[0] if exc.args else exc))
        if person.key not in role.requesters:
            return Reply(f"you may not request `{role.label}`; see `/aws-access help` for what you may request")
        if (blocked := approval_blocker(role, person.key)) is not None:
            return Reply(blocked)  # nobody could ever approve it: no card, nothing stored
        try:
            seconds = parse_duration(cmd.duration)
        except DurationTooLong:
            seconds = role.max_duration_seconds + 1  # say the role's cap, not the parser's
        except DurationError as exc:
            return Reply(str(exc))
        if seconds > role.max_duration_seconds:
            return Reply(f"{role.label} allows at most {format_duration(role.max_duration_seconds)}")
        if role.reason_required and not cmd.reason.strip():
            kind = "production requests" if role.production else f"{role.label} requests"
            return Reply(f"{kind} need a reason: `/aws-access {cmd.account} {cmd.role} {cmd.duration} &lt;reason&gt;`")
        open_reqs = self.store.open_for(person.key)
        same = [r for r in open_reqs if r.role_arn == role.role_arn]
        if same:
            r = same[0]
            state = (f"active until {hhmm(r.expires_at)}" if r.grant_status is GrantStatus.ACTIVE
                     else r.status.value.lower() if r.status is RequestStatus.PENDING
                     else r.grant_status.value.lower())
            return Reply(f"you already have `{r.request_id}` for `{role.label}` ({state}); "
                         f"revoke it first with `/aws-access revoke {r.request_id}`")
        if len(open_reqs) >= self.max_open_per_user:
            return Reply(f"you already have {len(open_reqs)} pending or active requests, the most one "
                         f"person may hold at once ({self.max_open_per_user}, IAM's managed-policy "
                         "limit per user); revoke one first")
        now = self.now()
        for _ in range(_RETRIES):
            req = Request(
                request_id=self._new_id(now), requester=person.key, requester_slack=person.slack_user,
                iam_user=person.iam_user, account=role.account_key, account_id=role.account_id,
                role=role.key, role_arn=role.role_arn, production=role.production,
                duration_seconds=seconds, reason=cmd.reason.strip(),
                approvals_required=role.approvals_required, created_at=now,
                pending_until=now + self.pending_window,
            )
            try:
                self.store.create(req, event_for(None, req, at=now, actor=person.key,
                                                 action="requested", reason=req.reason))
                break
            except Conflict:
                continue  # id collision: draw another
        else:
            raise RuntimeError("could not allocate a request id")
        payload = {"request_id": req.request_id, "requester": req.requester, "account": req.account,
                   "role": req.role, "duration_seconds": req.duration_seconds, "reason": req.reason}
        approvers = ", ".join(f"@{a}" for a in role.approvers if a != person.key or role.self_approval)
        text = (f"Request `{req.request_id}` for `{role.label}` ({format_duration(seconds)}) is waiting "
                f"for approval in <#{self.catalog.approvals_channel}>: needs {role.approvals_required} "
                f"of {approvers}. I'll DM you when access is granted.")
        return Reply(text, [_card_job(req.request_id, "access_requested", payload)])

    def _waiting_for(self, person: str, now: datetime) -> list[Request]:
        """Pending requests this person could approve right now (the same decision a click
        would get). Only people who approve some role pay for the query."""
        if not any(person in r.approvers for r in self.catalog.roles()):
            return []
        return [r for r in self.store.live() if r.status is RequestStatus.PENDING
                and rules.decide_approval(r, self._role(r), person, now).allowed]

    def _revoke(self, actor: str, request_id: str) -> Reply:
        for _ in range(_RETRIES):
            req = self.store.get(request_id)
            if req is None:
                return Reply(f"unknown request `{request_id}` (see `/aws-access list`)")
            now = self.now()
            decision = rules.decide_revoke(req, self._role(req), actor, now)
            if decision.outcome is rules.Outcome.REFUSED:
                return Reply(decision.reason)
            if decision.outcome is rules.Outcome.CANCEL:
                after = req.change(status=RequestStatus.CANCELLED, decided_by=actor, decided_at=now)
                action = "cancelled"
            else:
                after = req.change(grant_status=GrantStatus.REVOKING, ended_by=actor, ended_at=now)
                action = "revoke_requested"
            try:
                self.store.transition(req, after, event_for(req, after, at=now, actor=actor,
                                                            action=action, reason=decision.reason))
            except Conflict:
                continue
            payload = {"request_id": request_id, "revoked_by": actor}
            if decision.outcome is rules.Outcome.CANCEL:
                jobs = [_card_job(request_id, "access_revoked", payload)]
                if actor != req.requester:
                    jobs.append(_dm_job(request_id, "access_revoked", payload))
                return Reply(f"Cancelled `{request_id}` (`{req.label}`).", jobs)
            return Reply(f"Revoking `{request_id}` (`{req.label}`) now; the card and a DM will confirm.",
                         [{"job": "end_grant", "request_id": request_id}])
        return Reply(f"`{request_id}` is changing too fast; try again")

    # ==== ack path: button clicks ====================================================
    def click(self, click: Click) -> list[Job]:
        def tell(text: str) -> list[Job]:
            return [{"job": "ephemeral", "channel": click.channel_id, "user": click.user_id, "text": text}]

        if click.action_id not in (views.APPROVE, views.DENY):
            return tell("That button is not one Drawbridge knows; nothing was changed.")
        if not is_request_id(click.request_id):
            return tell("That button does not carry a valid request id; nothing was changed.")
        person = self.catalog.person_by_slack(click.user_id)
        clicker = person.key if person else None
        for _ in range(_RETRIES):
            req = self.store.get(click.request_id)
            if req is None:
                return tell(f"Unknown request `{click.request_id}`; nothing was changed.")
            now = self.now()
            decide = rules.decide_approval if click.action_id == views.APPROVE else rules.decide_deny
            decision = decide(req, self._role(req), clicker, now)
            o = rules.Outcome
            if decision.outcome is o.REFUSED:
                reason = decision.reason
                if not reason.startswith("req-"):
                    reason = reason[:1].upper() + reason[1:]
                return tell(reason + ".")
            if decision.outcome is o.DENIED:
                after = req.change(status=RequestStatus.DENIED, decided_by=clicker, decided_at=now)
                action = "denied"
            else:
                approvals = req.approvals + (Approval(person=clicker, at=now),)
                if decision.outcome is o.APPROVED:
                    after = req.change(approvals=approvals, status=RequestStatus.APPROVED,
                                       grant_status=GrantStatus.GRANTING, decided_by=clicker,
                                       decided_at=now, expires_at=now + req.duration)
                else:
                    after = req.change(approvals=approvals)
                action = "approved"
            try:
                self.store.transition(req, after, event_for(req, after, at=now, actor=clicker,
                                                            action=action, reason=decision.reason))
            except Conflict:
                continue  # somebody else clicked first: re-read and decide again
            if decision.outcome is o.DENIED:
                payload = {"request_id": req.request_id, "denied_by": clicker}
                return [_card_job(req.request_id, "access_denied", payload),
                        _dm_job(req.request_id, "access_denied", payload)]
            jobs = [_card_job(req.request_id, "access_approved",
                              {"request_id": req.request_id, "approver": clicker})]
            if decision.outcome is o.APPROVED:
                jobs.append({"job": "grant", "request_id": req.request_id})
            return jobs
        return tell(f"`{click.request_id}` is changing too fast; try again.")

    # ==== jobs ========================================================================
    def run_all(self, jobs: Iterable[Job], on_error: Callable[[Job, Exception], None] | None = None) -> None:
        """Run jobs and the jobs they produce, in order. One failure does not stop the rest."""
        queue = list(jobs)
        while queue:
            job = queue.pop(0)
            try:
                queue[0:0] = self.run(job)
            except Exception as exc:  # noqa: BLE001 - reported, the sweep repairs
                if on_error is None:
                    raise
                on_error(job, exc)

    def run(self, job: Job) -> list[Job]:
        kind = job.get("job")
        handler = {
            "card": self._job_card,
            "dm": self._job_dm,
            "ephemeral": self._job_ephemeral,
            "grant": self._job_grant,
            "end_grant": self._job_end_grant,
            "security": self._job_security,
        }.get(kind)
        if handler is None:
            raise ValueError(f"unknown job {kind!r}")
        return handler(job) or []

    def _job_security(self, job: Job) -> None:
        self.slack.post(self.catalog.security_channel, job["text"], None, job["event_type"], job["payload"])

    def _job_ephemeral(self, job: Job) -> None:
        self.slack.ephemeral(job["channel"], job["user"], job["text"])

    def _job_card(self, job: Job) -> None:
        """Post the card, or update it in place, from the table's current record."""
        rid = job["request_id"]
        for _ in range(3):
            req = self.store.get(rid)
            if req is None:
                return
            role = self._role(req)
            text, blocks = views.card(req, self._people, role.approvers if role else ())
            # The metadata follows the record too, not the job. A job that runs
            # late (a re-invoked worker, or racing a revoke) would otherwise put e.g.
            # access_granted on a card whose text says revoked.
            event_type, payload = card_event(req, job)
            ref = self.store.card(rid)
            if ref is None:
                channel, ts = self.slack.post(self.catalog.approvals_channel, text, blocks,
                                              event_type, payload)
                self.store.save_card(rid, channel, ts)
            else:
                self.slack.update(ref[0], ref[1], text, blocks, event_type, payload)
            latest = self.store.get(rid)
            if latest is None or latest.version == req.version:
                return  # the card shows the latest state

    def _job_dm(self, job: Job) -> None:
        req = self.store.get(job["request_id"])
        if req is None:
            return
        event_type = job["event_type"]
        if event_type == "access_granted":
            if req.grant_status is not GrantStatus.ACTIVE:
                # A late "granted" DM (re-invoked worker, or the grant was revoked
                # or failed meanwhile) says nothing; the ending's own DM tells the truth.
                return
            text, blocks = views.granted_dm(req, self.catalog.bastion_account_id)
        else:
            text, blocks = views.ended_dm(req, self._people), None
        # One DM of each kind per request, however often the job runs (Lambda
        # may deliver the worker's event twice). Claimed before posting, released if it fails.
        if not self.store.claim_message(req.request_id, f"dm:{event_type}"):
            return
        try:
            self.slack.dm(req.requester_slack, text, blocks, event_type, job["payload"])
        except Exception:
            self.store.release_message(req.request_id, f"dm:{event_type}")
            raise

    def _job_grant(self, job: Job) -> list[Job]:
        rid = job["request_id"]
        req = self.store.get(rid)
        if req is None or req.grant_status is not GrantStatus.GRANTING:
            return []  # already granted, failed or ended: a retried job does nothing
        now = self.now()
        if now >= req.expires_at:
            return self._fail_grant(req, "the grant could not be applied before it would have expired")
        document = pol.grant_policy(req.role_arn, req.expires_at, rid)
        try:
            arn = self.grants.grant(
                iam_user=req.iam_user, request_id=rid, document=document,
                description=pol.description(rid, req.requester, req.label, req.expires_at),
                tags={"drawbridge:request-id": rid, "drawbridge:expires-at": iso_z(req.expires_at),
                      "drawbridge:requester": req.requester},
            )
        except GrantLimitReached as exc:
            return self._fail_grant(req, str(exc))
        except Exception as exc:
            self._note_attempt(req, exc)
            raise
        after = req.change(grant_status=GrantStatus.ACTIVE, granted_at=now, policy_arn=arn,
                           mfa_serial=self._mfa_serial(req))
        try:
            self.store.transition(req, after, event_for(req, after, at=now, actor=SYSTEM,
                                                        action="granted", reason=f"policy {arn}"))
        except Conflict:
            return []  # another worker finished the same grant
        payload = granted_payload(after)
        return [_card_job(rid, "access_granted", payload), _dm_job(rid, "access_granted", payload)]

    def _mfa_serial(self, req: Request) -> str | None:
        """The MFA device the DM's CLI profile names: the catalog's ``mfa_serial`` for the
        person if set, else the device IAM lists for the user. Best effort: the grant
        stands without it (the DM then says to fill in the serial)."""
        person = self.catalog.people.get(req.requester)
        if person is not None and person.mfa_serial:
            return person.mfa_serial
        try:
            return self.grants.mfa_serial(req.iam_user)
        except Exception:  # noqa: BLE001 - a nicety for the DM, never a reason to fail a grant
            return None

    def _note_attempt(self, req: Request, exc: Exception) -> None:
        now = self.now()
        attempts = req.grant_attempts + 1
        note = f"{type(exc).__name__}: {exc}"[:300]
        if attempts >= MAX_GRANT_ATTEMPTS:
            self.run_all(self._fail_grant(req, note, grant_attempts=attempts))
            return
        after = req.change(grant_attempts=attempts, note=note)
        try:
            self.store.transition(req, after, event_for(req, after, at=now, actor=SYSTEM,
                                                        action="grant_attempt_failed", reason=note))
        except Conflict:
            pass

    def _fail_grant(self, req: Request, why: str, **extra) -> list[Job]:
        now = self.now()
        after = req.change(grant_status=GrantStatus.FAILED, ended_at=now, ended_by=SYSTEM, note=why,
                           **extra)
        try:
            self.store.transition(req, after, event_for(req, after, at=now, actor=SYSTEM,
                                                        action="grant_failed", reason=why))
        except Conflict:
            return []
        # Make sure nothing of a half-made grant is left in IAM.
        # Best effort. If IAM fails here too (it is often why the grant failed),
        # the card, the DM and #security must still be told; the policy, if any, no longer has
        # a live record, so the next sweep's reconcile removes it (and reports it).
        try:
            self.grants.revoke(iam_user=req.iam_user, request_id=req.request_id)
        except Exception as exc:  # noqa: BLE001
            why = f"{why} (removing what was made failed too: {type(exc).__name__}; the sweep removes it)"
        # Nobody revoked it: no person key (metadata keys name people), the reason says why.
        payload = {"request_id": req.request_id, "revoked_by": None, "reason": why}
        return [_card_job(req.request_id, "access_revoked", payload),
                _dm_job(req.request_id, "access_revoked", payload),
                _security_job(f":x: Grant {req.request_id} ({req.requester} → `{req.label}`) failed and "
                              f"was not applied: {escape_mrkdwn(why)}", "grant_failed",
                              {"request_id": req.request_id, "reason": why})]

    def _job_end_grant(self, job: Job) -> list[Job]:
        """Remove the grant from IAM, then record REVOKED (asked for) or EXPIRED (time is up)."""
        req = self.store.get(job["request_id"])
        if req is None:
            return []
        now = self.now()
        if req.grant_status is GrantStatus.REVOKING:
            to, action, event_type = GrantStatus.REVOKED, "revoked", "access_revoked"
            payload = {"request_id": req.request_id, "revoked_by": req.ended_by}
            changes = {}
        elif req.grant_status is GrantStatus.ACTIVE and now >= req.expires_at:
            to, action, event_type = GrantStatus.EXPIRED, "expired", "access_expired"
            payload = {"request_id": req.request_id}
            changes = {"ended_at": now, "ended_by": SYSTEM}
        else:
            return []
        strangers = self.grants.revoke(iam_user=req.iam_user, request_id=req.request_id) or []
        after = req.change(grant_status=to, **changes)
        try:
            self.store.transition(req, after, event_for(req, after, at=now, actor=req.ended_by or SYSTEM,
                                                        action=action))
        except Conflict:
            return []  # someone else recorded the end; IAM removal above is idempotent
        jobs = [_card_job(req.request_id, event_type, payload), _dm_job(req.request_id, event_type, payload)]
        if strangers:  # the grant had been copied to other users by hand: taken back, and said
            jobs.append(_security_job(
                f":warning: Drift: grant {req.request_id} (`{req.label}`) was also attached to "
                f"{', '.join(strangers)}; removed from them as it ended.", "grant_drift",
                {"request_id": req.request_id, "users": strangers, "state": f"record {to.value}"}))
        return jobs

    # ==== sweep =======================================================================
    def sweep(self, on_error: Callable[[Job, Exception], None] | None = None) -> SweepReport:
        now = self.now()
        report = SweepReport()
        for req in self.store.due(now):
            report.looked_at += 1
            try:
                jobs = self._sweep_one(req, now, report)
                self.run_all(jobs, on_error)
            except Exception as exc:  # noqa: BLE001 - one bad item must not stop the sweep
                report.errors += 1
                if on_error is None:
                    raise
                on_error({"job": "sweep", "request_id": req.request_id}, exc)
        try:
            jobs = self.reconcile(report)
            self.run_all(jobs, on_error)
        except Exception as exc:  # noqa: BLE001 - reconcile again next minute
            report.errors += 1
            if on_error is None:
                raise
            on_error({"job": "reconcile"}, exc)
        return report

    def reconcile(self, report: SweepReport | None = None, deep: bool | None = None) -> list[Job]:
        """Make IAM and the table agree; report every difference to the security channel.

        * a Drawbridge policy (``/drawbridge/drawbridge-<id>``) whose request is not a live
          grant - restored, copied by hand, or left by a crash - is detached and deleted;
        * a live grant's policy also attached to somebody else is taken back from them;
        * an ACTIVE grant whose policy is no longer attached is marked FAILED.
        Policies Drawbridge did not create are never looked at, let alone touched.

        Cost per sweep: ``ListPolicies`` (one page per 100 grants); who holds a policy is
        asked only when its attachment count is off, and for every grant on a *deep* pass
        (each quarter hour), which also catches a grant moved to another single user.
        """
        report = report or SweepReport()
        now = self.now()
        deep = now.minute % 15 == 0 if deep is None else deep
        jobs: list[Job] = []
        live = {r.request_id: r for r in self.store.live()}
        held: dict[str, bool] = {}  # request id -> its owner holds the policy
        for rid, arn, count in self.grants.drawbridge_policies():
            req = live.get(rid) or self.store.get(rid)
            if req is not None and req.grant_status in (GrantStatus.GRANTING, GrantStatus.REVOKING):
                continue  # in flight: the grant / end_grant jobs own it
            active = req is not None and req.grant_status is GrantStatus.ACTIVE
            if active and (count == 0 or (count == 1 and not deep)):
                held[rid] = count == 1
                continue
            users = self.grants.attached_users(arn)
            state = "no record" if req is None else f"record {req.grant_status.value}"
            if active:
                held[rid] = req.iam_user in users
                strangers = [u for u in users if u != req.iam_user]
                if not strangers:
                    continue  # as it should be
                for user in strangers:  # copied to somebody else: take it back from them only
                    self.grants.revoke_from(user, rid)
                what = f"also attached to {', '.join(strangers)}; detached from them"
            else:
                self.grants.remove_policy(rid, users)
                what = f"attached to {', '.join(users) or 'nobody'} with {state}; removed"
            report.drift += 1
            jobs.append(_security_job(f":warning: Drift: Drawbridge policy `{arn}` was {what}.",
                                      "grant_drift",
                                      {"request_id": rid, "policy_arn": arn, "users": users, "state": state}))
        for req in live.values():
            if req.grant_status is not GrantStatus.ACTIVE or now >= req.expires_at:
                # An ACTIVE grant past its expiry is the due loop's (end_grant records EXPIRED,
                # every minute until it succeeds). If its removal was interrupted after IAM let
                # go, the policy is gone on purpose: not "vanished".
                continue
            if req.granted_at is not None and now - req.granted_at < IAM_SETTLE:
                continue  # too fresh to trust a listing without it (see IAM_SETTLE)
            if held.get(req.request_id, False):
                continue
            report.drift += 1
            jobs.extend(self._fail_grant(req, "the grant's IAM policy vanished (removed outside Drawbridge)"))
        return jobs

    def _sweep_one(self, req: Request, now: datetime, report: SweepReport) -> list[Job]:
        rid = req.request_id
        if req.status is RequestStatus.PENDING and now >= req.pending_until:
            after = req.change(status=RequestStatus.EXPIRED, decided_by=SYSTEM, decided_at=now)
            try:
                self.store.transition(req, after, event_for(
                    req, after, at=now, actor=SYSTEM, action="expired",
                    reason=f"not approved within {format_duration(int(self.pending_window.total_seconds()))}"))
            except Conflict:
                return []
            report.expired_requests += 1
            payload = {"request_id": rid}
            return [_card_job(rid, "access_expired", payload), _dm_job(rid, "access_expired", payload)]
        if req.grant_status is GrantStatus.ACTIVE and now >= req.expires_at:
            report.expired_grants += 1
            return [{"job": "end_grant", "request_id": rid}]
        if req.grant_status is GrantStatus.GRANTING:
            report.retried += 1
            return [{"job": "grant", "request_id": rid}]
        if req.grant_status is GrantStatus.REVOKING:
            report.retried += 1
            return [{"job": "end_grant", "request_id": rid}]
        return []
