"""Bursts of ways in: beyond Slack's ~1 message a second per channel, one message for many.

Below the rate every call has its own alert (chalicelib/usecases/alert.py). When Slack
refuses one with 429, the call (and every later call of the same principal, in the same
minute, of the same loudness) is shown in a **digest** instead: one Slack message per
principal, minute and kind, posted once and then updated in place, at most once a second
and never before Slack's ``Retry-After``.

* A covered call counts under its grant (request id, role, approvers, expiry): the digest
  says how many calls each grant covered, from when to when.
* An uncovered call is never only counted: it is *named*, one line each (time, account and
  role, source IP, client, MFA, event id), in a loud digest of its own (``<!here>`` on its
  first post). A loud digest holds at most :data:`UNCOVERED_CAP` lines (Slack's limits on a
  message), a quiet one :data:`COVERED_CAP` calls; a full digest rolls over to the next.

Guarantees (docs/SECURITY.md, section 5):

* *Recorded*: every call has its record (``ALERT#``) before anything is shown; it names
  the digest it is shown in (written before it joins, so a retry never also posts it alone).
* *Shown at most once*: joining is idempotent (the digest keeps its members' keys); a digest
  is posted at most once (a flusher that may have posted unseen leaves it ``dirty``, and the
  next one looks it up by metadata before posting); updates are whole and idempotent, made
  by one flusher at a time (a lease).
* *Shown at least once*: the call that joins tries to flush the digest (every call of it so
  far) when Slack allows; what a burst's last second leaves unshown is flushed by the sweep
  (every minute, :func:`flush_due`), which keeps a digest in the ``due`` index until every
  member is shown.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from ..alerts import AlertKind, Assumption
from ..domain.errors import RateLimited
from ..domain.model import iso_z
from ..ports import AlertContext, DigestJoin
from ..slack import alert_views
from .deps import Deps

COVERED_CAP = 200  # calls a quiet digest counts (its item keeps their keys: ~10 KB)
UNCOVERED_CAP = 25  # named lines in a loud digest (Slack: 50 blocks, 3,000 characters a section)
PACE = timedelta(seconds=1)  # one write a second per digest (Slack: ~1 message a second a channel)
FLUSH_LEASE = timedelta(seconds=60)  # a flusher that has not finished after this died (timeout 30 s)
SWEEP_FLUSHES = 20  # digests one sweep flushes at most
SWEEP_WAIT = 10.0  # seconds one sweep may spend waiting for digests' next second (Retry-After)


def principal_key(a: Assumption) -> str:
    """The index partition of the caller: its bastion IAM user, else who CloudTrail names."""
    if a.iam_user:
        return a.iam_user
    return "who:" + hashlib.sha256((a.who or a.role_arn or "?").encode()).hexdigest()[:24]


def _minute(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(second=0, microsecond=0)


def new_key(pkey: str, loud: bool, now: datetime, after: str | None = None) -> str:
    """``<minute>#<loud|quiet>#<principal hash>#<n>``: the same for every call of the minute,
    so concurrent first joiners meet in one digest; ``after``: the next one after a full one."""
    minute = _minute(now).strftime("%Y%m%dT%H%MZ")
    base = f"{minute}#{'loud' if loud else 'quiet'}#{hashlib.sha256(pkey.encode()).hexdigest()[:16]}"
    seq = 0
    if after and after.rsplit("#", 1)[0] == base:
        seq = int(after.rsplit("#", 1)[1]) + 1
    return f"{base}#{seq}"


def open_until(key: str) -> datetime:
    return datetime.strptime(key.split("#", 1)[0], "%Y%m%dT%H%MZ").replace(tzinfo=timezone.utc) + timedelta(minutes=1)


def open_digest(ctx: AlertContext, loud: bool, now: datetime) -> dict | None:
    """The principal's digest a new call of this loudness joins now, if one is open."""
    fits = [d for d in ctx.digests if d["loud"] == loud and (d["open_until"] or "") > iso_z(now)
            and d["members"] < d["cap"]]
    return max(fits, key=lambda d: d["key"]) if fits else None


