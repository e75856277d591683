"""Use case: publish a person's App Home (the ``PublishHome`` job, issue 17).

Runs in the worker, never on the ack path: it reads the table (the person's open requests,
and - for approvers - what waits for them, ``commands.waiting_for``), renders the view
(``views.home_view``) and publishes it. ``views.publish`` replaces the whole view, so a
repeated job (a redelivered ``app_home_opened``, a retried worker) only publishes the same
state again. Somebody who is not in the catalog gets a short home that says so.
"""

from __future__ import annotations

from ..slack import views
from . import jobs
from .commands import waiting_for
from .deps import Deps


def home_of(deps: Deps, slack_user: str) -> dict:
    person = deps.catalog.person_by_slack(slack_user)
    if person is None:
        return views.stranger_home()
    now = deps.now()
    approver = deps.approves_anything(person.key)
    return views.home_view(deps.store.open_for(person.key), waiting_for(deps, person.key, now), deps.people,
                           now, approver)


def publish_home(deps: Deps, job: jobs.PublishHome) -> None:
    deps.slack.publish_home(job.user_id, home_of(deps, job.user_id))
