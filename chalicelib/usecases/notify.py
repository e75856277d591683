"""Jobs that talk to people: the approval card, DMs, private answers, security notices.

Everything is rendered from the table's record *when the job runs* (``slack/views.py``),
never from what the job was told when it was queued: a late job says what is true now.
"""

from __future__ import annotations


from ..domain.lifecycle import GrantStatus, RequestStatus
from ..domain.model import SYSTEM, Request, iso_z
from ..slack import replies, views
from . import jobs
from .delivery import ONE_PER_REQUEST, deliver_once, dm_each, key_of, security_kind
from .deps import Deps


def granted_payload(req: Request) -> dict:
    return {"request_id": req.request_id, "requester": req.requester, "account": req.account,
            "role": req.role, "role_arn": req.role_arn, "expires_at": iso_z(req.expires_at),
            "approvers": list(req.approvers)}


def card_event(req: Request, job: jobs.Card) -> tuple[str, dict]:
    """The card's metadata for the record's *current* state (the state table's event type).

    The job's own payload is kept when its event type still describes the record (e.g.
    ``access_approved`` with the approver who clicked); otherwise the payload is derived
    from the record, so the metadata never disagrees with the card's text.
    """
    rid = req.request_id
    event_type = req.info.event_type
    if event_type == "access_requested" and req.approvals:
        event_type = "access_approved"  # pending, with approvals so far
    if event_type == "access_granted":
        payload = granted_payload(req)
    elif event_type == "access_revoked" and req.status is RequestStatus.CANCELLED:
        payload = {"request_id": rid, "revoked_by": req.decided_by}
    elif event_type == "access_revoked" and req.ended_by != SYSTEM:
        payload = {"request_id": rid, "revoked_by": req.ended_by}
    elif event_type == "access_revoked":  # ended by Drawbridge itself: no person, the reason says why
        payload = {"request_id": rid, "revoked_by": None, "reason": req.note}
    elif event_type == "access_expired":
        payload = {"request_id": rid}
    elif event_type == "access_denied":
        payload = {"request_id": rid, "denied_by": req.decided_by, **({"reason": req.note} if req.note else {})}
    elif event_type == "access_approved" and req.break_glass:  # no approvals: its requester decided
        payload = {"request_id": rid, "approver": req.decided_by, "break_glass": True}
    elif event_type == "access_approved":
        payload = {"request_id": rid, "approver": req.approvals[-1].person}
    else:
        payload = {"request_id": rid, "requester": req.requester, "account": req.account, "role": req.role,
                   "duration_seconds": req.duration_seconds, "reason": req.reason}
    if job.event_type == event_type:
        return event_type, job.payload
    return event_type, payload


def post_card(deps: Deps, job: jobs.Card) -> None:
    """Post the card, or update it in place, from the table's current record."""
    rid = job.request_id
    for _ in range(3):
        req = deps.store.get(rid)
        if req is None:
            deps.store.settle(rid, "card", 2**31)
            return
        role = deps.role_of(req)
        from ..domain.decide import deciders

        text, blocks = views.card(req, deps.people, deciders(req, role) if role else ())
        # The metadata follows the record too, not the job: a job that runs late (a
        # re-invoked worker, or racing a revoke) would otherwise put access_granted on a
        # card whose text says revoked.
        event_type, payload = card_event(req, job)
        ref = deps.store.card(rid)
        if ref is None:
            channel, ts = deliver_once(deps, rid, "card", channel=deps.catalog.approvals_channel, text=text,
                                       blocks=blocks, event_type=event_type, payload=payload,
                                       match={"request_id": rid}, any_event_type=True)
            if not deps.store.save_card(rid, channel, ts):
                # Another run of this job saved its card first: keep that one (it is the
                # one every later update finds), take ours back if it is another message,
                # and bring theirs up to date on the next round.
                if deps.store.card(rid) != (channel, ts):
                    deps.slack.delete(channel, ts)
                continue
        else:
            deps.slack.update(ref[0], ref[1], text, blocks, event_type, payload)
        latest = deps.store.get(rid)
        if latest is None or latest.version == req.version:
            deps.store.settle(rid, "card", req.version)
            return  # the card shows the latest state


