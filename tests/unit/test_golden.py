"""Golden files: the IAM grant policy and the Block Kit Drawbridge posts.

The expected output lives in ``tests/golden/<name>.json``. After an intended change,
regenerate with ``UPDATE_GOLDEN=1 python -m pytest tests/unit/test_golden.py`` and
review the diff like code: it is exactly what IAM and Slack will receive.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from chalicelib.domain.model import Approval, Extension, GrantStatus, Principal, Request, RequestStatus
from chalicelib.policy import (
    DEFAULT_MANAGED_POLICIES_PER_USER,
    MANAGED_POLICY_MAX_CHARS,
    USER_INLINE_TOTAL_MAX_CHARS,
    grant_policy,
    grant_statement,
    iam_size,
    render,
)
from chalicelib.slack.views import APPROVE, APPROVE_EXTENSION, DENY, DENY_EXTENSION, DENY_WITH_REASON, card, granted_dm

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
RID = "req-20261112-0a11ce"
BASTION = "111111111111"
ROLE_ARN = "arn:aws:iam::222222222222:role/admin"
PEOPLE = {"alice": "U0ALICE001", "bob": "U0BOB00001", "carol": "U0CAROL001", "dave": "U0DAVE0001"}
APPROVERS = ("bob", "carol")


def t(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, 12, hh, mm, ss, tzinfo=timezone.utc)


BOB = Approval(person="bob", at=t(14, 1, 10))
CAROL = Approval(person="carol", at=t(14, 2, 15))
EXPIRES = t(16, 2, 15)  # the clock starts at the final approval (carol, 14:02:15)

PENDING = Request(
    request_id=RID, requester="alice", requester_slack="U0ALICE001", principal=Principal.iam_user("alice"),
    account="prod", account_id="222222222222", role="admin", role_arn=ROLE_ARN, production=True,
    duration_seconds=7200, reason="fix incident 4521 (db <primary> & replica)", approvals_required=2,
    created_at=t(14, 0), pending_until=t(15, 0),
)
ONE_APPROVAL = PENDING.change(approvals=(BOB,))
GRANTED = dict(status=RequestStatus.APPROVED, approvals=(BOB, CAROL), decided_by="carol",
               decided_at=CAROL.at, expires_at=EXPIRES)
ACTIVE = PENDING.change(**GRANTED, grant_status=GrantStatus.ACTIVE, granted_at=t(14, 2, 17),
                        policy_arn=f"arn:aws:iam::{BASTION}:policy/drawbridge/drawbridge-{RID}",
                        mfa_serial=f"arn:aws:iam::{BASTION}:mfa/alice-phone")
DENIED = ONE_APPROVAL.change(status=RequestStatus.DENIED, decided_by="carol", decided_at=t(14, 3, 40))
EXPIRED_REQUEST = ONE_APPROVAL.change(status=RequestStatus.EXPIRED, decided_by="drawbridge",
                                      decided_at=t(15, 0, 30))
EXPIRED_GRANT = ACTIVE.change(grant_status=GrantStatus.EXPIRED, ended_by="drawbridge", ended_at=t(16, 3))
REVOKED = ACTIVE.change(grant_status=GrantStatus.REVOKED, ended_by="alice", ended_at=t(15, 10, 5))
# The reason as typed (what the table holds): escaped once on the card, in a verbatim text object
TYPED = PENDING.change(reason="R&D <ops> <!channel> https://example.com/x &amp;lt;")

CARDS = {
    "card_pending": PENDING,
    "card_one_approval": ONE_APPROVAL,
    "card_active": ACTIVE,
    "card_denied": DENIED,
    "card_expired_request": EXPIRED_REQUEST,
    "card_expired_grant": EXPIRED_GRANT,
    "card_revoked": REVOKED,
    "card_typed_reason": TYPED,
}


def check_golden(name: str, value) -> None:
    """Compare ``value`` with tests/golden/<name>.json; with UPDATE_GOLDEN=1, write it instead."""
    value = json.loads(json.dumps(value))  # exactly what a JSON consumer sees
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.is_file(), f"no golden file {path}; generate it with UPDATE_GOLDEN=1 and review it"
    assert json.loads(path.read_text(encoding="utf-8")) == value, (
        f"output differs from {path}; if the change is intended, regenerate with UPDATE_GOLDEN=1 "
        "and review the diff")


# ==== the IAM grant ==================================================================
def test_grant_policy_golden():
    doc = grant_policy(ROLE_ARN, EXPIRES, RID)
    rendered = render(doc)
    check_golden("grant_policy", {"document": json.loads(rendered), "rendered": rendered,
                                  "iam_size": iam_size(doc)})


def test_render_is_compact_and_stable():
    doc = grant_policy(ROLE_ARN, EXPIRES, RID)
    rendered = render(doc)
    assert rendered == render(json.loads(rendered))
    assert not re.search(r"\s", rendered)
    assert iam_size(doc) == len(rendered) == 286


def test_grant_expiry_is_utc_with_z_whatever_zone_it_came_in():
    cet = timezone(timedelta(hours=1))
    doc = grant_policy(ROLE_ARN, datetime(2026, 11, 12, 17, 2, 15, 999999, tzinfo=cet), RID)
    assert doc["Statement"][0]["Condition"] == {
        "DateLessThan": {"aws:CurrentTime": "2026-11-12T16:02:15Z"},
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
    }


# How many grants fit where (see the module docstring of chalicelib/policy.py and
# docs/decisions/0001-grant-representation.md).
REALISTIC_ARN = "arn:aws:iam::222222222222:role/ops/admin"
LONGEST_NAME_ARN = "arn:aws:iam::222222222222:role/ops/" + "r" * 64  # IAM role names are at most 64


def inline_capacity(role_arn: str) -> tuple[int, int]:
    """Grants that fit in the user's 2,048-char inline budget: (one policy each, all in one policy)."""
    whole = iam_size(grant_policy(role_arn, EXPIRES, RID))
    statement = iam_size(grant_statement(role_arn, EXPIRES, RID))
    wrapper = iam_size({"Version": "2012-10-17", "Statement": []})
    one_each = USER_INLINE_TOTAL_MAX_CHARS // whole
    packed = (USER_INLINE_TOTAL_MAX_CHARS - wrapper + 1) // (statement + 1)  # +1: the comma between
    return one_each, packed


