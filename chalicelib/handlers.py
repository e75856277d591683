"""Glue between Chalice events and the use cases: verify, parse, call, reply, defer.

Every HTTP answer to a correctly signed request is a 200 within Slack's 3 s
(a refusal is an ephemeral message, and so is a signed body Drawbridge cannot read;
on the Events route it is an empty 200).
A bad signature is a 401; neither changes anything. An unexpected error is logged with a
correlation id and the user sees only that id.
"""

from __future__ import annotations

import json
from typing import Any

from .log import logger, new_correlation_id

from .log import CORRELATION as _CORRELATION  # noqa: E402 - one store, read by use cases too


def _response(status: int, body: Any):
    from chalice import Response

    return Response(status_code=status, body=body, headers={"Content-Type": "application/json"})


def _ephemeral(text: str, blocks: list | None = None):
    body = {"response_type": "ephemeral", "text": text}
    if blocks:
        body["blocks"] = blocks
    return _response(200, body)


def begin(app, kind: str, correlation_id: str | None = None, context=None) -> str:
    """Start an invocation's log context: correlation id + request id on every line."""
    log = logger()
    cid = correlation_id or new_correlation_id()
    log.set_correlation_id(cid)
    ctx = context or getattr(app, "lambda_context", None)
    request_id = getattr(ctx, "aws_request_id", None)
    if request_id is None and kind == "http":
        request_id = (app.current_request.context or {}).get("requestId")
    log.append_keys(request_id=request_id or cid, handler=kind)
    _CORRELATION["current"] = cid
    _CORRELATION["invocation"] = request_id or cid
    return cid


def correlation_id() -> str:
    return _CORRELATION.get("current", "-")


def _unexpected(what: str) -> str:
    cid = correlation_id()
    logger().exception(f"unexpected error in {what}")
    return (f":warning: Drawbridge hit an unexpected error (ref `{cid}`). "
            "Please retry, or give that ref to the platform team.")


def _verified(app) -> tuple[Any, bytes] | tuple[Any, None]:
    from . import wiring
    from .slack.verify import is_valid

    request = app.current_request
    body = request.raw_body or b""
    s = wiring.settings()
    if not is_valid(s.signing_secret, body, dict(request.headers)):
        logger().warning("rejected request: bad, missing or stale Slack signature",
                         extra={"path": request.path, "body_bytes": len(body)})
        return _response(401, {"error": "invalid Slack signature"}), None
    return None, body


def defer(jobs: list) -> None:
    """Run follow-up work: in Lambda by the async worker, elsewhere right here."""
    if not jobs:
        return
    from . import wiring
    from .usecases.jobs import to_wire

    s = wiring.settings()
    if s.in_lambda:
        import os

        wiring.lambda_client(os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_DEFAULT_REGION")).invoke(
            FunctionName=s.worker_function, InvocationType="Event",
            Payload=json.dumps({"jobs": [to_wire(j) for j in jobs], "correlation_id": correlation_id()}).encode(),
        )
        return
    wiring.service(s).run_all(jobs, on_error=log_job_error)


def log_job_error(job, exc: Exception) -> None:
    from .usecases.jobs import describe

    logger().exception("job failed; the sweep will retry what it can", extra=describe(job))


def _slack_route(app, what: str, parse, act, unreadable=None, failed=None):
    """Verify, parse, act. Slack gets a 401 (bad signature) or a 200 (everything else).
    ``unreadable(problem)`` / ``failed()`` answer a signed body Drawbridge cannot read and an
    unexpected error (default: an ephemeral message saying so)."""
    from .slack.parse import BadPayload

    try:
        failure, body = _verified(app)
        if failure is not None:
            return failure
        try:
            parsed = parse(body)
        except BadPayload as exc:
            # Correctly signed but unreadable: still a 200 (docs/REFERENCE.md), refused, no effect.
            logger().warning("unreadable Slack payload", extra={"problem": str(exc)})
            if unreadable is not None:
                return unreadable(exc)
            return _ephemeral(f"Drawbridge could not read that request ({exc}); nothing was changed.")
        return act(parsed)
    except Exception:  # noqa: BLE001 - never a stack trace or a 500 to Slack
        return failed() if failed is not None else _ephemeral(_unexpected(what))


def slack_command(app):
    from .slack.parse import parse_slash_command

    return _slack_route(app, "slash command", parse_slash_command, _command)


def slack_interaction(app):
    from .slack.parse import parse_interaction

    return _slack_route(app, "interaction", parse_interaction, _interaction)


