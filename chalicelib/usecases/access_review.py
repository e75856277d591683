"""Use case: the access review (issue 18; docs/decisions/0011-access-review.md).

* :func:`weekly` (the ``weekly_review`` schedule, Monday 09:00 UTC): the review of the 7
  days that ended at that Monday 00:00 UTC, posted once to the security channel
  (``deliver_once``, scope ``REVIEW#<iso week>``; metadata ``access_review``) with its CSV
  and JSON export as files in the message's thread.
* :func:`ask` (``/aws-access review [<n>d]``, on the ack path): members of the security
  channel only (``conversations.members``, as ``activity`` asks it); an
  :class:`~chalicelib.usecases.jobs.AccessReview` job does the work off the ack path.
* :func:`send_review` (that job): the same review of the last ``n`` days, as a DM to the
  person who asked, with the same two files in the DM's thread.
* :func:`gather`: the table, read in proportion to the window (the ``by_day`` index, one
  Query per day; then each grant found: its record, its uses and its activity tally), into
  the pure :func:`chalicelib.domain.access_review.build`. The CLI export
  (``python -m chalicelib.review_export``) calls it too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..domain import access_review as ar
from ..domain.model import Request, iso_z, parse_iso, utc
from ..slack.escape import escape_mrkdwn
from ..slack.parse import MAX_REVIEW_DAYS
from . import jobs
from .delivery import key_of
from .deps import Deps

#: a grant live in the window was granted at most this long before the window's start: a
#: role's longest grant, extensions included, is 7 days (catalog MAX_ROLE_DURATION), + 1 day
LOOKBACK = timedelta(days=8)
#: the longest window ``/aws-access review`` and the export accept
MAX_DAYS = MAX_REVIEW_DAYS
DEFAULT_DAYS = 7
#: how many grants and denied attempts the Slack summary names (the files hold them all)
SUMMARY_LINES = 10
EVENT_TYPE = "access_review"


def gather(deps: Deps, start: datetime, end: datetime) -> ar.Review:
    """The review of ``[start, end)`` from the table: the ``by_day`` index over the window
    and the :data:`LOOKBACK` before it (grants made before the window and still held in
    it), the live grants (made before the index existed), then for each production grant
    of the window its uses and its activity tally."""
    store, now = deps.store, deps.now()
    start, end = utc(start), utc(end)
    trail = store.events_between(start - LOOKBACK, end)
    ids: dict[str, None] = {}
    denied = []
    for event in trail.events:
        if event.action == "granted":
            ids[event.request_id] = None
        elif event.action == "denied" and event.at >= start:
            ids[event.request_id] = None
            denied.append(event)
    records: dict[str, Request] = {r.request_id: r for r in store.live() if r.granted_at is not None}
    missing = [rid for rid in ids if rid not in records]
    for rid, req in zip(missing, _each(store.get, missing)):
        if req is not None:
            records[rid] = req
    attempts = [a for a in trail.attempts if a.get("event_time") and parse_iso(a["event_time"]) >= start]

    def production(req: Request) -> bool:
        try:  # the catalog as it is now; the record's own flag for a role that left it
            return deps.catalog.find_role(req.account, req.role).production
        except LookupError:
            return req.production

    def production_account(key: str) -> bool:  # the catalog as it is now
        account = deps.catalog.accounts.get(key)
        return account is not None and account.production

    # Each production grant's own audit history (one Query each): the review tells a grant by
    # its trail, never by its record alone (a record the trail does not back is flagged).
    trails: dict[str, list] = {}
    uses: dict[str, int] = {}
    calls: dict[str, int] = {}
    granted = {e.request_id for e in trail.events if e.action == "granted"}
    # a grant by its record or by its trail's granted event (a record edited to hide one)
    rids = [r.request_id for r in records.values()
            if (r.granted_at is not None or r.request_id in granted) and production(r)]

    def per_grant(rid: str) -> tuple[list, int, int]:
        return (store.history(rid), len(store.uses(rid)), int((store.activity(rid) or {}).get("calls", 0)))

    for rid, (history, used, written) in zip(rids, _each(per_grant, rids)):
        trails[rid], uses[rid], calls[rid] = history, used, written
    return ar.build(start, end, records=records.values(), denied_events=denied, attempts=attempts,
                    production=production, uses=uses, write_calls=calls, now=now, trails=trails,
                    production_account=production_account)


#: how many per-grant reads run at once (:func:`_each`): a 90-day review of ~1,000
#: production grants is ~4,000 reads, ~40 s one after another, ~5 s eight at a time,
#: within the worker's 60 s (the sweep never runs one: docs/decisions/0011-access-review.md)
READERS = 8


def _each(read, keys: list) -> list:
    """``[read(k) for k in keys]``, :data:`READERS` at a time (boto3's clients are thread-safe;
    each read is one or a few small DynamoDB calls, so the time is the round trips)."""
    if len(keys) <= 1:
        return [read(k) for k in keys]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(READERS, len(keys))) as pool:
        return list(pool.map(read, keys))


def week_of(now: datetime) -> tuple[datetime, datetime]:
    """The last whole week before ``now``: [the Monday 00:00 UTC a week before, the Monday
    00:00 UTC at or before ``now``)."""
    day = utc(now).replace(hour=0, minute=0, second=0, microsecond=0)
    end = day - timedelta(days=day.weekday())
    return end - timedelta(days=7), end


def payload(review: ar.Review) -> dict:
    """The ``access_review`` message metadata: the window and the counts."""
    return {"window_start": iso_z(review.start), "window_end": iso_z(review.end),
            "days": round((review.end - review.start).total_seconds() / 86400, 2), **review.counts()}


def files(review: ar.Review) -> list[tuple[str, str]]:
    """(file name, content) of the export: the CSV and the JSON, the same rows."""
    name = f"access-review_{review.start:%Y-%m-%dT%H%M}Z_{review.end:%Y-%m-%dT%H%M}Z"
    return [(f"{name}.csv", ar.to_csv(review)), (f"{name}.json", ar.to_json(review))]


def _when(dt: datetime) -> str:
    return utc(dt).strftime("%a %Y-%m-%d %H:%M")


def summary_text(review: ar.Review, title: str) -> str:
    """The compact mrkdwn summary (every value escaped: reasons and notes are user text)."""
    e = escape_mrkdwn
    held = sum((p.held for p in review.people), timedelta(0))
    bg = review.break_glass
    states = {s: sum(g.review == s for g in bg) for s in ("acknowledged", "flagged", "overdue", "pending")}
    kinds = {k: sum(d.kind == k for d in review.denied) for k in ("request_denied", "failed_attempt")}
    lines = [
        f":clipboard: *{e(title)}*: {_when(review.start)} to {_when(review.end)} UTC "
        f"(generated {_when(review.generated_at)} UTC)",
        f"• *{len(review.grants)}* production grant(s) held by {len(review.people)} person(s), "
        f"{ar.hours(held):g} grant-hours in the window (summed over grants: overlapping grants add up)",
        f"• *{len(review.never_used)}* never used (no role assumed, no write call; reads are not tracked): "
        "least-privilege hint",
        f"• *{len(bg)}* break-glass: {states['acknowledged']} acknowledged, {states['flagged']} flagged, "
        f"{states['overdue']} overdue, {states['pending']} pending",
        f"• *{len(review.denied)}* denied: {kinds['request_denied']} request(s) denied, "
        f"{kinds['failed_attempt']} refused by AWS",
        f"• *{len(review.no_grant)}* access with no grant (succeeded in a production account, or AssumeRoot "
        "anywhere, with no approved grant)",
        f"• {review.non_production_grants} non-production grant(s) (counted, not detailed)",
    ]
    if review.no_trail:
        lines.append(f"• :warning: *{len(review.no_trail)}* record(s) without audit trail (no `granted` event: "
                     "not trusted, in no total): " + ", ".join(f"`{e(g.request_id)}`" for g in review.no_trail[:SUMMARY_LINES]))
    if review.grants:
        lines.append("*Production grants*")
        for g in review.grants[:SUMMARY_LINES]:
            tags = [" _never used_" if g.never_used else ""]
            if g.break_glass:
                tags.append(f" *break-glass: {e(g.review)}*" + (f" ({e(g.review_note)})" if g.review_note else ""))
            if g.audit:
                tags.append(f" :warning: _{e(g.audit)}_")
            lines.append(f"• `{e(g.request_id)}` @{e(g.requester)} `{e(g.account)}/{e(g.role)}`: "
                         f"{ar.hours(g.held):g} h, {g.uses} use(s), {g.write_calls} write call(s), "
                         f"{e(g.ended_how)}{''.join(tags)}")
        if len(review.grants) > SUMMARY_LINES:
            lines.append(f"… and {len(review.grants) - SUMMARY_LINES} more in the files")
    for heading, rows in (("Denied", review.denied), ("Access with no grant", review.no_grant)):
        if not rows:
            continue
        lines.append(f"*{heading}*")
        for d in rows[:SUMMARY_LINES]:
            lines.append(f"• {_when(d.at)} {e(d.kind.replace('_', ' '))}: {e(d.who)} on "
                         f"`{e(d.account)}/{e(d.role)}`: {e(d.detail)}")
        if len(rows) > SUMMARY_LINES:
            lines.append(f"… and {len(rows) - SUMMARY_LINES} more in the files")
    lines.append("The CSV and JSON export is in this message's thread.")
    return "\n".join(lines)


def _post(deps: Deps, scope: str, channel: str, review: ar.Review, title: str, log=None) -> tuple[str, str]:
    """The summary once (``deliver_once``), then its files in its thread once."""
    from .delivery import IN_FLIGHT, DeliveryInFlight, deliver_once

    meta = payload(review)
    where = deliver_once(deps, scope, EVENT_TYPE, channel=channel, text=summary_text(review, title), blocks=None,
                         event_type=EVENT_TYPE, payload=meta,
                         match={"window_start": meta["window_start"], "window_end": meta["window_end"]})
    store, now = deps.store, deps.now()
    started = store.begin_delivery(scope, "files", now)
    if not started.first and started.ts:
        return where  # attached already
    if not started.first and now - started.started_at < IN_FLIGHT:
        # another attempt is attaching them (or died doing so moments ago): not done yet, so
        # the caller must not settle what it owes; the sweep's retry comes back later
        raise DeliveryInFlight(f"files of {scope} are being attached by another attempt")
    todo = files(review)
    if not started.first:
        # An earlier attempt died attaching them, maybe after Slack shared them (its answer to
        # files.completeUploadExternal lost): the thread says which are there already. The
        # names are the window's, the same in every attempt.
        there = deps.slack.thread_file_names(where[0], where[1])
        todo = [(name, content) for name, content in todo if name not in there]
    if todo:
        deps.slack.upload_files(where[0], where[1], todo)
    store.finish_delivery(scope, "files", where[0], where[1])
    if log is not None:
        log.info("access review posted", extra={"scope": scope, **meta})
    return where


def week_scope(start: datetime) -> str:
    """The delivery scope of the weekly review of the week that starts at ``start``."""
    iso_year, iso_week, _ = start.isocalendar()
    return f"REVIEW#{iso_year}-W{iso_week:02d}"


#: the sweep's backstop for the weekly review (:func:`backstop`): from 20 minutes after the
#: schedule (Monday 09:00 UTC) to a day after it. A failed run of ``weekly_review`` (300 s
#: timeout) is retried by Lambda about 1 and 2 minutes after it failed, so its three runs
#: can take until ~09:18; the backstop starts after them. A review more than a day late is
#: the on-call's to chase (the handler logged the failure with its correlation id); and
#: outside that window the sweep costs nothing more.
BACKSTOP_FROM = timedelta(hours=9, minutes=20)
BACKSTOP_UNTIL = timedelta(days=1, hours=9)
#: the backstop hands the review on at most this often (a lease per week): a permanent error
#: (files:write missing, an archived channel) must not cost a full gather every minute for a day
BACKSTOP_EVERY = timedelta(minutes=15)


def backstop(deps: Deps, on_error=None) -> bool | None:
    """The minute sweep's check that this week's review is in the security channel with
    its files: one GetItem (the ``files`` delivery, recorded after the message) while in the
    window, nothing outside it. What is missing is handed to the worker as a
    :class:`~chalicelib.usecases.jobs.WeeklyReview` job (the same deliver-once keys, so
    never posted twice) - never gathered in the sweep itself - at most every
    :data:`BACKSTOP_EVERY` (a lease, taken before the hand-off and never given back).
    None: nothing to do; True: handed on (or, run here, finished); False: run here, failed."""
    import uuid

    from .dispatch import hand_off

    now = deps.now()
    start, end = week_of(now)
    if not (end + BACKSTOP_FROM <= now < end + BACKSTOP_UNTIL):
        return None
    scope = week_scope(start)
    done = deps.store.delivery(scope, "files")
    if done is not None and done.ts:
        return None
    if deps.store.take_lease(f"BACKSTOP#{scope}", uuid.uuid4().hex, now, BACKSTOP_EVERY) is None:
        return None  # handed on less than BACKSTOP_EVERY ago
    failed: list[Exception] = []

    def failure(job, exc: Exception) -> None:
        failed.append(exc)
        if on_error is not None:
            on_error(job, exc)
        else:
            raise exc

    hand_off(deps, [jobs.WeeklyReview(iso_z(start))], failure)
    return not failed


def sweep_backstop(deps: Deps, report, on_error=None) -> None:
    """:func:`backstop` inside the sweep: a failure is counted and reported, never raised
    past the sweep's other work (a later minute tries again)."""
    counted: list[Exception] = []

    def failed(job, exc: Exception) -> None:
        counted.append(exc)
        report.errors += 1
        report.undelivered += 1
        if on_error is None:
            raise exc
        on_error(job, exc)

    try:
        outcome = backstop(deps, failed)
    except Exception as exc:  # noqa: BLE001 - a later sweep tries again
        if exc in counted:
            raise  # (no on_error: the first failure is raised, once)
        failed({"job": "weekly_review"}, exc)
        return
    if outcome and deps.handoff is not None:
        report.handed_off += 1
    elif outcome:
        report.delivered += 1