def test_grant_size_is_pinned():
    assert iam_size(grant_policy(REALISTIC_ARN, EXPIRES, RID)) == 290 < 300
    assert iam_size(grant_statement(REALISTIC_ARN, EXPIRES, RID)) == 251
    assert iam_size(grant_policy(LONGEST_NAME_ARN, EXPIRES, RID)) == 349


def test_inline_budget_holds_about_six_grants():
    # policy.py: "inline policies on a user share 2,048 non-whitespace characters, about 6 of these
    # statements". Exactly: 7 for a realistic role (8 if packed into one policy), 5-6 for the longest
    # role names -- so a user could hold only a handful of concurrent grants inline.
    assert inline_capacity(REALISTIC_ARN) == (7, 7)
    assert inline_capacity(ROLE_ARN) == (7, 8)
    assert inline_capacity(LONGEST_NAME_ARN) == (5, 6)
    for arn in (ROLE_ARN, REALISTIC_ARN, LONGEST_NAME_ARN):
        assert all(5 <= n <= 8 for n in inline_capacity(arn))


def test_one_managed_policy_per_grant_has_room_to_spare():
    # "a managed policy holds 6,144 characters on its own": one grant uses under 6% of it,
    # and the per-user limit becomes the managed-policy quota (10 by default), more than inline allows.
    assert MANAGED_POLICY_MAX_CHARS == 6144 and USER_INLINE_TOTAL_MAX_CHARS == 2048
    assert MANAGED_POLICY_MAX_CHARS // iam_size(grant_policy(REALISTIC_ARN, EXPIRES, RID)) == 21
    assert iam_size(grant_policy(LONGEST_NAME_ARN, EXPIRES, RID)) * 17 < MANAGED_POLICY_MAX_CHARS
    assert DEFAULT_MANAGED_POLICIES_PER_USER == 10 > max(inline_capacity(REALISTIC_ARN))


# ==== Block Kit ======================================================================
@pytest.mark.parametrize("name", list(CARDS))
def test_card_golden(name):
    text, blocks = card(CARDS[name], PEOPLE, APPROVERS)
    check_golden(name, {"text": text, "blocks": blocks})