def slack_event(app):
    """The Events API (``POST /slack/events``, JSON). Signed like the other routes (401
    otherwise). ``url_verification`` is answered with its challenge; ``app_home_opened`` is
    acknowledged at once and the home is published by a ``PublishHome`` job; anything else,
    and a signed body Drawbridge cannot read, gets a 200 and changes nothing (a non-2xx would
    only make Slack retry it). A redelivery (``X-Slack-Retry-Num``) publishes again: the view
    is replaced, nothing else happens."""
    from .slack.parse import UrlVerification, parse_event

    def act(event):
        if isinstance(event, UrlVerification):
            return _response(200, {"challenge": event.challenge})
        if event is None:
            logger().info("Slack event not handled; ignored")
            return _response(200, {})
        return _home_opened(app, event)

    def failed():  # never a stack trace or a 500 to Slack (it would retry)
        logger().exception(f"unexpected error in event (ref {correlation_id()})")
        return _response(200, {})

    return _slack_route(app, "event", parse_event, act, unreadable=lambda exc: _response(200, {}), failed=failed)


def _home_opened(app, event):
    from . import wiring
    from .usecases.commands import admit
    from .usecases.jobs import PublishHome
    from .usecases.outcomes import WrongWorkspace

    retry = (app.current_request.headers or {}).get("x-slack-retry-num")
    logger().info("app home opened", extra={"slack_user": event.user_id, "event_id": event.event_id[:40],
                                            "retry": retry})
    if isinstance(admit(wiring.service(), event.team_id, event.api_app_id, event.user_id), WrongWorkspace):
        logger().warning("app_home_opened from another workspace or app; ignored")
        return _response(200, {})
    defer([PublishHome(event.user_id)])  # a stranger's home says they are not in the catalog
    return _response(200, {})


def _command(cmd):
    from . import wiring
    from .usecases.deliveries import Repeated, in_flight

    logger().info("slash command", extra={"slack_user": cmd.user_id, "verb": (cmd.text.split() or ["form"])[0][:20]})
    svc = wiring.service()
    if not cmd.text.strip():  # a bare /aws-access opens the request form, now (its trigger id lasts 3 s)
        reply = svc.open_form(cmd)
        return _ephemeral(reply.text) if reply.text else _response(200, "")
    try:
        reply = svc.command(cmd, delivery=cmd.trigger_id)
    except Repeated as repeat:  # a redelivered command must not act twice
        logger().info("repeated slash command delivery ignored")
        defer(in_flight(svc, repeat.request_id))  # (a revoke whose own answer was lost: hand it on)
        return _ephemeral(repeat.reply or "Still working on this command; see the messages above.")
    defer(reply.jobs)
    return _ephemeral(reply.text, reply.blocks)


def _view_submission(sub):
    """A modal's Submit. Slack needs the answer in the HTTP body: ``{"response_action":
    "errors", "errors": {block_id: text}}`` keeps the form open with each error on its field;
    an empty 200 closes it. A repeat of a submission that acted just closes the form.
    Every failure is answered in that shape too (on a block the form has): anything else
    would show the person Slack's own "could not connect" error."""
    from . import wiring
    from .slack.views import DENY_FORM, DENY_REASON_BLOCK, ROLE_BLOCK, plain_text
    from .usecases.deliveries import Repeated

    logger().info("view submission", extra={"slack_user": sub.user_id, "callback": sub.callback_id[:40]})
    block = DENY_REASON_BLOCK if sub.callback_id == DENY_FORM else ROLE_BLOCK
    try:
        reply = wiring.service().submit_form(sub, delivery=sub.delivery)
    except Repeated:
        logger().info("repeated view submission ignored")
        return _response(200, "")
    except Exception:  # noqa: BLE001 - an error on the form, not a broken modal
        return _response(200, {"response_action": "errors", "errors": {block: plain_text(_unexpected("form"))}})
    try:
        defer(reply.jobs)
    except Exception:  # noqa: BLE001 - what was written stands; the outbox owes its card and DMs
        logger().exception("could not hand on a form's jobs; the sweep delivers what is owed")
    if reply.errors:
        return _response(200, {"response_action": "errors", "errors": reply.errors})
    return _response(200, "")


