"""Use case: a slash command, end to end on the ack path.

Who is asking (the catalog), what they typed (the grammar), then one of: help, list,
revoke, extend, breakglass, activity, review, request. A redelivered command (Slack repeats ``trigger_id``) acts once: the
delivery's claim rides in the command's own write (usecases/deliveries.py), so a command
that fails before writing leaves no claim and its redelivery acts.
"""

from __future__ import annotations

from datetime import datetime

from ..domain import decide as rules
from ..domain.model import Request, RequestStatus
from ..slack.parse import (ActivityCmd, BreakGlassCmd, CommandError, ExtendCmd, HelpCmd, ListCmd, ReviewCmd, RevokeCmd,
                           SlashCommand, parse_command_text)
from .deps import Deps
from .outcomes import Answer, Help, Listing, NotInCatalog, Outcome, Unreadable, WrongWorkspace
from .request import request_access
from .revoke import revoke


def admit(deps: Deps, team_id: str, api_app_id: str, user_id: str) -> Outcome | None:
    """Who may reach the table at all: the configured workspace and app (when the catalog
    names them), and people in the catalog. Checked before anything is written, so a
    stranger's commands and clicks leave no trace but a log line."""
    catalog = deps.catalog
    if (catalog.slack_team_id and team_id != catalog.slack_team_id) or \
            (catalog.slack_app_id and api_app_id != catalog.slack_app_id):
        return WrongWorkspace()
    if catalog.person_by_slack(user_id) is None:
        return NotInCatalog(user_id)
    return None


def run_command(deps: Deps, cmd: SlashCommand) -> Answer:
    person = deps.catalog.person_by_slack(cmd.user_id)
    try:
        parsed = parse_command_text(cmd.text)
    except CommandError as exc:
        return Answer(Unreadable(str(exc)))
    if person is None:
        return Answer(NotInCatalog(cmd.user_id))
    if isinstance(parsed, HelpCmd):
        return Answer(Help(person.key, deps.catalog.requestable_by(person.key)))
    if isinstance(parsed, ListCmd):
        now = deps.now()
        return Answer(Listing(deps.store.open_for(person.key), waiting_for(deps, person.key, now), now,
                              deps.store.owed_for(person.key), recently_ended(deps, person, now)))
    if isinstance(parsed, RevokeCmd):
        return revoke(deps, person.key, parsed.request_id)
    if isinstance(parsed, ActivityCmd):
        from .activity import show

        return show(deps, person, parsed.request_id)
    if isinstance(parsed, ReviewCmd):
        from .access_review import ask as ask_review

        return ask_review(deps, person, parsed)
    if isinstance(parsed, ExtendCmd):
        from .extend import ask

        return ask(deps, person, parsed)
    if isinstance(parsed, BreakGlassCmd):
        from .breakglass import preview

        return preview(deps, person, parsed)
    return request_access(deps, person, parsed)


def recently_ended(deps: Deps, person, now: datetime) -> list[Request]:
    """This person's grants that ended while sessions they started may still be running
    (or were just cut off): what ``list`` says about live sessions (issue 15)."""
    from ..domain.model import Principal
    from ..domain.timing import MAX_SESSION, sessions_end_by

    ended = deps.store.grants_ending_after(Principal.iam_user(person.iam_user), now - MAX_SESSION)
    return [r for r in ended if not r.is_open and r.granted_at is not None
            and (r.cut_before + MAX_SESSION if r.cut_before else sessions_end_by(r)) > now]


def waiting_for(deps: Deps, person: str, now: datetime) -> list[Request]:
    """Pending requests, and grants with an extension asked, that this person could approve
    right now (the same decision a click would get). Only people who approve some role pay
    for the query."""
    if not deps.approves_anything(person):
        return []
    return [r for r in deps.store.live()
            if (r.status is RequestStatus.PENDING and rules.decide_approval(r, deps.role_of(r), person, now).allowed)
            or (r.extension is not None and r.extension.state == r.extension.PENDING
                and rules.decide_extension_approval(r, deps.role_of(r), person, now).allowed)]
