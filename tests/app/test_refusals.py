"""Refusals through the app: every bad command or click is a signed HTTP 200 whose only
effect is an ephemeral answer. Nothing is posted, nothing changes in the table, and
nobody gets an IAM policy.

Each case runs its setup steps first (normal, accepted commands and clicks), snapshots
the stand-in, the table and IAM, then sends the refused step and compares. Cases with
the same setup share one fresh installation and run as subtests (a refusal changes
nothing, so the next case starts from the same state; each takes its own snapshot).
Positive controls at the end show that the same paths do act when they should.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest
import time_machine

from chalicelib.domain.model import GrantStatus, RequestStatus, hhmm
from chalicelib.slack.parse import USAGE
from local.seed import client as aws
from tests.conftest import TABLE, click_body, sign, slash_body

T0 = datetime(2026, 11, 12, 14, 0, 0, tzinfo=timezone.utc)
PEOPLE = ("alice", "bob", "carol", "dave")
STRANGER = "U0NOBODY01"  # a well-formed Slack user id that is not in the catalog
UNKNOWN_RID = "req-20261112-abcdef"
RID = re.compile(r"req-\d{8}-[0-9a-f]{6}")


# ---- driving the app ----------------------------------------------------------------
def slack_id(app_client, who: str) -> str:
    return who if who.startswith("U") else app_client.slack_id(who)


def command(app_client, who: str, text: str):
    return app_client.raw("/slack/commands", *_signed(slash_body(slack_id(app_client, who), text)))


def click(app_client, who: str, action: str, value: str):
    return app_client.raw("/slack/interactions", *_signed(click_body(slack_id(app_client, who), action, value)))


def _signed(body: str) -> tuple[str, dict]:
    return body, sign(body)


def request(app_client, who: str, text: str) -> str:
    reply = command(app_client, who, text)
    assert reply.status == 200, reply
    m = RID.search(reply.text)
    assert m and reply.text.startswith("Request `"), reply.text
    return m.group(0)


# ---- what "nothing changed" means ---------------------------------------------------
def table_items(stack) -> list[dict]:
    """Every item in the table except the delivery-dedupe bookkeeping (ONCE#<trigger id>),
    which a correctly signed delivery records whether or not it is refused."""
    db = aws("dynamodb", keys=stack.service)
    items, kwargs = [], {}
    while True:
        page = db.scan(TableName=TABLE, ConsistentRead=True, **kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted((i for i in items if not i["PK"]["S"].startswith("ONCE#")),
                  key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


def attached(stack) -> dict[str, list[str]]:
    iam = aws("iam", keys=stack.service)
    return {p: [a["PolicyName"] for a in iam.list_attached_user_policies(UserName=p)["AttachedPolicies"]]
            for p in PEOPLE}


def snapshot(stack, slack, store, rids) -> dict:
    return {
        "messages": [m.to_dict() for m in slack.messages()],
        "table": table_items(stack),
        "requests": {rid: store.get(rid) for rid in rids},
        "history": {rid: store.history(rid) for rid in rids},
        "open": {p: sorted(r.request_id for r in store.open_for(p)) for p in PEOPLE},
        "iam": attached(stack),
    }


# ---- setups: accepted steps that lead to the state a case needs ---------------------
@dataclass
class World:
    app: object
    clock: object
    store: object
    rids: dict[str, str] = field(default_factory=dict)


def pending(w: World) -> None:
    w.rids["rid"] = request(w.app, "alice", "prod admin 2h fixing incident 4521")


def pending_bob_readonly(w: World) -> None:
    w.rids["rid"] = request(w.app, "bob", "prod readonly 1h checking dashboards")


def approved_once(w: World) -> None:
    pending(w)
    w.clock.shift(timedelta(minutes=1))
    assert click(w.app, "bob", "approve_request", w.rids["rid"]).status == 200
    assert w.store.get(w.rids["rid"]).approvers == ("bob",)


def denied(w: World) -> None:
    pending(w)
    w.clock.shift(timedelta(minutes=3))
    assert click(w.app, "carol", "deny_request", w.rids["rid"]).status == 200
    assert w.store.get(w.rids["rid"]).status is RequestStatus.DENIED


def active_readonly(w: World) -> None:
    w.rids["rid"] = request(w.app, "alice", "prod readonly 1h checking dashboards")
    w.clock.shift(timedelta(minutes=1))
    assert click(w.app, "carol", "approve_request", w.rids["rid"]).status == 200
    assert w.store.get(w.rids["rid"]).grant_status is GrantStatus.ACTIVE


def grant_expired(w: World) -> None:
    active_readonly(w)
    w.clock.shift(timedelta(hours=1, minutes=5))
    w.app.sweep()
    req = w.store.get(w.rids["rid"])
    assert req.grant_status is GrantStatus.EXPIRED
    w.rids["expired"] = hhmm(req.expires_at)  # 15:01 UTC; the sweep ran at 15:06


def pending_lapsed(w: World) -> None:
    """Pending past its window, but the sweep has not run yet."""
    pending(w)
    w.clock.shift(timedelta(hours=1, minutes=1))


def no_setup(w: World) -> None:
    pass


# ---- the table ------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[World], None]
    who: str  # person key or raw Slack user id
    kind: str  # "cmd" or "click"
    text: str  # command text, or "action_id value" for clicks ({rid} is filled in)
    expect: str  # exact ephemeral text ({rid}, {expired} filled in)
    exact: bool = True


NOT_APPROVER = "You are not an approver of prod/admin; approvers: @bob, @carol."

CASES = [
    # -- requests -------------------------------------------------------------------
    Case("unknown-account", no_setup, "alice", "cmd", "prd admin 2h fixing it",
         "unknown account 'prd'; accounts: dev, prod"),
    Case("unknown-role", no_setup, "alice", "cmd", "prod adm 2h fixing it",
         "unknown role 'adm' in prod; roles: admin, readonly"),
    Case("bad-duration", no_setup, "alice", "cmd", "prod admin 2x fixing it",
         "'2x' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
    Case("negative-duration", no_setup, "alice", "cmd", "prod admin -1h fixing it",
         "'-1h' is not a duration; use e.g. 30m, 2h, 1h30m or 1d"),
    Case("zero-duration", no_setup, "alice", "cmd", "prod admin 0h fixing it", "duration must be positive"),
    Case("zero-minutes", no_setup, "alice", "cmd", "prod admin 0d0h0m fixing it", "duration must be positive"),
    Case("over-max", no_setup, "alice", "cmd", "prod admin 5h fixing it", "prod/admin allows at most 4h"),
    Case("over-max-dev", no_setup, "bob", "cmd", "dev admin 1d1m", "dev/admin allows at most 1d"),
    Case("absurd-duration", no_setup, "alice", "cmd", "prod admin 400d fixing it",
         "prod/admin allows at most 4h"),  # the role's cap, not the parser's 365d
    Case("missing-reason", no_setup, "alice", "cmd", "prod admin 2h",
         "production requests need a reason: `/aws-access prod admin 2h &lt;reason&gt;`"),
    Case("reason-too-long", no_setup, "alice", "cmd", "prod admin 2h " + "x" * 301,
         "the reason is 301 characters; keep it", exact=False),
    Case("not-a-requester", no_setup, "carol", "cmd", "prod admin 1h fixing it",
         "you may not request `prod/admin`; see `/aws-access help` for what you may request"),
    Case("stranger-request", no_setup, STRANGER, "cmd", "prod admin 1h fixing it",
         f"You are not in the Drawbridge catalog (Slack user `{STRANGER}`); "
         "ask an admin to add you to `policies/access.toml`."),
    Case("stranger-list", no_setup, STRANGER, "cmd", "list",
         f"You are not in the Drawbridge catalog (Slack user `{STRANGER}`); "
         "ask an admin to add you to `policies/access.toml`."),
    Case("too-few-words", no_setup, "alice", "cmd", "prod admin",
         "a request needs an account, a role and a duration.\n" + USAGE),
    Case("second-request-while-pending", pending, "alice", "cmd", "prod admin 1h again",
         "you already have `{rid}` for `prod/admin` (pending); revoke it first with `/aws-access revoke {rid}`"),
    Case("second-request-while-active", active_readonly, "alice", "cmd", "prod readonly 2h more",
         "you already have `{rid}` for `prod/readonly` (active until 15:01 UTC); "
         "revoke it first with `/aws-access revoke {rid}`"),
    Case("list-with-args", no_setup, "alice", "cmd", "list all", "`list` takes no arguments"),
    # -- revoke ---------------------------------------------------------------------
    Case("revoke-without-id", no_setup, "alice", "cmd", "revoke",
         "usage: `/aws-access revoke &lt;request-id&gt;` (see `/aws-access list`)"),
    Case("revoke-two-ids", no_setup, "alice", "cmd", f"revoke {UNKNOWN_RID} {UNKNOWN_RID}",
         "usage: `/aws-access revoke &lt;request-id&gt;` (see `/aws-access list`)"),
    Case("revoke-malformed-id", no_setup, "alice", "cmd", "revoke req-123",
         "'req-123' is not a request id (they look like req-20261112-3fa9c1)"),
    Case("revoke-unknown-id", no_setup, "alice", "cmd", f"revoke {UNKNOWN_RID}",
         f"unknown request `{UNKNOWN_RID}` (see `/aws-access list`)"),
    Case("revoke-by-outsider", pending, "dave", "cmd", "revoke {rid}",
         "only the requester (@alice) or an approver of prod/admin can revoke {rid}"),
    Case("revoke-active-by-outsider", active_readonly, "dave", "cmd", "revoke {rid}",
         "only the requester (@alice) or an approver of prod/readonly can revoke {rid}"),
    Case("revoke-by-stranger", pending, STRANGER, "cmd", "revoke {rid}",
         f"You are not in the Drawbridge catalog (Slack user `{STRANGER}`); "
         "ask an admin to add you to `policies/access.toml`."),
    Case("revoke-expired-grant", grant_expired, "alice", "cmd", "revoke {rid}",
         "{rid} already expired at {expired}"),
    Case("revoke-denied", denied, "alice", "cmd", "revoke {rid}",
         "{rid} was already denied by @carol at 14:03 UTC"),
    # -- clicks ---------------------------------------------------------------------
    Case("approve-by-non-approver", pending, "dave", "click", "approve_request {rid}", NOT_APPROVER),
    Case("approve-by-requester", pending, "alice", "click", "approve_request {rid}", NOT_APPROVER),
    Case("self-approval", pending_bob_readonly, "bob", "click", "approve_request {rid}",
         "You cannot approve your own request (prod/readonly does not allow self-approval)."),
    Case("double-approve", approved_once, "bob", "click", "approve_request {rid}",
         "You already approved {rid} (1 of 2 approvals)."),
    Case("approve-after-deny", denied, "bob", "click", "approve_request {rid}",
         "was already denied by @carol at 14:03 UTC", exact=False),
    Case("deny-after-deny", denied, "bob", "click", "deny_request {rid}",
         "was already denied by @carol at 14:03 UTC", exact=False),
    Case("deny-after-grant", active_readonly, "bob", "click", "deny_request {rid}",
         "was already approved by @carol at 14:01 UTC", exact=False),
    Case("approve-after-pending-window", pending_lapsed, "bob", "click", "approve_request {rid}",
         "expired at 15:00 UTC without enough approvals", exact=False),
    Case("deny-by-non-approver", pending, "dave", "click", "deny_request {rid}", NOT_APPROVER),
    Case("click-unknown-request", pending, "bob", "click", f"approve_request {UNKNOWN_RID}",
         f"Unknown request `{UNKNOWN_RID}`; nothing was changed."),
    Case("click-unknown-action", pending, "bob", "click", "delete_request {rid}",
         "That button is not one Drawbridge knows; nothing was changed."),
    Case("click-forged-value", pending, "bob", "click", 'approve_request {{"request_id":"{rid}"}}',
         "That button does not carry a valid request id; nothing was changed."),
    Case("click-value-with-suffix", pending, "bob", "click", "approve_request {rid}x",
         "That button does not carry a valid request id; nothing was changed."),
    Case("click-by-stranger", pending, STRANGER, "click", "approve_request {rid}",
         "You are not in the Drawbridge catalog, so you cannot approve requests."),
    Case("deny-by-stranger", pending, STRANGER, "click", "deny_request {rid}",
         "You are not in the Drawbridge catalog, so you cannot deny requests."),
]


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


SETUPS = list(dict.fromkeys(c.setup for c in CASES))


@pytest.mark.parametrize("setup", SETUPS, ids=[s.__name__ for s in SETUPS])
def test_refusals_have_no_effect(setup, subtests, app_client, slack, store, stack, clock):
    """One fresh installation per setup; each refusal of that group runs on it as a subtest.

    Sharing the setup is sound because a refusal must not change anything: the state is
    snapshotted again before every case, and compared right after it.
    """
    w = World(app_client, clock, store)
    setup(w)
    for case in [c for c in CASES if c.setup is setup]:
        with subtests.test(case.name):
            clock.shift(timedelta(seconds=10))
            check_refusal(case, w, app_client, slack, store, stack)


def check_refusal(case: Case, w: World, app_client, slack, store, stack) -> None:
    fill = {"rid": w.rids.get("rid", ""), "expired": w.rids.get("expired", "")}
    text = case.text.format(**fill)
    expect = case.expect.format(**fill)
    rids = [w.rids["rid"]] if "rid" in w.rids else []
    before = snapshot(stack, slack, store, rids)
    calls_before = len(slack.calls)
    ephemerals_before = len(slack.ephemerals())

    if case.kind == "cmd":
        reply = command(app_client, case.who, text)
        assert reply.status == 200
        if case.exact:
            assert reply.body == {"response_type": "ephemeral", "text": expect}
        else:
            assert reply.body["response_type"] == "ephemeral" and expect in reply.text
        assert slack.calls[calls_before:] == []  # the answer is the HTTP reply; Slack is not called
    else:
        action, value = text.split(" ", 1)
        reply = click(app_client, case.who, action, value)
        assert reply.status == 200
        new = slack.ephemerals()[ephemerals_before:]
        assert len(new) == 1, [m.text for m in new]
        (eph,) = new
        assert eph.user == slack_id(app_client, case.who) and eph.channel == "C0APPROVE1"
        assert (eph.text == expect) if case.exact else (expect in eph.text), eph.text
        assert [c.method for c in slack.calls[calls_before:]] == ["chat.postEphemeral"]

    after = snapshot(stack, slack, store, rids)
    assert after == before
    if case.setup is active_readonly:  # the one setup that holds a live grant
        assert after["iam"] == {"alice": [f"drawbridge-{w.rids['rid']}"], "bob": [], "carol": [], "dave": []}
    else:
        assert after["iam"] == {p: [] for p in PEOPLE}


def test_table_covers_enough_refusals():
    assert len(CASES) >= 20
    assert len({c.name for c in CASES}) == len(CASES)


# ---- positive controls ------------------------------------------------------------------
def test_deny_by_approver(app_client, slack, store, stack, clock):
    rid = request(app_client, "alice", "prod admin 2h fixing incident 4521")
    clock.shift(timedelta(minutes=3))
    assert click(app_client, "carol", "deny_request", rid).status == 200

    req = store.get(rid)
    assert req.status is RequestStatus.DENIED and req.decided_by == "carol"
    (card,) = slack.find(channel="C0APPROVE1")
    assert card.event_type == "access_denied"
    assert card.event_payload == {"request_id": rid, "denied_by": "carol"}
    assert "Denied by <@U0CAROL001> at 14:03 UTC" in card.all_text()
    assert [b for b in card.blocks if b["type"] == "actions"] == []
    (dm,) = slack.dms("U0ALICE001")
    assert dm.event_type == "access_denied"
    assert dm.event_payload == {"request_id": rid, "denied_by": "carol"}
    assert "denied by <@U0CAROL001>" in dm.text
    assert store.open_for("alice") == []
    assert attached(stack) == {p: [] for p in PEOPLE}


def test_requester_cancels_pending(app_client, slack, store, clock):
    rid = request(app_client, "alice", "prod admin 2h fixing incident 4521")
    clock.shift(timedelta(minutes=5))
    reply = command(app_client, "alice", f"revoke {rid}")
    assert reply.body == {"response_type": "ephemeral", "text": f"Cancelled `{rid}` (`prod/admin`)."}
    req = store.get(rid)
    assert req.status is RequestStatus.CANCELLED and req.decided_by == "alice"
    (card,) = slack.find(channel="C0APPROVE1")
    assert card.event_type == "access_revoked"
    assert card.event_payload == {"request_id": rid, "revoked_by": "alice"}
    assert "Cancelled by <@U0ALICE001> at 14:05 UTC" in card.all_text()
    assert slack.dms("U0ALICE001") == []  # she did it herself
    assert store.open_for("alice") == []
    # the card's buttons are gone and a late click is refused
    assert click(app_client, "bob", "approve_request", rid).status == 200
    assert "was already cancelled by @alice at 14:05 UTC" in slack.ephemerals("U0BOB00001")[-1].text
    assert store.get(rid).status is RequestStatus.CANCELLED


def test_approver_revokes_active_grant(app_client, slack, store, stack, clock):
    rid = request(app_client, "alice", "prod readonly 2h checking dashboards")
    clock.shift(timedelta(minutes=1))
    assert click(app_client, "carol", "approve_request", rid).status == 200
    assert store.get(rid).grant_status is GrantStatus.ACTIVE
    assert attached(stack)["alice"] == [f"drawbridge-{rid}"]

    clock.shift(timedelta(minutes=10))
    reply = command(app_client, "bob", f"revoke {rid}")
    assert reply.text.startswith(f"Revoking `{rid}` (`prod/readonly`) now")
    req = store.get(rid)
    assert (req.status, req.grant_status, req.ended_by) == (RequestStatus.APPROVED, GrantStatus.REVOKED, "bob")
    assert attached(stack) == {p: [] for p in PEOPLE}
    (card,) = slack.find(channel="C0APPROVE1")
    assert card.event_type == "access_revoked"
    assert card.event_payload == {"request_id": rid, "revoked_by": "bob"}
    assert "Access revoked by <@U0BOB00001> at 14:11 UTC" in card.all_text()
    dms = slack.dms("U0ALICE001")
    assert [m.event_type for m in dms] == ["access_granted", "access_revoked"]
    assert dms[-1].event_payload == {"request_id": rid, "revoked_by": "bob"}
    assert "revoked by <@U0BOB00001>" in dms[-1].text
    assert store.open_for("alice") == []


def test_dev_self_approval_with_one_approval(app_client, slack, store, stack, clock):
    rid = request(app_client, "bob", "dev admin 1h")
    requested = slack.find(event_type="access_requested")[0].event_payload
    assert requested["reason"] == "" and requested["requester"] == "bob"
    clock.shift(timedelta(minutes=1))
    assert click(app_client, "bob", "approve_request", rid).status == 200
    req = store.get(rid)
    assert (req.status, req.grant_status, req.approvers) == (RequestStatus.APPROVED, GrantStatus.ACTIVE, ("bob",))
    assert req.expires_at == T0 + timedelta(minutes=1, hours=1)
    assert attached(stack) == {"alice": [], "bob": [f"drawbridge-{rid}"], "carol": [], "dave": []}
    (card,) = slack.find(channel="C0APPROVE1")
    assert card.event_type == "access_granted" and card.event_payload["approvers"] == ["bob"]
    assert [m.event_type for m in slack.dms("U0BOB00001")] == ["access_granted"]


def test_pending_request_expires(app_client, slack, store, stack, clock):
    rid = request(app_client, "alice", "prod admin 2h fixing incident 4521")
    clock.shift(timedelta(minutes=59))
    app_client.sweep()
    assert store.get(rid).status is RequestStatus.PENDING  # not yet

    clock.shift(timedelta(minutes=1, seconds=1))
    app_client.sweep()
    req = store.get(rid)
    assert req.status is RequestStatus.EXPIRED and req.grant_status is GrantStatus.NONE
    card, raised = slack.find(channel="C0APPROVE1")  # the card, and the escalation's notice
    assert raised.event_type == "approval_escalated" and "<@U0BOB00001> <@U0CAROL001>" in raised.text
    assert card.event_type == "access_expired" and card.event_payload == {"request_id": rid}
    assert "without enough approvals" in card.all_text()
    assert [b for b in card.blocks if b["type"] == "actions"] == []
    raised, dm = slack.dms("U0ALICE001")  # the 59-minute sweep raised it in the approvals channel, and told her
    assert raised.event_type == "approval_escalated" and "still waiting" in raised.text
    assert dm.event_type == "access_expired" and "expired without enough approvals" in dm.text
    assert store.open_for("alice") == []
    assert attached(stack) == {p: [] for p in PEOPLE}
    # a second sweep changes nothing
    calls = len(slack.calls)
    app_client.sweep()
    assert len(slack.calls) == calls and store.get(rid).version == req.version


def test_click_refusal_shows_the_request_id_verbatim(app_client, slack, store, clock):
    w = World(app_client, clock, store)
    denied(w)
    rid = w.rids["rid"]
    assert click(app_client, "bob", "approve_request", rid).status == 200
    (eph,) = slack.ephemerals("U0BOB00001")
    assert eph.text == f"{rid} was already denied by @carol at 14:03 UTC."
