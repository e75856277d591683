"""Use case: break-glass (``/aws-access breakglass <account> <role> <duration> <reason>``).

Two steps, so that nothing happens by a slip of the keyboard:

1. The command changes nothing. It runs every check (``decide_break_glass``: the catalog
   lists the person in the role's ``break_glass``, the duration is within
   ``break_glass_max``, the reason is a sentence, the per-person limits) and answers
   privately with what a Confirm would do, and the Confirm button. The button carries what
   the person typed, never state.
2. The Confirm click re-reads and re-decides everything as the clicker, at click time, then
   makes the record in one conditional write, already APPROVED/GRANTING with no approvals
   and a ``break_glass`` audit event. What it owes follows it: the loud card in the
   approvals channel, ``break_glass_used`` in #security, and the grant. From there it is an
   ordinary grant (same policy, expiry, revoke and session cut-off); its review by the
   role's approvers is in :mod:`chalicelib.usecases.review`.

One Confirm button makes at most one grant, ever: the preview gives the button a one-time
nonce, the person's Slack id and the time it was issued (Drawbridge's clock), and the
record's id is derived from the person and the nonce. A second click of the same button
(a double click, or after the first grant was revoked, expired or failed) writes the same
id and loses, and is answered with what the first made; it never tries another id. The
Confirm counts for 15 minutes from the preview. Two different previews confirmed at once
are left to the same-role-open rule (as two requests typed at once are).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..domain.decide import decide_break_glass
from ..domain.errors import Conflict
from ..domain.model import Request, iso_z, parse_iso
from ..slack.parse import BreakGlassCmd, Click, is_request_id
from ..slack.views import ACK_BREAK_GLASS, CONFIRM_BREAK_GLASS, FLAG_BREAK_GLASS
from . import jobs
from .commands import admit
from .delivery import owed
from .deps import Deps
from .outcomes import (Answer, BadButtonValue, BreakGlassPreview, BrokeGlass, Outcome, Refused, UnknownButton,
                       WrongWorkspace)

#: the buttons (and the text input) of break-glass and its review
ACTIONS = (CONFIRM_BREAK_GLASS, ACK_BREAK_GLASS, FLAG_BREAK_GLASS)
#: a Confirm clicked longer than this after its message was posted is refused: a stale
#: button left on screen must not grant the role by a later slip
CONFIRM_WINDOW = timedelta(minutes=15)
#: how far ahead of our clock an issue time may be (another Lambda's clock)
CLOCK_SKEW = timedelta(minutes=1)


def preview(deps: Deps, person, cmd: BreakGlassCmd) -> Answer:
    """Every check, and what a Confirm would do; no write, no job."""
    try:
        role = deps.catalog.find_role(cmd.account, cmd.role)
    except LookupError as exc:
        return Answer(Refused(str(exc.args[0] if exc.args else exc)))
    decision = decide_break_glass(person.key, role, cmd.duration, cmd.reason,
                                  deps.store.open_for(person.key), deps.max_open_per_user)
    if not decision.allowed:
        return Answer(Refused(decision.reason))
    confirm = json.dumps({"a": cmd.account, "r": cmd.role, "d": cmd.duration, "why": cmd.reason,
                          "u": person.slack_user, "n": uuid.uuid4().hex, "t": iso_z(deps.now())},
                         separators=(",", ":"), ensure_ascii=False)  # (300 characters of reason fit Slack's 2,000)
    return Answer(BreakGlassPreview(
        label=role.label, production=role.production, seconds=decision.seconds,
        until=deps.now() + timedelta(seconds=decision.seconds), reason=cmd.reason.strip(),
        approvers=tuple(a for a in deps.resolved(role).approvers if a != person.key),
        review_within_seconds=role.review_within_seconds, approvals_channel=deps.catalog.approvals_channel,
        security_channel=deps.catalog.security_channel, confirm=confirm))


@dataclass(frozen=True)
class Confirmation:
    """What a Confirm button carries: the command as typed, and the button's identity (for
    whom, a one-time nonce, and when the preview issued it, by Drawbridge's clock)."""

    cmd: BreakGlassCmd
    user_id: str
    nonce: str
    issued_at: datetime

    @property
    def request_id(self) -> str:
        """The one request this button can ever make."""
        digest = hashlib.sha256(f"{self.user_id}|{self.nonce}".encode()).hexdigest()
        return f"req-{self.issued_at:%Y%m%d}-{digest[:6]}"


_NONCE = re.compile(r"[0-9a-f]{32}", re.ASCII)


def confirmation(value: str) -> Confirmation | None:
    """The Confirm button's value read back; None if it is not one Drawbridge made."""
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("a", "r", "d", "why", "u", "n",
                                                                                    "t")):
        return None
    if not _NONCE.fullmatch(data["n"]):
        return None
    try:
        issued = parse_iso(data["t"])
    except ValueError:
        return None
    cmd = BreakGlassCmd(account=data["a"].lower(), role=data["r"].lower(), duration=data["d"], reason=data["why"])
    return Confirmation(cmd, data["u"], data["n"], issued)