def run_weekly(deps: Deps, job: jobs.WeeklyReview) -> list[jobs.Job]:
    """The worker's side of :func:`backstop`: the week's review, once."""
    from .delivery import DeliveryInFlight

    try:
        weekly(deps, start=parse_iso(job.start))
    except DeliveryInFlight:  # the schedule's own run (or its retry) is at it
        pass
    return []


def weekly(deps: Deps, log=None, start: datetime | None = None) -> dict:
    """The ``weekly_review`` schedule: last week's review in the security channel, once per
    week however often the schedule fires (EventBridge delivers at least once); the minute
    sweep has the worker finish it if every run of the schedule failed (:func:`backstop`).
    ``start``: the week's (the backstop's job); default: the last whole week."""
    if start is None:
        start, end = week_of(deps.now())
    else:
        start = utc(start)
        end = start + timedelta(days=7)
    review = gather(deps, start, end)
    scope = week_scope(start)
    channel, ts = _post(deps, scope, deps.catalog.security_channel, review, "Weekly access review", log)
    return {"scope": scope, "channel": channel, "ts": ts, **payload(review)}


def ask(deps: Deps, person, cmd):
    """``/aws-access review [<n>d]``: the security channel's members only (anybody else is
    refused, and nothing is read or sent); the review itself comes by DM, from a job."""
    from .activity import _in_security_channel
    from .outcomes import Answer, Refused, ReviewQueued

    if not _in_security_channel(deps, person):
        return Answer(Refused("Only members of the security channel may run the access review"))
    job = jobs.AccessReview(user_id=person.slack_user, days=cmd.days, end=iso_z(deps.now()))
    # Owed (the outbox), so the sweep retries it with backoff until it is delivered: the
    # person was just told it comes by DM (after the last attempt they are told it did not).
    deps.store.owe(owed_scope(job.user_id), key_of(job), jobs.to_wire(job), deps.now())
    return Answer(ReviewQueued(cmd.days), [job])