def test_granted_dm_golden():
    text, blocks = granted_dm(ACTIVE, BASTION)
    check_golden("dm_granted", {"text": text, "blocks": blocks})


def test_granted_dm_without_an_mfa_device_golden():
    text, blocks = granted_dm(ACTIVE.change(mfa_serial=None), BASTION)
    check_golden("dm_granted_no_mfa_device", {"text": text, "blocks": blocks})


def _actions(blocks: list[dict]) -> list[dict]:
    return [b for b in blocks if b["type"] == "actions"]


@pytest.mark.parametrize("name", ["card_pending", "card_one_approval"])
def test_pending_cards_carry_approve_and_deny_with_only_the_request_id(name):
    _, blocks = card(CARDS[name], PEOPLE, APPROVERS)
    [actions] = _actions(blocks)
    assert [(e["type"], e["action_id"], e["value"]) for e in actions["elements"]] == [
        ("button", APPROVE, RID), ("button", DENY, RID), ("button", DENY_WITH_REASON, RID)]
    assert (APPROVE, DENY) == ("approve_request", "deny_request")


@pytest.mark.parametrize("name", [n for n, r in CARDS.items() if r.status is not RequestStatus.PENDING])
def test_decided_cards_have_no_buttons(name):
    _, blocks = card(CARDS[name], PEOPLE, APPROVERS)
    assert _actions(blocks) == []
    assert '"button"' not in json.dumps(blocks)


@pytest.mark.parametrize(("name", "status"), [
    ("card_pending", ":hourglass_flowing_sand: Waiting for approval (open until 15:00 UTC)"),
    ("card_one_approval", ":hourglass_flowing_sand: Waiting for approval (open until 15:00 UTC)"),
    ("card_active", ":white_check_mark: Approved by <@U0BOB00001>, <@U0CAROL001>. "
                    "*Access granted until 16:02 UTC*"),
    ("card_denied", ":no_entry_sign: Denied by <@U0CAROL001> at 14:03 UTC"),
    ("card_expired_request", ":hourglass: Expired at 15:00 UTC without enough approvals"),
    ("card_expired_grant", ":hourglass: Access expired at 16:02 UTC (approved by <@U0BOB00001>, <@U0CAROL001>)"
                           "; sessions already started end by 17:02 UTC at the latest"),
    ("card_revoked", ":no_entry: Access revoked by <@U0ALICE001> at 15:10 UTC "
                     "(approved by <@U0BOB00001>, <@U0CAROL001>); sessions already started end by 16:10 UTC "
                     "at the latest"),
])
def test_card_status_line(name, status):
    _, blocks = card(CARDS[name], PEOPLE, APPROVERS)
    # verbatim: the line may carry an IAM error (outside text); our own <@U…> mentions still work
    assert blocks[3] == {"type": "context", "elements": [{"type": "mrkdwn", "text": status, "verbatim": True}]}


HOSTILE = "<!channel> <!here> <@U0EVIL0001> & <https://evil|x>"


def test_hostile_reason_is_escaped_in_the_card():
    req = PENDING.change(reason=HOSTILE)
    text, blocks = card(req, PEOPLE, APPROVERS)
    everything = json.dumps({"text": text, "blocks": blocks}, ensure_ascii=False)
    reason = blocks[2]
    assert reason == {"type": "section", "text": {"type": "mrkdwn", "verbatim": True, "text": (
        "*Reason*\n&lt;!channel&gt; &lt;!here&gt; &lt;@U0EVIL0001&gt; &amp; &lt;https://evil|x&gt;")}}
    for raw in ("<!channel>", "<!here>", "<@U0EVIL0001>", "<https://evil", "<!"):
        assert raw not in everything
    # the card's own mentions (approvers) are intended and still there
    assert "<@U0BOB00001>" in everything and "<@U0CAROL001>" in everything


def test_typed_reason_is_escaped_exactly_once():
    _, blocks = card(TYPED, PEOPLE, APPROVERS)
    assert blocks[2]["text"] == {
        "type": "mrkdwn", "verbatim": True,
        "text": "*Reason*\nR&amp;D &lt;ops&gt; &lt;!channel&gt; https://example.com/x &amp;amp;lt;"}