def confirmed_command(value: str) -> BreakGlassCmd | None:
    """The command a Confirm button carries (what the person typed); None if it is not one."""
    found = confirmation(value)
    return found.cmd if found else None


def flagged_request(click: Click) -> str:
    """The request a flag is about: its text input's block is ``flag:<request-id>``."""
    prefix, _, rid = click.block_id.partition(":")
    return rid if prefix == "flag" else ""


def admit_click(deps: Deps, click: Click) -> Outcome | None:
    """What can be refused before the table is touched (as approve.admit_click does)."""
    if isinstance(refused := admit(deps, click.team_id, click.api_app_id, click.user_id), WrongWorkspace):
        return refused
    if click.action_id not in ACTIONS:
        return UnknownButton()
    if click.action_id == CONFIRM_BREAK_GLASS and confirmed_command(click.request_id) is None:
        return BadButtonValue()
    if click.action_id == ACK_BREAK_GLASS and not is_request_id(click.request_id):
        return BadButtonValue()
    if click.action_id == FLAG_BREAK_GLASS and not is_request_id(flagged_request(click)):
        return BadButtonValue()
    if refused is not None:  # not in the catalog
        return Refused("you are not in the Drawbridge catalog, so you cannot use or review break-glass")
    return None


def decide_click(deps: Deps, click: Click) -> Answer:
    if (refused := admit_click(deps, click)) is not None:
        return Answer(refused)
    if click.action_id == CONFIRM_BREAK_GLASS:
        return confirm(deps, click)
    from .review import review_click

    return review_click(deps, click)


def confirm(deps: Deps, click: Click) -> Answer:
    """The Confirm click: decide again as the clicker, now; make the record in one write."""
    person = deps.catalog.person_by_slack(click.user_id)
    found = confirmation(click.request_id)
    if person is None or found is None:
        return Answer(BadButtonValue())
    if found.user_id != click.user_id:
        return Answer(Refused("this Confirm is someone else's; run `/aws-access breakglass ...` yourself"))
    now = deps.now()
    if not now - CONFIRM_WINDOW <= found.issued_at <= now + CLOCK_SKEW:
        return Answer(Refused(f"this Confirm is more than {CONFIRM_WINDOW.seconds // 60} minutes old, so it no "
                              "longer counts; run `/aws-access breakglass ...` again if you still need it"))
    cmd = found.cmd
    try:
        role = deps.catalog.find_role(cmd.account, cmd.role)
    except LookupError as exc:
        return Answer(Refused(str(exc.args[0] if exc.args else exc)))
    rid = found.request_id
    if (earlier := deps.store.get(rid)) is not None:
        return Answer(Refused(_used(earlier, person.key)))
    decision = decide_break_glass(person.key, role, cmd.duration, cmd.reason,
                                  deps.store.open_for(person.key), deps.max_open_per_user)
    if not decision.allowed:
        return Answer(Refused(decision.reason))
    req, event = Request.broke_glass(
        now, request_id=rid, requester=person.key, requester_slack=person.slack_user,
        principal=person.principal, account=role.account_key, account_id=role.account_id, role=role.key,
        role_arn=role.role_arn, production=role.production, duration_seconds=decision.seconds,
        reason=" ".join(cmd.reason.split()), review_due_at=now + timedelta(seconds=role.review_within_seconds))
    used = {"request_id": rid, "requester": req.requester, "account": req.account, "role": req.role,
            "role_arn": req.role_arn, "expires_at": iso_z(req.expires_at), "reason": req.reason}
    follow: list[jobs.Job] = [
        jobs.Card(rid, "access_approved", {"request_id": rid, "approver": req.requester, "break_glass": True}),
        jobs.Security("break_glass_used", used),
        jobs.Grant(rid),
    ]
    try:
        deps.store.create(req, event, owed(follow))
    except Conflict:
        # The same button, clicked again at the same moment (or, once in 16 million, another
        # request's id): never another id - this button has made (or will make) its one grant.
        earlier = deps.store.get(rid)
        return Answer(Refused(_used(earlier, person.key) if earlier is not None else
                              "this Confirm was just used; see `/aws-access list`"))
    return Answer(BrokeGlass(req, deps.catalog.approvals_channel, deps.catalog.security_channel), follow)


def _used(earlier: Request, person: str) -> str:
    if earlier.requester != person or not earlier.break_glass:
        return "this Confirm cannot be used (its request id is taken); run `/aws-access breakglass ...` again"
    return (f"this Confirm was already used: it made `{earlier.request_id}` for `{earlier.label}` "
            f"({earlier.info.label}); one Confirm makes one grant - run `/aws-access breakglass ...` again if you "
            "still need access")