def _interaction(click):
    from . import wiring
    from .slack.parse import ViewSubmission
    from .usecases.deliveries import Repeated, in_flight
    from .usecases.jobs import Ephemeral

    if click is None:  # an interaction Drawbridge does not handle (e.g. a modal closed)
        return _response(200, "")
    if isinstance(click, ViewSubmission):
        return _view_submission(click)
    # a Confirm's value is what the person typed, a flag's is their text: not for the logs
    typed = click.action_id in ("confirm_break_glass", "flag_break_glass")
    logger().info("button click", extra={"slack_user": click.user_id, "action": click.action_id[:40],
                                         "request": None if typed else click.request_id[:40]})
    svc = wiring.service()
    try:
        defer(svc.click(click, delivery=click.trigger_id))
    except Repeated as repeat:
        logger().info("repeated interaction delivery ignored")
        try:
            defer(in_flight(svc, repeat.request_id))  # (an approval whose own answer was lost: hand it on)
        except Exception:  # noqa: BLE001 - the sweep retries a grant in flight anyway
            logger().exception("could not hand on the repeated click's grant; the sweep will")
    except Exception:  # noqa: BLE001 - Slack shows nothing of a click's HTTP body: tell the clicker
        text = _unexpected("interaction")
        try:
            svc.run(Ephemeral(click.channel_id, click.user_id, text))
        except Exception:  # noqa: BLE001 - already logged with its correlation id
            pass
    return _response(200, "")


def worker(event: dict) -> dict:
    from . import wiring
    from .usecases.jobs import describe

    jobs = event.get("jobs") if isinstance(event, dict) else None
    if not isinstance(jobs, list):
        raise ValueError("worker event needs a list of jobs")
    failures: list[str] = []

    def on_error(job, exc):
        log_job_error(job, exc)
        failures.append(str(describe(job)["job"]))

    wiring.service().run_all(jobs, on_error=on_error)
    return {"jobs": len(jobs), "failed": failures}


def sweep() -> dict:
    from . import wiring

    from .usecases.sweep import VERIFY_PERIOD

    report = wiring.service().sweep(on_error=log_job_error)
    logger().info("sweep done", extra={"report": report.__dict__})
    if report.verify_period * 60 > VERIFY_PERIOD.total_seconds():
        logger().warning(
            "more live grants than the sweep's rotation verifies within the hour: each grant's "
            "holders are now verified every verify_period minutes (raise VERIFY_CAP in "
            "chalicelib/usecases/sweep.py)",
            extra={"verify_period": report.verify_period, "verified_per_run": report.verified})
    return report.__dict__


def weekly_review() -> dict:
    """The weekly access review (``weekly_review``, Monday 09:00 UTC): posted once per week
    to the security channel. A failure is logged and raised, so Lambda retries the invocation
    (the summary is posted at most once, its files at most once unless an attempt died
    sharing them); from 09:20 the minute sweep has the worker finish what is still missing."""
    from . import wiring

    try:
        outcome = wiring.service().weekly_review(log=logger())
    except Exception:
        # logged with its correlation id, then raised: Lambda retries twice, and the minute
        # sweep has the worker finish what is still missing from 09:20 (access_review.backstop)
        logger().exception(f"weekly access review failed (ref {correlation_id()}); the sweep will finish it")
        raise
    logger().info("weekly access review done", extra={"outcome": outcome})
    return outcome


def role_assumed(event: dict) -> dict:
    """The alert path (``on_role_assumed``). Never swallows a failure: an alert that could
    not be posted has had its claim released, and the exception goes back to Lambda, which
    retries the invocation and, after the last retry, sends it to the function's on-failure
    destination. A swallowed error here would be an alert lost without a trace."""
    from . import wiring
    from .log import metric

    try:
        outcome = wiring.service().role_assumed(event, log=logger(), metric=metric)
    except Exception:
        detail = event.get("detail") if isinstance(event, dict) else None
        logger().exception("alert not posted; raising so that Lambda retries it", extra={
            "event_id": str(detail.get("eventID"))[:80] if isinstance(detail, dict) else None})
        raise
    logger().info("role assumption handled", extra={"outcome": outcome.__dict__})
    return outcome.__dict__


def activity(event: dict) -> dict:
    """Grant activity (``on_activity``): a write call counted under its covering grant. A
    failure is raised, so Lambda retries the invocation (a call counted already is not
    counted again: the count and its dedupe claim are one write)."""
    from . import wiring
    from .log import metric

    outcome = wiring.service().activity(event, log=logger(), metric=metric)
    if outcome.kind != "ignored":
        logger().info("write call handled", extra={"outcome": outcome.__dict__})
    return outcome.__dict__


def heartbeat(event: dict) -> dict:
    """The alert path's heartbeat (``on_heartbeat``): recorded in the table, nothing posted
    (the sweep tells silences and returns). A failure is raised, so Lambda retries it."""
    import os

    from . import wiring

    outcome = wiring.service().heartbeat(event, os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                                         log=logger())
    if outcome["kind"] != "heartbeat" or outcome.get("back"):
        logger().info("heartbeat handled", extra={"outcome": outcome})
    return outcome
