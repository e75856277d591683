"""Run jobs: one dispatcher from job type to the use case that does it."""

from __future__ import annotations

from typing import Callable, Iterable

from . import jobs
from .deps import Deps

OnError = Callable[[object, Exception], None]


def run(deps: Deps, job: jobs.Job | dict) -> list[jobs.Job]:
    """Run one job (typed, or its wire form from the worker's event); return what follows."""
    from .access_review import run_weekly, send_review
    from .activity import post_digest
    from .cut import cut_sessions
    from .extend import apply_extension
    from .grant import end_grant, make_grant
    from .home import publish_home
    from .notify import ask_approvers, post_card, send_dm, send_ephemeral, tell_security
    from .remind import post_escalation, remind_approvers
    from .review import send_reminder

    job = jobs.as_job(job)
    handler = {
        jobs.Card: post_card,
        jobs.Dm: send_dm,
        jobs.Ephemeral: send_ephemeral,
        jobs.Grant: make_grant,
        jobs.EndGrant: end_grant,
        jobs.CutSessions: cut_sessions,
        jobs.Security: tell_security,
        jobs.ExtendGrant: apply_extension,
        jobs.AskApprovers: ask_approvers,
        jobs.RemindApprovers: remind_approvers,
        jobs.Escalated: post_escalation,
        jobs.ReviewReminder: send_reminder,
        jobs.PublishHome: publish_home,
        jobs.ActivityDigest: post_digest,
        jobs.AccessReview: send_review,
        jobs.WeeklyReview: run_weekly,
    }[type(job)]
    return handler(deps, job) or []


def run_all(deps: Deps, queue: Iterable[jobs.Job | dict], on_error: OnError | None = None) -> None:
    """Run jobs and the jobs they produce, depth first. With ``on_error``, one failure is
    reported and does not stop the rest; without it, the first failure is raised."""
    pending = list(queue)
    while pending:
        job = pending.pop(0)
        try:
            pending[0:0] = run(deps, job)
        except Exception as exc:  # noqa: BLE001 - reported, the sweep repairs
            if on_error is None:
                raise
            on_error(job, exc)


def hand_off(deps: Deps, queue: list, on_error: OnError | None = None) -> bool:
    """Work too long for the caller (the minute sweep must never run a review itself): to
    the async worker when there is one (``deps.handoff``, in Lambda; True), else run here
    (tests, local: the same contract as ``handlers.defer``; False)."""
    if deps.handoff is not None:
        deps.handoff([jobs.to_wire(j) if not isinstance(j, dict) else j for j in queue])
        return True
    run_all(deps, queue, on_error)
    return False