def test_failed_grant_note_is_escaped_and_verbatim():
    req = ACTIVE.change(grant_status=GrantStatus.FAILED, note="<!here> see https://x.example/?a=1&b=2")
    _, blocks = card(req, PEOPLE, APPROVERS)
    assert blocks[3]["elements"] == [{
        "type": "mrkdwn", "verbatim": True,
        "text": ":x: Approved by <@U0BOB00001>, <@U0CAROL001>, but the grant failed: "
                "&lt;!here&gt; see https://x.example/?a=1&amp;b=2"}]


def test_hostile_iam_user_is_escaped_in_the_card():
    req = PENDING.change(principal=Principal.iam_user("<!channel>"))
    _, blocks = card(req, PEOPLE, APPROVERS)
    assert blocks[1]["fields"][0]["text"] == "*Requester*\n<@U0ALICE001> (IAM user `&lt;!channel&gt;`)"


def test_unknown_person_is_named_not_mentioned():
    req = ONE_APPROVAL.change(requester="zed")
    _, blocks = card(req, PEOPLE, APPROVERS)
    assert blocks[1]["fields"][0]["text"] == "*Requester*\n@zed (IAM user `alice`)"


def test_the_cli_flows_in_the_dm_pass_the_grants_mfa_condition():
    """aws:MultiFactorAuthPresent is absent from requests signed with long-term keys, so the DM
    never suggests assuming the role straight from the keys (``aws --profile prod-admin`` with
    ``mfa_serial``): aws-vault (GetSessionToken with MFA first) or an MFA session made by hand."""
    text = " ".join(b["text"]["text"] for b in granted_dm(ACTIVE, BASTION)[1] if b.get("text"))
    assert "aws --profile prod-admin sts" not in text
    assert "aws-vault exec prod-admin" in text
    assert f"aws sts get-session-token --profile bastion --serial-number {ACTIVE.mfa_serial}" in text
    assert "[profile prod-admin-cli]\nsource_profile = bastion-mfa\n" in text
    assert "mfa_serial" not in text.split("[profile prod-admin-cli]")[1].split("```")[0]


def test_ended_grants_say_when_live_sessions_end():
    from chalicelib.slack.views import ended_dm

    assert ended_dm(EXPIRED_GRANT, PEOPLE).endswith(
        "expired at 16:02 UTC; sessions already started end by 17:02 UTC at the latest.")
    assert ended_dm(REVOKED, PEOPLE).endswith("at 15:10 UTC; sessions already started end by 16:10 UTC at the latest.")


# ==== extensions (issue 16) ==========================================================
ASKED = Extension(n=1, seconds=3600, requested_at=t(15, 30), required=1, reason="still on <incident> 4521")
EXTENSION_ASKED = ACTIVE.change(extension=ASKED)
EXTENDED = ACTIVE.change(expires_at=t(17, 2, 15), extended_seconds=3600, extension=dataclasses.replace(
    ASKED, state=Extension.APPLIED, approvals=(Approval("bob", t(15, 35)),), decided_by="bob",
    decided_at=t(15, 35), old_expires_at=EXPIRES, new_expires_at=t(17, 2, 15)))
EXTENSION_CARDS = {"card_extension_asked": EXTENSION_ASKED, "card_extended": EXTENDED}


@pytest.mark.parametrize("name", list(EXTENSION_CARDS))
def test_extension_card_golden(name):
    text, blocks = card(EXTENSION_CARDS[name], PEOPLE, APPROVERS)
    check_golden(name, {"text": text, "blocks": blocks})


def test_an_extension_asked_carries_its_own_buttons_naming_which_extension():
    _, blocks = card(EXTENSION_ASKED, PEOPLE, APPROVERS)
    [actions] = _actions(blocks)
    assert actions["block_id"] == f"extend:{RID}:1"
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        (APPROVE_EXTENSION, RID), (DENY_EXTENSION, RID)]
    section = json.dumps(blocks)
    assert "still on &lt;incident&gt; 4521" in section and "<incident>" not in section  # escaped once


def test_an_applied_extension_has_no_buttons_and_shows_both_expiries():
    _, blocks = card(EXTENDED, PEOPLE, APPROVERS)
    assert _actions(blocks) == []
    text = json.dumps(blocks)
    assert "Access granted until 17:02 UTC* (extended by 1h)" in text
    assert "until 17:02 UTC, was 16:02 UTC" in text and "2h + 1h extended" in text
