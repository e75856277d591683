"""The invariants every chaos run must hold once the faults are off and the sweep has run.

Checked on the final state only - the table (DynamoStore), IAM (boto3 on moto) and Slack
(the stand-in's recorded messages) - never on what the app said it did:

* **I1** one grant per request, on the requester only: a Drawbridge policy is attached to at
  most one IAM user, the request's own;
* **I2** IAM agrees with the table and no legitimately approved grant is lost: every ACTIVE
  record has its policy attached; every policy has a GRANTING/ACTIVE/REVOKING record; no grant
  Drawbridge made ended FAILED ("vanished") or was reported as drift while its record was not
  FAILED (nobody but Drawbridge touches IAM in these runs, so any such alarm is false);
* **I3** the audit history of each request has no repeated transition, its versions run 1..n
  with no gap, and each event starts where the previous one ended;
* **I4** each request's card exists and shows the record's final state (text, blocks and
  metadata as ``slack/views.card`` renders the record; ``harness.expected_card_event``);
* **I5** everyone was told, truthfully: a FAILED grant has a ``grant_failed`` notice in #security,
  its final card and a DM to the requester; a REVOKED or EXPIRED grant (and a denied or expired
  request) its final card and a DM; an ACTIVE grant the "granted" DM; every production
  AssumeRole call the scenario made an alert; no "granted" DM for a grant that never was;
* **I6** at most one message per fact per channel: one card per request, at most one DM per
  (request, event type), at most one ``role_assumed`` alert per CloudTrail call (``sharedEventID``
  or ``eventID``) and one "used" reply per call on the card, at most one ``grant_failed`` per
  request;
* **I7** nothing is stuck: no request is GRANTING or REVOKING after recovery, none is PENDING
  past its window or ACTIVE past its expiry;
* **I8** sessions end with the grant: every grant that ended after being ACTIVE has its
  cut-off in force at its role (the role's cut-off policy in the member account denies the
  person's sessions issued before the recorded end) and the record says when, unless every
  session it targets has expired; and no cut-off denies a session of a grant still ACTIVE
  issued after that grant began (a late or repeated cut never cuts a later, valid grant).
  At most one ``access_cut_failed`` per request.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from chalicelib.domain.model import GrantStatus, RequestStatus, iso_z

from .world import APPROVALS, SECURITY

INVARIANTS = {
    "I1": "one grant per request, attached to the requester only",
    "I2": "IAM agrees with the table (an ACTIVE grant's policy ends when its record does); no approved grant "
          "lost (no false drift / vanished alarm); no extension past the cap",
    "I3": "audit history: no repeated transition, versions contiguous",
    "I4": "each request has its card, showing the record's final state",
    "I5": "everyone told: FAILED -> #security + card + DM; ended -> card + DM; ACTIVE -> DM; each call alerted",
    "I6": "at most one message per fact per channel (card, DM kind, alert per call, grant_failed)",
    "I7": "nothing stuck: no GRANTING/REVOKING, nothing pending or active past its time",
    "I8": "ended grants' live sessions cut off at the role; no cut of a live grant's sessions",
}

ENDING_DM = {GrantStatus.REVOKED: "access_revoked", GrantStatus.EXPIRED: "access_expired",
             GrantStatus.FAILED: "access_revoked"}


def _cards(s, rid: str) -> list:
    return [m for m in s.messages if m.channel == APPROVALS and not m.thread_ts
            and m.event_payload.get("request_id") == rid]


def _dms(s, req, event_type: str | None = None) -> list:
    channel = "D" + req.requester_slack[1:]
    return [m for m in s.dms if m.channel == channel and m.event_payload.get("request_id") == req.request_id
            and (event_type is None or m.event_type == event_type)]


def card_problem(s, req, catalog) -> str | None:
    from chalicelib.slack import views
    from tests.resilience.harness import expected_card_event

    cards = _cards(s, req.request_id)
    if not cards:
        return "no card"
    card = cards[-1]
    role = catalog.find_role(req.account, req.role)
    people = {k: p.slack_user for k, p in catalog.people.items()}
    text, blocks = views.card(req, people, role.approvers)
    want = expected_card_event(req)
    state = f"{req.status.value}/{req.grant_status.value}"
    if card.event_type != want:
        return f"card metadata {card.event_type}, but the record is {state} ({want})"
    if card.text != text or card.blocks != blocks:
        return f"card text {card.text[:70]!r} is not what the record ({state}) renders: {text[:70]!r}"
    return None


def check(s, catalog, now: datetime, calls: list[str]) -> dict[str, list[str]]:
    """Every invariant on one snapshot (``harness.snapshot(..., with_history=True)``) at ``now``;
    ``calls`` are the dedupe keys of the production AssumeRole calls the scenario made."""
    bad: dict[str, list[str]] = {k: [] for k in INVARIANTS}
    reqs = s.requests
    policies = {rid: s.attached.get(rid, []) for rid in s.policies}

    # I1 -------------------------------------------------------------------------------------
    for rid, users in policies.items():
        req = reqs.get(rid)
        if len(users) > 1 or (req is not None and users and users != [req.iam_user]):
            bad["I1"].append(f"{rid}: policy attached to {users}"
                             + (f", requester {req.iam_user}" if req is not None else ""))

    # I2 -------------------------------------------------------------------------------------
    for rid, req in reqs.items():
        if req.grant_status is GrantStatus.ACTIVE and req.iam_user not in policies.get(rid, []):
            bad["I2"].append(f"{rid}: ACTIVE without its IAM policy"
                             + (" (the policy exists, detached)" if rid in policies else ""))
        actions = [e.action for e in s.history.get(rid, [])]
        if req.grant_status is GrantStatus.FAILED and "granted" in actions:
            bad["I2"].append(f"{rid}: granted, then FAILED ({(req.note or '')[:80]}): an approved grant was lost")
        ext = req.extension
        if req.grant_status is GrantStatus.ACTIVE and rid in getattr(s, "expiries", {}) \
                and s.expiries[rid] != iso_z(req.expires_at) \
                and not (ext is not None and ext.state == ext.APPROVED):  # (being applied: IAM may lead)
            bad["I2"].append(f"{rid}: ACTIVE until {iso_z(req.expires_at)}, but its IAM policy says "
                             f"{s.expiries[rid]}")
        if ext is not None and ext.state == ext.APPLIED and (
                req.expires_at - req.decided_at).total_seconds() > catalog.find_role(req.account, req.role) \
                .max_extended_duration_seconds:
            bad["I2"].append(f"{rid}: extended past the role's max_extended_duration")
    for rid in policies:
        req = reqs.get(rid)
        if req is None or req.grant_status not in (GrantStatus.GRANTING, GrantStatus.ACTIVE, GrantStatus.REVOKING):
            state = "no record" if req is None else f"{req.status.value}/{req.grant_status.value}"
            bad["I2"].append(f"{rid}: IAM policy without a live grant ({state})")
    for m in s.security:
        rid = m.event_payload.get("request_id")
        req = reqs.get(rid) if isinstance(rid, str) else None
        if m.event_type == "grant_drift" and (req is None or req.grant_status is not GrantStatus.FAILED):
            state = m.event_payload.get("state")
            bad["I2"].append(f"{rid}: #security told of drift ({state}, {m.event_payload.get('action')}) "
                             f"though only Drawbridge touched IAM; the record is now "
                             f"{req.status.value + '/' + req.grant_status.value if req else 'missing'}")
        if m.event_type == "grant_failed" and "outside Drawbridge" in (m.text or ""):
            bad["I2"].append(f"{rid}: false alarm in #security: {m.text[:90]!r}")

    # I3 -------------------------------------------------------------------------------------
    from tests.resilience.harness import duplicate_transitions

    for rid, req in reqs.items():
        history = s.history.get(rid, [])
        bad["I3"] += [f"{rid}: {d}" for d in duplicate_transitions(history)]
        seqs = [e.seq for e in history]
        if seqs != list(range(1, req.version + 1)):
            bad["I3"].append(f"{rid}: audit versions {seqs}, record version {req.version}")
        for before, after in zip(history, history[1:]):
            if before.to_status != after.from_status:
                bad["I3"].append(f"{rid}: v{after.seq} starts at {after.from_status}, "
                                 f"v{before.seq} ended at {before.to_status}")
        if history and history[-1].to_status != f"{req.status.value}/{req.grant_status.value}":
            bad["I3"].append(f"{rid}: the last audit event ends at {history[-1].to_status}, "
                             f"the record is {req.status.value}/{req.grant_status.value}")

    # I4 -------------------------------------------------------------------------------------
    for rid, req in reqs.items():
        problem = card_problem(s, req, catalog)
        if problem:
            bad["I4"].append(f"{rid}: {problem}")

    # I5 -------------------------------------------------------------------------------------
    for rid, req in reqs.items():
        g, st = req.grant_status, req.status
        state = f"{st.value}/{g.value}"
        missing = []
        if g is GrantStatus.FAILED and not any(m.event_type == "grant_failed" and m.event_payload.get("request_id") == rid
                                               for m in s.security):
            missing.append("no grant_failed in #security")
        want_dm = ENDING_DM.get(g) or ("access_granted" if g is GrantStatus.ACTIVE else None)
        if g is GrantStatus.NONE:
            want_dm = {RequestStatus.DENIED: "access_denied", RequestStatus.EXPIRED: "access_expired"}.get(st)
        if want_dm and not _dms(s, req, want_dm):
            missing.append(f"no {want_dm} DM")
        if (g in ENDING_DM or st in (RequestStatus.DENIED, RequestStatus.EXPIRED, RequestStatus.CANCELLED)) \
                and card_problem(s, req, catalog):
            missing.append("the card does not show the end")
        if missing:
            bad["I5"].append(f"{rid} ({state}): " + ", ".join(missing))
        actions = [e.action for e in s.history.get(rid, [])]
        for m in _dms(s, req, "access_granted"):
            if "granted" not in actions:
                bad["I5"].append(f"{rid}: 'granted' DM but the grant never became ACTIVE")
            elif not m.text.startswith("Access granted"):
                bad["I5"].append(f"{rid}: DM tagged access_granted says {m.text[:60]!r}")
    alerts = Counter(_call_key(m) for m in s.security if m.event_type == "role_assumed" and not m.thread_ts)
    for m in s.security:  # a call Slack refused (429) is shown in a burst digest instead
        if m.event_type == "role_assumed_digest":
            alerts.update(getattr(s, "digests", {}).get(m.event_payload.get("digest"), []))
    for key in calls:
        if alerts[key] == 0:
            bad["I5"].append(f"AssumeRole call {key[:13]}: never alerted in #security")

    # I6 -------------------------------------------------------------------------------------
    for rid, req in reqs.items():
        if len(cards := _cards(s, rid)) > 1:
            bad["I6"].append(f"{rid}: {len(cards)} cards")
        # one DM per kind - and per reminder or extension for the kinds a request sends again
        again = ("reminder", "extension", "old_expires_at", "approver")  # (access_extended: once per old expiry)
        kinds = Counter(m.event_type + "".join(f" {k} {m.event_payload[k]}" for k in again if k in m.event_payload)
                        for m in _dms(s, req))
        bad["I6"] += [f"{rid}: {n} {kind} DMs" for kind, n in sorted(kinds.items()) if n > 1]
    bad["I6"] += [f"AssumeRole call {key[:13]}: shown {n} times (alerts and digests)" for key, n in alerts.items()
                  if n > 1]
    failed = Counter(m.event_payload.get("request_id") for m in s.security if m.event_type == "grant_failed")
    bad["I6"] += [f"{rid}: {n} grant_failed notices" for rid, n in failed.items() if n > 1]
    used = Counter((m.event_payload.get("request_id"), _call_key(m)) for m in s.messages
                   if m.event_type == "grant_used")
    bad["I6"] += [f"{rid}: {n} 'used' replies for call {key[:13]}" for (rid, key), n in used.items() if n > 1]

    # I7 -------------------------------------------------------------------------------------
    for rid, req in reqs.items():
        g = req.grant_status
        if g in (GrantStatus.GRANTING, GrantStatus.REVOKING):
            bad["I7"].append(f"{rid}: still {req.status.value}/{g.value}")
        elif req.status is RequestStatus.PENDING and now >= req.pending_until:
            bad["I7"].append(f"{rid}: still PENDING {now - req.pending_until} past its window")
        elif g is GrantStatus.ACTIVE and now >= req.expires_at:
            bad["I7"].append(f"{rid}: still ACTIVE {now - req.expires_at} past its expiry")
    # I8 -------------------------------------------------------------------------------------
    from chalicelib import cutoff

    cutoffs = getattr(s, "cutoffs", {})
    for rid, req in reqs.items():
        if req.role_arn not in cutoffs:
            continue
        role_id, doc = cutoffs[req.role_arn]
        if req.cut_before is not None:
            cut = cutoff.CutOff(role_id, req.iam_user, req.cut_before, rid)
            if cut.dead(now):
                continue
            if req.sessions_cut_at is None:
                bad["I8"].append(f"{rid} ({req.grant_status.value}): live sessions not cut off "
                                 f"({req.cut_attempts} failed attempts: {(req.cut_note or '')[:80]})")
            elif not cutoff.enforced(doc, cut):
                bad["I8"].append(f"{rid}: recorded as cut at {req.sessions_cut_at:%H:%M:%S}, but the role's "
                                 "cut-off policy does not deny those sessions")
        elif req.grant_status in (GrantStatus.REVOKED, GrantStatus.EXPIRED) and req.granted_at is not None:
            bad["I8"].append(f"{rid}: ended {req.grant_status.value} without a cut-off end")
        if req.grant_status is GrantStatus.ACTIVE and req.granted_at is not None:
            held, _ = cutoff.parse(doc)
            ours = {cutoff.statement_id(r)[len(cutoff.SID_PREFIX):] for r in reqs}  # this run's (the
            # member accounts' policies outlive a run; another run's clock starts at 14:00 again)
            for c in held:  # a session issued after the grant began must not be denied
                if c.role_id == role_id and c.session_name == req.iam_user and c.request_id in ours \
                        and c.bound > req.granted_at:
                    bad["I8"].append(f"{rid}: ACTIVE since {req.granted_at:%H:%M:%S}, but a cut-off denies "
                                     f"{req.iam_user}'s sessions issued before {c.bound:%H:%M:%S}")
    cut_failed = Counter(m.event_payload.get("request_id") for m in s.security if m.event_type == "access_cut_failed")
    bad["I8"] += [f"{rid}: {n} access_cut_failed notices" for rid, n in cut_failed.items() if n > 1]
    return {k: v for k, v in bad.items() if v}


def _call_key(m) -> str:
    p = m.event_payload
    return p.get("shared_event_id") or p.get("event_id") or "?"
