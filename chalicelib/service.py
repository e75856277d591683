"""Drawbridge's use cases behind one small facade (what handlers, tests and tools call).

Each use case is a module of its own in ``chalicelib/usecases/`` (request, approve,
revoke, grant, notify, sweep, alert, commands, deliveries); this class only holds their
dependencies (:class:`~chalicelib.usecases.deps.Deps`) and turns their outcomes into
replies through ``chalicelib/slack/replies.py``.

Two halves, so that Slack's 3 seconds never wait on IAM:

* the **ack path** (``command``, ``click``) reads the catalog and the table and makes at
  most one conditional write; it returns the reply plus *jobs*;
* **jobs** (``run``) do the slow part: Slack posts/updates/DMs and IAM. In Lambda they
  run in the async worker; elsewhere in-process before the HTTP response returns
  (docs/REFERENCE.md, handlers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from .slack import replies
from .slack.parse import MAX_REASON, Click, SlashCommand, ViewSubmission
from .usecases import breakglass as break_glass
from .usecases import dispatch
from .usecases import jobs as job_types
from .usecases import outcomes as o
from .usecases.approve import admit_click, decide_click
from .usecases.commands import admit, run_command
from .usecases.deliveries import once
from .usecases.deps import Deps
from .usecases.dispatch import OnError

if TYPE_CHECKING:  # the alert path and the sweep are imported where they run: not on the ack path
    from .usecases.alert import AlertOutcome
    from .usecases.sweep import SweepReport

__all__ = ["Drawbridge", "FormReply", "Reply", "granted_payload"]


def granted_payload(*args, **kwargs):  # re-exported for tools and tests
    from .usecases.notify import granted_payload as payload

    return payload(*args, **kwargs)


@dataclass
class Reply:
    """What the slash command answers at once (ephemeral) and what happens after."""

    text: str
    jobs: list[job_types.Job] = field(default_factory=list)
    blocks: list[dict] | None = None  # an answer with buttons (the break-glass confirmation)


@dataclass
class FormReply:
    """The answer to a modal's Submit: ``errors`` (block id -> plain text) keep the form open
    with each error on its field; none closes it. ``jobs`` follow either way."""

    errors: dict[str, str]
    jobs: list[job_types.Job] = field(default_factory=list)


class Drawbridge(Deps):
    """The use cases, wired to one set of ports (see ``chalicelib/wiring.py``)."""

    def command(self, cmd: SlashCommand, delivery: str | None = None) -> Reply:
        """A slash command. ``delivery`` (Slack's trigger id) makes a redelivery act once
        (:class:`~chalicelib.usecases.deliveries.Repeated` is raised for the repeat)."""
        if (refused := admit(self, cmd.team_id, cmd.api_app_id, cmd.user_id)) is not None:
            return Reply(replies.command_reply(refused))  # before any table write

        def act(deps: Deps) -> Reply:
            answer = run_command(deps, cmd)
            return Reply(replies.command_reply(answer.outcome), answer.jobs, replies.command_blocks(answer.outcome))

        return once(self, delivery and f"cmd#{delivery}", act, replay=self._repeat_reply,
                    sends=lambda reply: bool(reply.jobs))

    def open_form(self, cmd: SlashCommand) -> Reply:
        """A bare ``/aws-access``: open the request form (``views.open``, on the ack path:
        the trigger id lasts 3 seconds). The reply is empty once it is open; a stranger gets
        the one-liner's refusal and nothing opens; a form Slack did not open is explained."""
        from .usecases import form

        if (refused := admit(self, cmd.team_id, cmd.api_app_id, cmd.user_id)) is not None:
            return Reply(replies.command_reply(refused))
        outcome = form.open_form(self, cmd)
        if isinstance(outcome, form.FormOpened):
            return Reply("")
        if isinstance(outcome, form.FormNotOpened):
            return Reply(replies.form_not_opened(outcome.error))
        return Reply(replies.command_reply(outcome))

    def submit_form(self, sub: ViewSubmission, delivery: str | None = None) -> FormReply:
        """The request form's Submit: a refusal in the one-liner's words on the field it is
        about (plain text), or the request made exactly as the one-liner makes it (card,
        jobs) and its confirmation sent to the person. ``delivery`` makes a double submit
        or a redelivery act once (``Repeated``)."""
        from .slack import views
        from .usecases import form

        if sub.callback_id == views.DENY_FORM:
            return self._submit_deny(sub, delivery)
        if sub.callback_id != views.REQUEST_FORM:  # not a form of ours: close it, change nothing
            return FormReply({})
        if (refused := admit(self, sub.team_id, sub.api_app_id, sub.user_id)) is not None:
            return FormReply({views.ROLE_BLOCK: views.plain_text(replies.command_reply(refused))})
        person = self.catalog.person_by_slack(sub.user_id)

        def act(deps: Deps) -> FormReply:
            answer = form.submit_form(deps, person, sub)
            outcome = answer.outcome
            if isinstance(outcome, (o.Refused, o.Unreadable)):
                about = getattr(outcome, "about", "") or views.ROLE_BLOCK
                return FormReply({about: views.plain_text(replies.command_reply(outcome))})
            confirm = job_types.Ephemeral(form.answer_channel(sub), sub.user_id, replies.command_reply(outcome))
            return FormReply({}, [confirm, *answer.jobs])

        return once(self, delivery and f"form#{delivery}", act, sends=lambda reply: bool(reply.jobs))

    def _submit_deny(self, sub: ViewSubmission, delivery: str | None) -> FormReply:
        """The deny form's Submit (*Deny with reason…*): the Deny click's decision, taken again
        now, with the denier's reason; a refusal (decided meanwhile, not an approver any
        more...) stays on the form. The request id comes from the form's ``private_metadata``
        and is only a name: the record is re-read and the denier judged again."""
        import json

        from .slack import views
        from .slack.parse import is_request_id
        from .usecases.approve import decide

        def error(text: str) -> FormReply:
            return FormReply({views.DENY_REASON_BLOCK: views.plain_text(text)})

        if (refused := admit(self, sub.team_id, sub.api_app_id, sub.user_id)) is not None:
            return error(replies.command_reply(refused))  # not in the catalog (any more), another workspace
        try:
            meta = json.loads(sub.private_metadata or "{}")
        except ValueError:
            meta = {}
        rid = meta.get("request_id") if isinstance(meta, dict) else None
        if not isinstance(rid, str) or not is_request_id(rid):
            return error("This form does not name a request; nothing was changed.")
        why = " ".join(sub.value(views.DENY_REASON_BLOCK).split())
        if len(why) > MAX_REASON:
            return error(f"The reason is {len(why)} characters; keep it to {MAX_REASON} or fewer.")
        clicker = self.catalog.person_by_slack(sub.user_id).key

        def act(deps: Deps) -> FormReply:
            answer = decide(deps, clicker, rid, approve=False, why=why)
            if not isinstance(answer.outcome, o.ClickDone):
                return error(replies.click_reply(answer.outcome))
            # a form opened from the App Home (no channel) leaves the home showing the request decided
            home = [] if meta.get("channel") else [job_types.PublishHome(sub.user_id)]
            return FormReply({}, [*answer.jobs, *home])

        return once(self, delivery and f"form#{delivery}", act, sends=lambda reply: bool(reply.jobs))

    def _repeat_reply(self, request_id: str | None) -> str | None:
        """A repeat's answer: the first answer again while the request is as that delivery
        left it (it may never have been shown: Slack shows the answer to the retry)."""
        from .domain.lifecycle import RequestStatus
        from .usecases.request import requested

        req = self.store.get(request_id) if request_id else None
        if req is None:
            return None
        if req.version == 1 and req.status is RequestStatus.PENDING:
            return replies.command_reply(requested(self, req))
        return replies.repeated_command(req)

    def click(self, click: Click, delivery: str | None = None) -> list[job_types.Job]:
        """A button click: the jobs that follow it (a private answer is one of them). A
        click in the App Home has no channel: its private answer is a DM (an ``Ephemeral``
        job without a channel), and the home is published again to show the new state."""
        follow = self._click(click, delivery)
        if click.from_home:
            follow = [*follow, job_types.PublishHome(click.user_id)]
        return follow

    def _click(self, click: Click, delivery: str | None) -> list[job_types.Job]:
        if click.action_id in break_glass.ACTIONS:
            return self._break_glass_click(click, delivery)
        if (refused := admit_click(self, click)) is not None:  # before any table write
            return [job_types.Ephemeral(click.channel_id, click.user_id, replies.click_reply(refused))]

        def act(deps: Deps) -> list[job_types.Job]:
            answer = decide_click(deps, click)
            text = replies.click_reply(answer.outcome)
            if text is None:
                return answer.jobs
            return [job_types.Ephemeral(click.channel_id, click.user_id, text), *answer.jobs]

        return once(self, delivery and f"click#{delivery}", act)  # a click's answer is the card itself

    def _break_glass_click(self, click: Click, delivery: str | None) -> list[job_types.Job]:
        """Confirm break-glass, or review it (usecases/breakglass.py, usecases/review.py)."""
        if (refused := break_glass.admit_click(self, click)) is not None:  # before any table write
            return [job_types.Ephemeral(click.channel_id, click.user_id, replies.click_reply(refused))]

        def act(deps: Deps) -> list[job_types.Job]:
            answer = break_glass.decide_click(deps, click)
            text = replies.click_reply(answer.outcome)
            if text is None:
                return answer.jobs
            return [job_types.Ephemeral(click.channel_id, click.user_id, text), *answer.jobs]

        return once(self, delivery and f"click#{delivery}", act)

    # The use cases are called through their modules, so each is one patchable name.
    def run(self, job) -> list[job_types.Job]:
        return dispatch.run(self, job)

    def run_all(self, queue: Iterable, on_error: OnError | None = None) -> None:
        dispatch.run_all(self, queue, on_error)

    def sweep(self, on_error: OnError | None = None) -> SweepReport:
        from .usecases import sweep as sweeping

        return sweeping.sweep(self, on_error)

    def weekly_review(self, log=None) -> dict:
        """Last week's access review in the security channel, once (usecases/access_review.py)."""
        from .usecases import access_review

        return access_review.weekly(self, log=log)

    def reconcile(self, report: SweepReport | None = None, deep: bool | None = None) -> list[job_types.Job]:
        from .usecases import sweep as sweeping

        return sweeping.reconcile(self, report, deep)

    def role_assumed(self, event: dict, log=None, metric=None) -> AlertOutcome:
        from .usecases import alert

        return alert.handle(self, event, log=log, metric=metric)

    def heartbeat(self, event: dict, home_region: str | None, log=None) -> dict:
        """The alert path's heartbeat (usecases/liveness.py)."""
        from .usecases import liveness

        return liveness.handle(self, event, home_region, log=log)

    def activity(self, event: dict, log=None, metric=None):
        """A forwarded write call of a role session (usecases/activity.py)."""
        from .usecases import activity

        return activity.handle(self, event, log=log, metric=metric)