def send_dm(deps: Deps, job: jobs.Dm) -> None:
    """Tell the requester, once per kind of message, however often the job runs."""
    key = key_of(job)
    req = deps.store.get(job.request_id)
    if req is None:
        deps.store.settle(job.request_id, key, 2**31)
        return
    if job.event_type == "access_granted" and req.grant_status is not GrantStatus.ACTIVE:
        # A late "granted" DM (re-invoked worker, or the grant was revoked or failed
        # meanwhile) says nothing; the ending's own DM tells the truth.
        deps.store.settle(req.request_id, key, req.version)
        return
    if job.event_type == "approval_escalated":
        if req.status is not RequestStatus.PENDING:
            deps.store.settle(req.request_id, key, 2**31)
            return
        deliver_once(deps, req.request_id, key, channel=req.requester_slack,
                     text=views.escalated_dm(req, job.payload, deps.people), blocks=None, event_type=job.event_type,
                     payload=job.payload, match={"request_id": req.request_id})
        deps.store.settle(req.request_id, key, 2**31)
        return
    if job.event_type == "access_approved":  # one approval of several (usecases/approve.py)
        if req.status is not RequestStatus.PENDING:  # decided meanwhile: its own DM says so
            deps.store.settle(req.request_id, key, 2**31)
            return
        deliver_once(deps, req.request_id, key, channel=req.requester_slack,
                     text=views.approval_counted_dm(req, job.payload, deps.people), blocks=None,
                     event_type=job.event_type, payload=job.payload,
                     match={"request_id": req.request_id, "approver": job.payload["approver"]})
        deps.store.settle(req.request_id, key, 2**31)
        return
    if job.event_type == "approvers_reminded":
        if req.status is not RequestStatus.PENDING:  # decided meanwhile: its own DM says so
            deps.store.settle(req.request_id, key, 2**31)
            return
        deliver_once(deps, req.request_id, key, channel=req.requester_slack,
                     text=views.reminded_dm(req, job.payload, deps.people), blocks=None, event_type=job.event_type,
                     payload=job.payload, match={"request_id": req.request_id, "reminder": job.payload["reminder"]})
        deps.store.settle(req.request_id, key, 2**31)
        return
    if job.event_type in EXTENSION_DMS:
        if req.grant_status is not GrantStatus.ACTIVE:
            # the grant ended meanwhile: its ending's DM tells the truth (a lapsed extension too)
            deps.store.settle(req.request_id, key, 2**31)
            return
        text = views.extension_dm(req.label, job.event_type, job.payload, deps.people)
        match = {"request_id": req.request_id, **({"expires_at": job.payload["expires_at"]}
                                                  if "expires_at" in job.payload else {"extension": int(job.tag or 0)})}
        deliver_once(deps, req.request_id, key, channel=req.requester_slack, text=text, blocks=None,
                     event_type=job.event_type, payload=job.payload, match=match)
        deps.store.settle(req.request_id, key, 2**31)
        return
    if job.event_type == "access_granted":
        text, blocks = views.granted_dm(req, deps.catalog.bastion_account_id, cut_offs=deps.cuts is not None,
                                        denied_before=_earlier_cut_off(deps, req))
    else:
        text, blocks = views.ended_dm(req, deps.people), None
    deliver_once(deps, req.request_id, key, channel=req.requester_slack, text=text, blocks=blocks,
                 event_type=job.event_type, payload=job.payload, match={"request_id": req.request_id})
    deps.store.settle(req.request_id, key, req.version)


def _earlier_cut_off(deps: Deps, req: Request):
    """When the person's sessions on this role stay denied by the cut-off of an earlier grant
    that ended moments ago (a revoke's cut-off reaches IAM_SETTLE past the detach): the
    bound, if it is after this grant began, else None. The DM says to assume after it."""
    if deps.cuts is None or req.granted_at is None:
        return None
    from ..cutoff import bound_of
    from ..domain.timing import IAM_SETTLE

    recent = deps.store.grants_ending_after(req.principal, req.granted_at - IAM_SETTLE - IAM_SETTLE)
    bounds = [bound_of(r.cut_before) for r in recent if r.request_id != req.request_id
              and r.role_arn == req.role_arn and r.cut_before is not None]
    latest = max(bounds, default=None)
    return latest if latest is not None and latest > req.granted_at else None


#: DMs about an extension (several per request: one of each per extension, ``Dm.tag``)
EXTENSION_DMS = ("access_extended", "extension_denied", "extension_failed")


def ask_approvers(deps: Deps, job: jobs.AskApprovers) -> None:
    """DM each approver of the role (as the catalog says now; the requester only where their
    own click would count) about extension ``job.extension``, with its buttons, each once. A
    DM is looked up before it is posted again, so a lost answer is not shown twice; an
    extension decided or lapsed meanwhile asks nobody."""
    from ..domain.decide import extension_approvers

    key = key_of(job)
    req = deps.store.get(job.request_id)
    ext = req.extension if req is not None else None
    role = deps.role_of(req) if req is not None else None
    if req is None or ext is None or ext.n != job.extension or ext.state != ext.PENDING or role is None \
            or req.grant_status is not GrantStatus.ACTIVE:
        deps.store.settle(job.request_id, key, 2**31)
        return
    text, blocks = views.extension_ask(req, deps.people, role.approvers)
    dm_each(deps, req, key, extension_approvers(req, role), text=text, blocks=blocks,
            event_type="extension_requested", payload={"request_id": req.request_id, "extension": ext.n},
            match={"extension": ext.n})
    deps.store.settle(req.request_id, key, 2**31)


#: the metadata event type of a private answer sent as a DM (a click in the App Home)
CLICK_ANSWER = "click_answer"


def send_ephemeral(deps: Deps, job: jobs.Ephemeral) -> None:
    """A private answer: ephemeral in its channel, else (a click in the App Home, the request
    form without a channel, or a channel Slack will not show it in: the bot is not a member
    of the channel the command was typed in) a DM."""
    from ..domain.errors import NotInChannel

    if job.channel:
        try:
            deps.slack.ephemeral(job.channel, job.user, job.text)
            return
        except NotInChannel:
            pass
    deps.slack.dm(job.user, job.text, None, CLICK_ANSWER, {"user": job.user})


def tell_security(deps: Deps, job: jobs.Security) -> None:
    rid = job.payload.get("request_id")
    req = deps.store.get(rid) if isinstance(rid, str) else None
    text = replies.security_text(job.event_type, job.payload, req)
    kind = security_kind(job)
    match = {"request_id": rid} if job.event_type in ONE_PER_REQUEST and "iam_users" not in job.payload \
        else dict(job.payload)
    deliver_once(deps, str(rid), kind, channel=deps.catalog.security_channel,
                 text=text, blocks=None, event_type=job.event_type, payload=job.payload, match=match)
    if isinstance(rid, str):
        deps.store.settle(rid, kind, req.version if req else 2**31)
