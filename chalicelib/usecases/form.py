"""Use case: the request form (issue 17) - a bare ``/aws-access`` opens a modal, and its
Submit makes the same request the one-liner makes.

* :func:`open_form` runs on the command's ack path: ``views.open`` needs the command's
  ``trigger_id`` within 3 seconds, once. It offers only what the person may request (and
  could get approved: ``catalog.requestable_by``), reads nothing from the table and
  writes nothing. A Slack refusal (``expired_trigger_id``...) is an answer, not an error.
* :func:`submit_form` re-decides everything from the catalog and the table: the fields
  become a ``RequestCmd`` and go through ``request.request_access``, so a refusal has the
  one-liner's words and a request gets the same card, jobs and confirmation. A refusal
  names the form field it is about (``Refused.about``), for Slack to show it there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..slack import views
from ..slack.parse import FieldError, SlashCommand, ViewSubmission, request_from_form
from .deps import Deps
from .outcomes import Answer, Help, Outcome, Refused, Unreadable
from .request import request_access

_CHANNEL = re.compile(r"[CDG][A-Z0-9]{2,}", re.ASCII)


@dataclass(frozen=True)
class FormOpened:
    """The modal is open; the command's own answer is empty."""


@dataclass(frozen=True)
class FormNotOpened:
    """Slack did not open the modal (``error``: Slack's word, e.g. ``expired_trigger_id``)."""

    error: str


def open_form(deps: Deps, cmd: SlashCommand) -> Outcome | FormOpened | FormNotOpened:
    """Open the request form for a person already admitted (``commands.admit``). Somebody
    who may request nothing gets ``help``'s answer instead (it says so)."""
    from ..domain.errors import ViewNotOpened

    person = deps.catalog.person_by_slack(cmd.user_id)
    roles = deps.catalog.requestable_by(person.key)
    if not roles:
        return Help(person.key, roles)
    view = views.request_form(person.key, roles, cmd.channel_id if _CHANNEL.fullmatch(cmd.channel_id) else "")
    try:
        deps.slack.open_view(cmd.trigger_id, view)
    except ViewNotOpened as exc:
        return FormNotOpened(exc.error)
    return FormOpened()


def answer_channel(sub: ViewSubmission) -> str:
    """Where the form's confirmation goes: the channel the command was typed in (the form's
    ``private_metadata``), "" for a DM. Only a channel id is taken from it."""
    try:
        meta = json.loads(sub.private_metadata) if sub.private_metadata else {}
    except ValueError:
        return ""
    channel = meta.get("channel") if isinstance(meta, dict) else None
    return channel if isinstance(channel, str) and _CHANNEL.fullmatch(channel) else ""


def submit_form(deps: Deps, person, sub: ViewSubmission) -> Answer:
    """The request form's Submit, for a person in the catalog: ``Answer(Requested)`` with
    the card's jobs, or ``Refused``/``Unreadable`` naming the field (``about``)."""
    try:
        cmd = request_from_form(sub.value(views.ROLE_BLOCK), sub.value(views.DURATION_BLOCK),
                                sub.value(views.REASON_BLOCK))
    except FieldError as exc:
        return Answer(Refused(str(exc), exc.block_id))
    answer = request_access(deps, person, cmd)
    if isinstance(answer.outcome, (Refused, Unreadable)) and not getattr(answer.outcome, "about", ""):
        return Answer(Refused(answer.outcome.reason, views.ROLE_BLOCK))
    return answer
