"""Messages that matter are delivered at least once and shown at most once.

*At least once*: a change of state records the messages it owes in the same transaction
(``Store.transition(..., owed=...)``, see :func:`owed`); the job that delivers one settles
it, and the sweep retries whatever is still owed (with backoff) until it is delivered.

*At most once*: :func:`deliver_once` marks a message's delivery before posting and records
where it landed after. When Slack's answer is lost (the post landed, the answer did not
come back), the next attempt first looks for the message by its metadata and only posts
if it is not there. slack-sdk's own retries never repeat a post (``wiring.slack_client``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Iterable

from ..domain.errors import DomainError
from . import jobs
from .deps import Deps

#: another attempt that started less than this ago may still be posting: leave it be
IN_FLIGHT = timedelta(seconds=60)
#: backoff between the sweep's retries of an undelivered message
RETRY_BACKOFF = (timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=5), timedelta(minutes=15))


class DeliveryInFlight(DomainError):
    """Another attempt started this delivery moments ago; try again later."""


def key_of(job: jobs.Job) -> str | None:
    """The outbox key of a job that tells people something, or that must happen in the end
    even if its worker dies (a session cut-off); None: not owed."""
    if isinstance(job, jobs.CutSessions):
        if not job.end:
            return "cut"
        digest = hashlib.sha256(json.dumps([sorted(job.people), job.end]).encode()).hexdigest()[:12]
        return f"cut:{digest}"
    if isinstance(job, jobs.ExtendGrant):  # IAM must follow an approved extension, worker or not
        return f"extend:{job.extension}"
    if isinstance(job, jobs.AskApprovers):
        return f"ask:{job.extension}"
    if isinstance(job, jobs.RemindApprovers):
        return f"remind:{job.reminder}"
    if isinstance(job, jobs.Escalated):
        return "escalated"
    if isinstance(job, jobs.Card):
        return "card"
    if isinstance(job, jobs.Dm):
        return f"dm:{job.event_type}" + (f":{job.tag}" if job.tag else "")
    if isinstance(job, jobs.Security):
        return security_kind(job)
    if isinstance(job, jobs.ActivityDigest):
        return "activity"
    if isinstance(job, jobs.ReviewReminder):
        return f"dm:review:{job.step}"
    if isinstance(job, jobs.AccessReview):  # owed under REVIEW#<user> (access_review.owed_scope)
        # the window's length too: a 7-day and a 30-day ask in the same second are two reviews
        return f"review:{int(job.days)}d:{job.end}"
    return None


#: security notices told once per request, however often (and however worded) they recur
ONE_PER_REQUEST = ("grant_failed", "access_cut_failed")


def security_kind(job: jobs.Security) -> str:
    """One ``grant_failed`` (``access_cut_failed``) per request, whatever its wording; one
    drift notice per finding."""
    if job.event_type in ONE_PER_REQUEST:
        people = job.payload.get("iam_users")  # a drift cut's failure: once per copy taken back
        extra = ":" + hashlib.sha256(json.dumps(sorted(people)).encode()).hexdigest()[:12] if people else ""
        return f"security:{job.event_type}{extra}"
    digest = hashlib.sha256(json.dumps(job.payload, sort_keys=True).encode()).hexdigest()[:12]
    return f"security:{job.event_type}:{digest}"


#: after this many failed retries (about a day with the backoff) a message is given up, and
#: the log says so: a permanent Slack error (an archived channel, a deleted card, a
#: deactivated requester) must not be retried forever
MAX_ATTEMPTS = 100
#: an on-demand access review is given up sooner (about 2 h with the backoff): the person is
#: waiting for it, and is told it could not be delivered (:func:`gave_up`)
REVIEW_MAX_ATTEMPTS = 10


def max_attempts(key: str) -> int:
    """How many failed retries an owed message gets before it is given up."""
    return REVIEW_MAX_ATTEMPTS if key.startswith("review:") else MAX_ATTEMPTS


class ReviewGivenUp(DomainError):
    """An owed on-demand access review was not delivered after its last attempt."""


def gave_up(deps: Deps, job: dict) -> None:
    """An owed on-demand access review given up after its last attempt: the person who asked
    is told by DM, once (``deliver_once``, kind ``failed`` in the review's own delivery
    scope), with the correlation id of the log line that says so. Called before the item is
    settled, so a failure here leaves it owed and the next sweep tells them."""
    from ..log import correlation_id
    from .access_review import dm_scope

    if job.get("job") != jobs.AccessReview.kind or not job.get("user_id"):
        return
    user = str(job["user_id"])
    text = (f":warning: The access review you asked for (last {job.get('days')} day(s) before "
            f"{job.get('end')}) could not be delivered (ref `{correlation_id()}`). Please ask again, "
            "or give that ref to the platform team.")
    meta = {"window_end": job.get("end"), "days": job.get("days")}
    deliver_once(deps, dm_scope(jobs.as_job(job)), "failed", channel=user, text=text, blocks=None,
                 event_type="access_review_failed", payload=meta, match=meta)


def owed(follow: Iterable[jobs.Job]) -> list[tuple[str, dict]]:
    """The (key, job) pairs a change owes, from the jobs that follow it."""
    return [(key, jobs.to_wire(job)) for job in follow if (key := key_of(job)) is not None]


def retry_at(deps: Deps, attempts: int):
    return deps.now() + RETRY_BACKOFF[min(attempts, len(RETRY_BACKOFF) - 1)]


class Delivered(tuple):
    """(channel, ts) of the message; ``fresh`` is True when this attempt posted it."""

    fresh: bool

    def __new__(cls, where: tuple[str, str], fresh: bool) -> "Delivered":
        self = super().__new__(cls, where)
        self.fresh = fresh
        return self


def deliver_once(deps: Deps, scope: str, kind: str, *, channel: str, text: str, blocks: list[dict] | None,
                 event_type: str, payload: dict, match: dict, thread_ts: str | None = None,
                 any_event_type: bool = False) -> Delivered:
    """Post one message at most once; (channel, ts) of it (new or found). ``any_event_type``:
    the message may have been posted with another event type (a card changes with its record)."""
    now = deps.now()
    started = deps.store.begin_delivery(scope, kind, now)
    if started.ts:
        return Delivered((started.channel, started.ts), False)
    if not started.first:
        if thread_ts:
            # Thread replies cannot be looked up: one attempt is all a reply gets (at most
            # once; the alert it belongs to is what must arrive).
            return Delivered((channel, ""), False)
        found = deps.slack.find(channel, None if any_event_type else event_type, match)
        if found is not None:  # an earlier attempt posted it; its answer was lost
            deps.store.finish_delivery(scope, kind, *found)
            return Delivered(found, False)
        if now - started.started_at < IN_FLIGHT:
            raise DeliveryInFlight(f"{kind} of {scope} is being delivered by another attempt")
    if channel[:1] in ("U", "W") and thread_ts is None:  # a person: their DM with the app
        where = deps.slack.dm(channel, text, blocks, event_type, payload)
    else:
        where = deps.slack.post(channel, text, blocks, event_type, payload, thread_ts=thread_ts)
    deps.store.finish_delivery(scope, kind, *where)
    return Delivered(where, True)


def dm_each(deps: Deps, req, key: str, people, *, text: str, blocks: list[dict] | None, event_type: str,
            payload: dict, match: dict) -> None:
    """The same DM to each of ``people`` (catalog person keys), each at most once however
    often this runs (``<key>:<person>``); ``payload`` gains ``approver``: who it went to."""
    for person in people:
        who = deps.catalog.people.get(person)
        if who is None:
            continue
        deliver_once(deps, req.request_id, f"{key}:{person}", channel=who.slack_user, text=text, blocks=blocks,
                     event_type=event_type, payload={**payload, "approver": person},
                     match={"request_id": req.request_id, **match})