def owed_scope(user_id: str) -> str:
    """Where an on-demand review is owed (``REQ#REVIEW#<user>``, key ``review:<days>d:<end>``)."""
    return f"REVIEW#{user_id}"


def dm_scope(job: jobs.AccessReview) -> str:
    """The delivery scope of an on-demand review's DM, its files and its give-up notice: the
    person, the window's length and its end (two asks in one second are two reviews)."""
    return f"REVIEW#{job.user_id}#{int(job.days)}d#{job.end}"


def review_in_flight(deps: Deps, job: dict) -> bool:
    """Whether an attempt is delivering the on-demand review ``job`` (wire form) right now:
    its summary or its files begun less than ``IN_FLIGHT`` ago and not finished."""
    from .delivery import IN_FLIGHT

    scope, now = dm_scope(jobs.as_job(job)), deps.now()
    for kind in (EVENT_TYPE, "files"):
        started = deps.store.delivery(scope, kind)
        if started is not None and not started.ts and now - started.started_at < IN_FLIGHT:
            return True
    return False


def send_review(deps: Deps, job: jobs.AccessReview) -> list[jobs.Job]:
    """The on-demand review: the ``days`` before ``end`` (fixed when it was asked, so a
    retried job sends the same review), as a DM to who asked, once, with its files."""
    end = parse_iso(job.end)
    days = max(1, min(int(job.days), MAX_DAYS))
    review = gather(deps, end - timedelta(days=days), end)
    _post(deps, dm_scope(job), job.user_id, review, f"Access review, last {days} day(s)")
    deps.store.settle(owed_scope(job.user_id), key_of(job), 2**31)  # delivered, whoever ran it
    return []
