"""Acting as the people of the sample catalog through the facade, and reading the result."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.slack.parse import Click, SlashCommand
from chalicelib.slack.views import APPROVE, DENY
from tests.fakes import Message

APPROVALS = "C0APPROVE1"
SECURITY = "C0SECURIT1"
CMD_CHANNEL = "C0CMD00001"
PROD_ADMIN = "arn:aws:iam::222222222222:role/admin"


def slack_id(svc, person: str) -> str:
    return svc.catalog.people[person].slack_user


def slash(svc, person: str, text: str, delivery: str | None = None, user_id: str | None = None):
    """``/aws-access <text>`` typed by ``person`` (or by the Slack user ``user_id``): the Reply."""
    user = user_id or slack_id(svc, person)
    cmd = SlashCommand(user, CMD_CHANNEL, text, "/aws-access", "https://hooks.slack.invalid/x", delivery or "")
    return svc.command(cmd, delivery=delivery)


def ask(svc, person: str = "alice", text: str = "prod admin 2h incident 4521", run: bool = True) -> str:
    """A request that must be accepted; its id (the card is posted unless ``run=False``)."""
    reply = slash(svc, person, text)
    assert reply.jobs, reply.text
    if run:
        svc.run_all(reply.jobs)
    return reply.jobs[0].request_id


def press(svc, person: str, action: str, rid: str, delivery: str | None = None, user_id: str | None = None):
    """A button click on the card: the jobs that follow it (not run)."""
    user = user_id or slack_id(svc, person)
    return svc.click(Click(action, rid, user, APPROVALS, "1794492000.000001", delivery or ""), delivery=delivery)


def approve(svc, person: str, rid: str, run: bool = True):
    jobs = press(svc, person, APPROVE, rid)
    if run:
        svc.run_all(jobs)
    return jobs


def deny(svc, person: str, rid: str, run: bool = True):
    jobs = press(svc, person, DENY, rid)
    if run:
        svc.run_all(jobs)
    return jobs


def granted(svc, person: str = "alice", text: str = "prod admin 2h incident 4521",
            approvers: tuple[str, ...] = ("bob", "carol")) -> str:
    """Asked at the clock's time, approved 2 min later by the first approver and 15 s after
    that by the last one, granted: the request id (ACTIVE)."""
    rid = ask(svc, person, text)
    for i, who in enumerate(approvers):
        svc.clock.advance(timedelta(minutes=2) if i == 0 else timedelta(seconds=15))
        approve(svc, who, rid)
    return rid


def approved(svc, person: str = "alice", text: str = "prod admin 2h incident 4521") -> str:
    """Like :func:`granted`, but the final approval's Grant job never runs (a worker lost):
    the request id, GRANTING."""
    from chalicelib.usecases import jobs

    rid = ask(svc, person, text)
    svc.clock.advance(minutes=2)
    approve(svc, "bob", rid)
    svc.clock.advance(seconds=15)
    follow = approve(svc, "carol", rid, run=False)
    svc.run_all([j for j in follow if not isinstance(j, jobs.Grant)])
    assert state(svc, rid) == "APPROVED/GRANTING"
    return rid


def card(svc, rid: str) -> Message:
    ref = svc.store.card(rid)
    assert ref is not None, f"no card for {rid}"
    msg = svc.slack.get(*ref)
    assert msg is not None
    return msg


def cards(svc) -> list[Message]:
    """Top-level messages in the approvals channel."""
    return svc.slack.posts(APPROVALS, thread_ts=None)


def security(svc, cuts: bool = False) -> list[Message]:
    """The security channel's messages; the ``access_cut`` notice every ended production
    grant gets (tests/service/test_cut.py) only with ``cuts``."""
    return [m for m in svc.slack.posts(SECURITY) if cuts or m.event_type != "access_cut"]


def actions(svc, rid: str) -> list[tuple[str, str, str, str]]:
    return [(e.actor, e.action, e.from_status, e.to_status) for e in svc.store.history(rid)]


def state(svc, rid: str) -> str:
    req = svc.store.get(rid)
    return f"{req.status.value}/{req.grant_status.value}"


def dm_types(svc, person: str = "alice") -> list[str]:
    return [m.event_type for m in svc.slack.dms(slack_id(svc, person))]


def ephemeral_texts(svc, person: str) -> list[str]:
    return [m.text for m in svc.slack.ephemerals(slack_id(svc, person))]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