def join_of(deps: Deps, a: Assumption, kind: AlertKind, key: str, *, account_key: str | None,
            role_label: str | None, grant=None, not_before: datetime | None = None) -> DigestJoin:
    loud = kind is AlertKind.UNCOVERED or bool(grant is not None and grant.break_glass)
    common = dict(key=key, member=a.dedupe_key, principal=principal_key(a), loud=loud,
                  channel=deps.catalog.security_channel, open_until=open_until(key),
                  cap=UNCOVERED_CAP if loud else COVERED_CAP, event_time=a.event_time, not_before=not_before)
    if grant is not None and loud:  # a break-glass grant: named on a line of its own, never only counted
        line = alert_views.digest_line(a, account_key, role_label)
        line.update(break_glass=grant.request_id, requester=grant.requester)
        return DigestJoin(**common, line=json.dumps(line))
    if grant is not None:
        shown = {"request_id": grant.request_id, "requester": grant.requester, "reason": grant.reason,
                 "approvers": list(grant.approvers), "expires_at": iso_z(grant.expires_at),
                 "where": alert_views.digest_where(a, account_key, role_label)}
        return DigestJoin(**common, request_id=grant.request_id, grant=json.dumps(shown))
    return DigestJoin(**common, line=json.dumps(alert_views.digest_line(a, account_key, role_label)))


def join(deps: Deps, owner: str, j: DigestJoin) -> dict:
    """Count the call in its digest, following a full or closed one to the next (the
    call's record follows first: a roll-over, the rare path). The digest after the join."""
    store = deps.store
    for _ in range(8):
        d = store.join_digest(j, deps.now())
        if d is not None:
            return d
        nxt = new_key(j.principal, j.loud, deps.now(), after=j.key)
        if not store.put_call_in_digest(j.member, owner, nxt, instead_of=j.key):
            found = store.call(j.member) or {}
            nxt = found.get("digest") or nxt  # another attempt of this copy moved it first
        j = replace(j, key=nxt, open_until=open_until(nxt))
    raise RuntimeError(f"could not place call {j.member} in a digest")


def ceil_second(moment: datetime) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def may_flush(d: dict, now: datetime) -> bool:
    """Whether a flush could go ahead now (as the digest was read: a hint, the take decides)."""
    return (d["members"] > d["shown"] and (d["next_at"] or "") <= iso_z(now)
            and (d["flusher"] is None))


def flush(deps: Deps, key: str, seen: dict | None = None, log=None) -> str:
    """Show every call of the digest so far, if Slack may be written now: ``shown``,
    ``busy`` (another flusher, not yet its second, nothing new), ``limited`` (429: retried
    after its Retry-After) or ``failed`` (left for the next call or the sweep)."""
    store, now = deps.store, deps.now()
    if seen is not None and not may_flush(seen, now):
        return "busy"
    token = uuid.uuid4().hex
    d = store.take_digest(key, token, now, FLUSH_LEASE)
    if d is None:
        return "busy"
    text, blocks, meta = alert_views.digest_message(d)
    where = (d["post_channel"], d["ts"]) if d["ts"] else None
    posting = where is None
    try:
        if posting and d["dirty"]:  # a flusher before us may have posted it and died
            where = deps.slack.find(d["channel"], meta["event_type"], {"digest": key})
        if where is None:
            where = deps.slack.try_post(d["channel"], text, blocks, meta["event_type"], meta["event_payload"])
        else:
            deps.slack.try_update(where[0], where[1], text, blocks, meta["event_type"], meta["event_payload"])
    except RateLimited as limited:
        # Slack refused it: nothing landed; the next write waits for its Retry-After
        store.release_digest(key, token, next_at=ceil_second(now + max(PACE, timedelta(seconds=limited.retry_after))))
        return "limited"
    except Exception:  # noqa: BLE001 - recorded and joined: the next call or the sweep shows it
        store.release_digest(key, token, next_at=ceil_second(now + PACE), clean=not posting)
        if log is not None:
            log.warning("digest not shown; the next call or the sweep retries it", exc_info=True,
                        extra={"digest": key})
        return "failed"
    store.release_digest(key, token, next_at=ceil_second(deps.now() + PACE), shown=d["members"], where=where)
    return "shown"


def flush_due(deps: Deps, log=None) -> dict:
    """The sweep's share: flush every digest with calls not shown yet (waiting for each
    one's second, Slack's Retry-After included), and forget the ones fully shown."""
    out = {"digests_shown": 0, "digests_pending": 0}
    budget = SWEEP_WAIT
    for key in deps.store.digests_due(deps.now(), limit=SWEEP_FLUSHES):
        d = deps.store.alert_digest(key)
        if d is None:
            continue
        if d["members"] <= d["shown"]:
            if (d["open_until"] or "") <= iso_z(deps.now()):
                deps.store.stop_tracking_digest(key, d["members"])
            continue
        wait = (datetime.fromisoformat(d["next_at"].replace("Z", "+00:00")) - deps.now()).total_seconds() \
            if d["next_at"] else 0.0
        if 0 < wait <= min(5.0, budget):
            deps.sleep(wait)
            budget -= wait
        result = flush(deps, key, log=log)
        out["digests_shown" if result == "shown" else "digests_pending"] += 1
    return out
