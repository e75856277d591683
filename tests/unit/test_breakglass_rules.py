"""Break-glass's pure parts: the grammar, the rules, the record's codec and the review's
timetable (chalicelib/slack/parse.py, domain/decide.py, domain/codec.py, domain/timing.py)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.catalog import parse_catalog
from chalicelib.domain.codec import RecordError, request_from_json
from chalicelib.domain.decide import decide_break_glass
from chalicelib.domain.model import Principal, Request
from chalicelib.domain.timing import due_at, review_next_at, review_steps_due
from chalicelib.slack.parse import BreakGlassCmd, CommandError, parse_command_text
from tests.fakes import SAMPLE_CATALOG

T0 = datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc)
REASON = "database down, pager silent"  # 4 words, 27 characters
ROLE = parse_catalog(SAMPLE_CATALOG.read_text().replace('# break_glass = ["alice"]', 'break_glass = ["alice"]')
                     ).accounts["prod"].roles["admin"]


def made(**changes) -> Request:
    req, _ = Request.broke_glass(
        T0, request_id="req-20261112-b0b0b0", requester="alice", requester_slack="U0ALICE001",
        principal=Principal.iam_user("alice"), account="prod", account_id="222222222222", role="admin",
        role_arn="arn:aws:iam::222222222222:role/admin", production=True, duration_seconds=3600,
        reason=REASON, review_due_at=T0 + timedelta(hours=24))
    return dataclasses.replace(req, **changes)


# ---------------------------------------------------------------- the grammar

def test_breakglass_parses_with_its_reason():
    assert parse_command_text(f"BreakGlass PROD Admin 1h {REASON}") == BreakGlassCmd("prod", "admin", "1h", REASON)


@pytest.mark.parametrize("text, why", [
    ("breakglass prod admin 1h", "at least a sentence"),
    ("breakglass prod admin 1h it is broken", "at least a sentence"),  # 4 words, 15 characters
    ("breakglass prod admin 1h database-is-down-and-on-fire", "at least a sentence"),  # 1 word
    ("breakglass prod", "needs an account, a role, a duration and a reason"),
    (f"breakglass pr<od admin 1h {REASON}", "is not an account"),
    ("breakglass prod admin 1h " + "x " * 200, "keep it to 300 or fewer"),
])
def test_breakglass_without_a_proper_reason_does_not_parse(text, why):
    with pytest.raises(CommandError, match=why):
        parse_command_text(text)


# ---------------------------------------------------------------- the rules

@pytest.mark.parametrize("person, duration, reason, allowed", [
    ("alice", "1h", REASON, True),  # exactly break_glass_max
    ("alice", "61m", REASON, False),
    ("alice", "30d", REASON, False),  # beyond the parser's cap: still the role's cap in the reason
    ("alice", "1h", "down, pager silent", False),  # 3 words, 18 characters
    ("alice", "1h", "db down now, pager silent", True),  # 5 words, 25 characters
    ("dave", "1h", REASON, False),  # a requester, not listed for break-glass
    ("bob", "1h", REASON, False),  # an approver, not listed
])
def test_decide_break_glass(person, duration, reason, allowed):
    decision = decide_break_glass(person, ROLE, duration, reason, [], 10)
    assert decision.allowed is allowed, decision.reason
    if duration in ("61m", "30d"):
        assert decision.reason == "break-glass on prod/admin allows at most 1h"


def test_decide_break_glass_counts_open_requests():
    other = dataclasses.replace(made(), role_arn="arn:aws:iam::222222222222:role/readonly")
    assert "the most one person may hold at once (1" in decide_break_glass("alice", ROLE, "1h", REASON, [other], 1).reason
    same = made()
    assert "you already have `req-20261112-b0b0b0`" in decide_break_glass("alice", ROLE, "1h", REASON, [same], 10).reason


# ---------------------------------------------------------------- the record

def test_a_break_glass_record_is_approved_granting_and_has_its_audit_event():
    req, event = Request.broke_glass(
        T0, request_id="req-20261112-b0b0b0", requester="alice", requester_slack="U0ALICE001",
        principal=Principal.iam_user("alice"), account="prod", account_id="222222222222", role="admin",
        role_arn="arn:aws:iam::222222222222:role/admin", production=True, duration_seconds=1800, reason=REASON)
    assert (req.state[0].value, req.state[1].value, req.decided_by, req.decided_at, req.expires_at) == (
        "APPROVED", "GRANTING", "alice", T0, T0 + timedelta(minutes=30))
    assert (req.approvals, req.approvals_required, req.break_glass, req.review_open) == ((), 0, True, True)
    assert (event.action, event.actor, event.reason, event.from_status) == ("break_glass", "alice", REASON, "-")


def test_the_codec_keeps_every_break_glass_field():
    req = made(reviewed_at=T0 + timedelta(hours=2), reviewed_by="bob", review_outcome="flagged",
               review_note="no incident", review_reminders=2, review_escalated_at=T0 + timedelta(hours=3))
    assert request_from_json(req.to_json()) == req
    plain = json.loads(made().to_json())
    for name in ("break_glass", "review_due_at", "reviewed_at", "reviewed_by", "review_outcome", "review_note",
                 "review_reminders", "review_escalated_at"):
        plain.pop(name)
    old = request_from_json(json.dumps(plain))  # a record written before break-glass
    assert (old.break_glass, old.review_due_at, old.review_reminders, old.review_open) == (False, None, 0, False)


@pytest.mark.parametrize("field, value", [("break_glass", "yes"), ("review_reminders", "2"),
                                          ("reviewed_at", 5), ("review_outcome", 1)])
def test_the_codec_refuses_break_glass_fields_of_the_wrong_type(field, value):
    plain = json.loads(made().to_json())
    plain[field] = value
    with pytest.raises(RecordError):
        request_from_json(json.dumps(plain))


# ---------------------------------------------------------------- the review's timetable

def test_reminders_double_until_the_deadline_then_the_escalation():
    req = made(grant_status="ACTIVE", expires_at=T0 + timedelta(hours=30))  # (a long grant, for the table)
    assert review_next_at(req) == T0 + timedelta(hours=1)
    steps = []
    for n in range(1, 6):
        req = dataclasses.replace(req, review_reminders=n)
        steps.append(review_next_at(req) - T0)
    assert steps == [timedelta(hours=h) for h in (2, 4, 8, 16, 24)]  # 32h is past the 24h deadline
    assert review_steps_due(req, T0 + timedelta(hours=23, minutes=59)) == 5
    assert review_next_at(dataclasses.replace(req, review_escalated_at=T0 + timedelta(hours=24))) is None
    assert review_next_at(dataclasses.replace(req, reviewed_at=T0)) is None


def test_an_ended_grant_stays_due_while_its_review_is_open():
    ended = made(grant_status="EXPIRED", expires_at=T0 + timedelta(hours=1), ended_at=T0 + timedelta(hours=1))
    assert due_at(ended) == T0 + timedelta(hours=1)
    assert due_at(dataclasses.replace(ended, reviewed_at=T0)) is None
    assert due_at(dataclasses.replace(ended, break_glass=False)) is None
