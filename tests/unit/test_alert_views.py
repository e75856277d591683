"""chalicelib.slack.alert_views: Block Kit for the security channel."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timezone

import pytest
from slack_sdk.models.blocks import Block

from chalicelib.alerts import AlertKind, parse_assumption, parse_identity_change
from chalicelib.slack.alert_views import (
    LOUD_MENTION,
    access_label,
    alert_blocks,
    alert_metadata,
    format_event_time,
    identity_change_blocks,
    identity_changed_metadata,
    role_assumed_metadata,
    usage_reply_text,
)
from tests.fixtures import load_cloudtrail

BASTION = "111111111111"

GRANT = {
    "request_id": "req-20261112-0001",
    "reason": "fix incident 4521",
    "approvers": ["bob", "carol"],
    "requester": "alice",
    "granted_at": "2026-11-12T14:02:15Z",
    "expires_at": "2026-11-12T16:02:15Z",
}


def assumption(name: str, **detail):
    event = load_cloudtrail(name)
    event["detail"].update(detail)
    a = parse_assumption(event, bastion_account_id=BASTION)
    assert a is not None
    return a


def texts(node) -> list[str]:
    """Every "text" string anywhere in a block structure."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                found.append(value)
            else:
                found += texts(value)
    elif isinstance(node, list):
        for item in node:
            found += texts(item)
    return found


def render(name: str, kind: AlertKind, **detail):
    return alert_blocks(
        assumption(name, **detail),
        kind,
        account_key="prod",
        role_label="admin",
        grant=GRANT if kind is AlertKind.COVERED else None,
    )


def all_text(fallback: str, blocks: list[dict]) -> str:
    return "\n".join([fallback, *texts(blocks)])


@pytest.mark.parametrize("kind", list(AlertKind))
def test_blocks_are_valid_block_kit(kind):
    fallback, blocks = render("assume_role_bastion_copy", kind)
    assert fallback and blocks
    json.dumps(blocks)
    assert_within_slack_limits(blocks)


def test_covered_shows_the_event_and_the_grant():
    fallback, blocks = render("assume_role_bastion_copy", AlertKind.COVERED)
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Production role assumed", "emoji": True}}
    text = all_text(fallback, blocks)
    for expected in [
        "arn:aws:iam::111111111111:user/alice",
        "prod (222222222222) / admin",
        "2026-11-12 14:03:07 UTC",
        "203.0.113.10",
        "AWS CLI",
        "*MFA*\nyes",
        "req-20261112-0001",
        "fix incident 4521",
        "Approved by bob, carol",
        "expires 2026-11-12 16:02:15 UTC",
        "e7e70000-0000-4000-8000-000000000001",
    ]:
        assert expected in text, expected
    assert LOUD_MENTION not in text
    assert "NO APPROVED GRANT" not in text


def test_console_switch_shows_console_client():
    fallback, blocks = render("assume_role_console_switch", AlertKind.COVERED)
    text = all_text(fallback, blocks)
    assert "*Client*\nconsole" in text
    assert "AWS Internal (console)" in text


def test_uncovered_is_loud_and_distinct():
    fallback, blocks = render("assume_role_with_saml_prod", AlertKind.UNCOVERED)
    text = all_text(fallback, blocks)
    assert "NO APPROVED GRANT" in text
    assert ":rotating_light: *NO APPROVED GRANT*" in text
    assert "break-glass" in text and "drift" in text and "bypass" in text
    assert fallback.startswith(LOUD_MENTION)
    assert "alice@example.com" in text
    assert blocks[0]["type"] == "header"


def test_failed_attempt_is_a_quiet_notice():
    fallback, blocks = render("assume_role_denied", AlertKind.FAILED_ATTEMPT)
    text = all_text(fallback, blocks)
    assert "AccessDenied" in text
    assert "prod (222222222222) / admin" in text
    assert "2026-11-12 13:58:41 UTC" in text
    assert all(b["type"] != "header" for b in blocks)
    assert "<!" not in text and "<@" not in text


@pytest.mark.parametrize("kind", [AlertKind.NOT_PRODUCTION, AlertKind.UNKNOWN_ACCOUNT])
def test_non_posted_kinds_still_render_quietly(kind):
    fallback, blocks = render("assume_role_dev_account", kind)
    assert "<!" not in all_text(fallback, blocks)


HOSTILE = "<!channel>"


def hostile_assumption():
    event = load_cloudtrail("assume_role_with_saml_prod")
    detail = event["detail"]
    detail["requestParameters"]["roleSessionName"] = HOSTILE
    detail["responseElements"]["subject"] = "<@U0BOB00001> & <!everyone>"
    detail["userAgent"] = "<https://evil.example|aws-cli/2>"
    detail["sourceIPAddress"] = "<!subteam^S123>"
    detail["errorCode"] = "<!channel>"
    detail["errorMessage"] = "<!channel> on resource: arn:aws:iam::222222222222:role/admin"
    a = parse_assumption(event, bastion_account_id=BASTION)
    assert a is not None and a.session_name == HOSTILE
    return a


@pytest.mark.parametrize("kind", list(AlertKind))
def test_event_data_can_never_mention_anyone(kind):
    a = hostile_assumption()
    fallback, blocks = alert_blocks(
        a,
        kind,
        account_key="prod&<!here>",
        role_label="<!channel>",
        grant={**GRANT, "reason": "<!channel> please", "approvers": ["<@U1>"], "expires_at": "<!here>"},
    )
    text = all_text(fallback, blocks)
    for forbidden in ["<!channel>", "<!everyone>", "<@U", "<https://", "<!subteam"]:
        assert forbidden not in text
    assert "&lt;!channel&gt;" in text
    # the only mention anywhere is our own literal one, on the loud alert only
    expected_here = (fallback.count(LOUD_MENTION) + sum(t.count(LOUD_MENTION) for t in texts(blocks)))
    assert expected_here == (2 if kind is AlertKind.UNCOVERED else 0)
    assert HOSTILE not in usage_reply_text(a)


def assert_within_slack_limits(blocks: list[dict]) -> None:
    for block in blocks:
        Block.parse(block).validate_json()
        assert len(block.get("fields", [])) <= 10
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for element in block.get("elements", []):
            assert len(element["text"]) <= 3000


def test_long_values_are_truncated_within_slack_limits():
    a = assumption(
        "assume_role_denied", userAgent="x" * 5000, errorMessage="&" * 5000, errorCode="<" * 5000
    )
    a = dataclasses.replace(a, who="<" * 5000, session_name=">" * 5000, source_ip="&" * 5000)
    grant = {**GRANT, "reason": "<" * 5000, "approvers": ["&" * 64] * 50, "request_id": ">" * 5000}
    for kind in AlertKind:
        fallback, blocks = alert_blocks(a, kind, account_key="&" * 500, role_label="<" * 500, grant=grant)
        assert len(fallback) <= 4000
        assert_within_slack_limits(blocks)
        assert re.search(r"&(?!amp;|lt;|gt;)", all_text(fallback, blocks)) is None  # no half entity
    assert len(usage_reply_text(a)) <= 4000


@pytest.mark.parametrize(
    "name, detail, reply",
    [
        ("assume_role_bastion_copy", {}, "used at 14:03 UTC from 203.0.113.10, AWS CLI, MFA"),
        ("assume_role_console_switch", {}, "used at 14:20 UTC via console switch-role"),
        ("assume_role_with_saml_prod", {}, "used at 15:05 UTC via SAML console sign-in"),
        (
            "assume_role_bastion_copy",
            {"userAgent": "Boto3/1.44.5 md/Botocore#1.44.5", "sourceIPAddress": "198.51.100.7"},
            "used at 14:03 UTC from 198.51.100.7, SDK (boto3), MFA",
        ),
        ("assume_role_denied", {}, "denied at 13:58 UTC (AccessDenied) from 203.0.113.10"),
    ],
)
def test_usage_reply_text(name, detail, reply):
    assert usage_reply_text(assumption(name, **detail)) == reply


def test_format_event_time():
    assert format_event_time(assumption("assume_role_bastion_copy").event_time) == "2026-11-12 14:03:07 UTC"


def test_role_assumed_metadata_follows_the_contract():
    a = assumption("assume_role_prod_copy")
    metadata = role_assumed_metadata(
        a, AlertKind.COVERED, account_key="prod", role_key="admin", request_id="req-20261112-0001"
    )
    assert metadata["event_type"] == "role_assumed"
    payload = metadata["event_payload"]
    assert {k: payload[k] for k in ["account", "role", "role_arn", "iam_user", "event_id", "request_id"]} == {
        "account": "prod",
        "role": "admin",
        "role_arn": "arn:aws:iam::222222222222:role/admin",
        "iam_user": "alice",
        "event_id": "e7e70000-0000-4000-8000-000000000002",
        "request_id": "req-20261112-0001",
    }
    uncovered = role_assumed_metadata(a, AlertKind.UNCOVERED, account_key="prod", role_key="admin", request_id=None)
    assert uncovered["event_payload"]["request_id"] is None


# --------------------------------------------------------------------------- the other ways in

OTHER_WAYS_IN = ["assume_root_bastion", "get_federation_token_prod", "console_login_root_prod",
                 "console_login_iam_user_prod"]


@pytest.mark.parametrize("name", OTHER_WAYS_IN)
def test_the_other_ways_in_are_loud_and_say_what_they_are(name):
    a = assumption(name)
    fallback, blocks = alert_blocks(a, AlertKind.UNCOVERED, account_key="prod", role_label=None, grant=None)
    assert_within_slack_limits(blocks)
    text = all_text(fallback, blocks)
    label = access_label(a)
    assert fallback.startswith(f"{LOUD_MENTION} NO APPROVED GRANT: {label}")
    assert blocks[0]["type"] == "header" and label in blocks[0]["text"]["text"]
    assert "prod (222222222222)" in text and a.who in text
    assert fallback.count(LOUD_MENTION) + sum(t.count(LOUD_MENTION) for t in texts(blocks)) == 2


def test_labels_name_each_way_in():
    assert [access_label(assumption(n)) for n in OTHER_WAYS_IN] == [
        "root session (AssumeRoot)", "federation token (GetFederationToken)", "root user console sign-in",
        "IAM user console sign-in"]
    assert access_label(assumption("assume_role_bastion_copy")) == "production role"


def test_a_root_session_shows_its_task_policy():
    fallback, blocks = alert_blocks(assumption("assume_root_bastion"), AlertKind.UNCOVERED, account_key="prod",
                                    role_label=None, grant=None)
    text = all_text(fallback, blocks)
    assert "*Task policy*\narn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials" in text
    assert "sts:AssumeRoot" in text


def test_a_failed_console_sign_in_is_a_quiet_line():
    fallback, blocks = alert_blocks(assumption("console_login_iam_user_failed_prod"), AlertKind.FAILED_ATTEMPT,
                                    account_key="prod", role_label=None, grant=None)
    assert fallback.startswith("Denied attempt (IAM user console sign-in) on prod (222222222222) / user/ops-legacy")
    assert "Failed authentication" in fallback and LOUD_MENTION not in all_text(fallback, blocks)
    assert all(b["type"] != "header" for b in blocks)


def test_production_access_metadata_is_its_own_event_type():
    a = assumption("console_login_root_prod")
    meta = alert_metadata(a, AlertKind.UNCOVERED, account_key="prod", role_key=None, request_id=None)
    assert meta == {"event_type": "production_access", "event_payload": {
        "account": "prod", "access": "console_login", "event_name": "ConsoleLogin",
        "principal_arn": "arn:aws:iam::222222222222:root", "caller_type": "Root", "iam_user": None,
        "who": "arn:aws:iam::222222222222:root", "event_id": "e7e70000-0000-4000-8000-000000000013",
        "event_time": "2026-11-12T15:30:12Z", "mfa": True, "kind": "uncovered"}}
    role = alert_metadata(assumption("assume_role_bastion_copy"), AlertKind.UNCOVERED, account_key="prod",
                          role_key="admin", request_id=None)
    assert role["event_type"] == "role_assumed" and "attempts" not in role["event_payload"]


# --------------------------------------------------------------------------- grouped failed attempts

FIRST, LAST = datetime(2026, 11, 12, 14, 2, 3, tzinfo=timezone.utc), datetime(2026, 11, 12, 14, 9, 30, tzinfo=timezone.utc)


def test_one_attempt_reads_as_before():
    a = assumption("assume_role_denied")
    one = alert_blocks(a, AlertKind.FAILED_ATTEMPT, account_key="prod", role_label="admin", grant=None,
                       attempts={"count": 1, "first": a.event_time, "last": a.event_time})
    assert one == render("assume_role_denied", AlertKind.FAILED_ATTEMPT)


def test_a_group_says_how_often_since_when_and_the_last_time():
    a = assumption("assume_role_denied")
    fallback, blocks = alert_blocks(a, AlertKind.FAILED_ATTEMPT, account_key="prod", role_label="admin",
                                    grant=None, attempts={"count": 7, "first": FIRST, "last": LAST})
    assert fallback == ("Denied attempt on production role prod (222222222222) / admin by "
                        "arn:aws:iam::111111111111:user/alice (AccessDenied): denied 7 times since 14:02 UTC, "
                        "last at 14:09")
    assert "*denied 7 times since 14:02 UTC, last at 14:09*" in blocks[0]["text"]["text"]
    assert LOUD_MENTION not in all_text(fallback, blocks)
    assert_within_slack_limits(blocks)
    meta = role_assumed_metadata(a, AlertKind.FAILED_ATTEMPT, account_key="prod", role_key="admin",
                                 request_id=None, attempts={"count": 7, "first": FIRST, "last": LAST})
    payload = meta["event_payload"]
    assert (payload["kind"], payload["attempts"], payload["first_event_time"], payload["last_event_time"]) == (
        "failed_attempt", 7, "2026-11-12T14:02:03Z", "2026-11-12T14:09:30Z")


# --------------------------------------------------------------------------- IAM changes to a person


def change(name: str, **detail):
    event = load_cloudtrail(name)
    event["detail"].update(detail)
    c = parse_identity_change(event)
    assert c is not None
    return c


def test_a_quiet_change_by_the_person():
    c = change("iam_enable_mfa_device_self")
    fallback, blocks = identity_change_blocks(c, person="alice", loud=False)
    assert fallback == ("IAM change on a Drawbridge person: alice's MFA device arn:aws:iam::111111111111:mfa/alice-phone "
                        "was enabled by arn:aws:iam::111111111111:user/alice from 203.0.113.10 at "
                        "2026-11-12 14:45:10 UTC (MFA yes)")
    assert all(b["type"] != "header" for b in blocks) and LOUD_MENTION not in all_text(fallback, blocks)
    assert_within_slack_limits(blocks)


def test_a_loud_change_by_someone_else_without_mfa():
    c = change("iam_create_access_key_by_admin")
    fallback, blocks = identity_change_blocks(c, person="alice", loud=True)
    text = all_text(fallback, blocks)
    assert fallback.startswith(f"{LOUD_MENTION} IAM change on a Drawbridge person: alice's access key "
                               "AKIAEXAMPLEALICE0002 was created by arn:aws:sts::111111111111:assumed-role/iam-admin/mallory")
    assert blocks[0]["type"] == "header"
    assert "Done by someone other than the person; without MFA in the caller's session" in text
    assert fallback.count(LOUD_MENTION) + sum(t.count(LOUD_MENTION) for t in texts(blocks)) == 2
    assert_within_slack_limits(blocks)
    meta = identity_changed_metadata(c, person="alice", loud=True)
    assert meta == {"event_type": "identity_changed", "event_payload": {
        "account": "111111111111", "person": "alice", "iam_user": "alice", "event_name": "CreateAccessKey",
        "subject": "AKIAEXAMPLEALICE0002", "event_id": "e7e70000-0000-4000-8000-000000000017",
        "event_time": "2026-11-12T15:50:20Z", "actor": "arn:aws:sts::111111111111:assumed-role/iam-admin/mallory",
        "by_self": False, "mfa": False, "error_code": None, "loud": True}}


@pytest.mark.parametrize("loud", [True, False])
def test_iam_change_data_can_never_mention_anyone(loud):
    c = change("iam_create_access_key_by_admin", sourceIPAddress="<!channel>", userAgent="<@U1>",
               errorCode="<!everyone>" if not loud else None)
    c = dataclasses.replace(c, actor="<https://evil.example|bob>", subject="<!subteam^S1>" + "&" * 3000)
    fallback, blocks = identity_change_blocks(c, person="<!here>", loud=loud)
    text = all_text(fallback, blocks)
    for forbidden in ["<!channel>", "<!everyone>", "<@U", "<https://", "<!subteam"]:
        assert forbidden not in text
    assert fallback.count(LOUD_MENTION) + sum(t.count(LOUD_MENTION) for t in texts(blocks)) == (2 if loud else 0)
    assert_within_slack_limits(blocks)


@pytest.mark.parametrize("access", ["root_session", "federation_token", "console_login"])
@pytest.mark.parametrize("kind", [AlertKind.UNCOVERED, AlertKind.FAILED_ATTEMPT])
def test_other_ways_in_can_never_mention_anyone(access, kind):
    a = dataclasses.replace(hostile_assumption(), access=access, caller_type="<!channel>", note="<!here>",
                            role_name="<@U1>", role_arn="<!everyone>")
    fallback, blocks = alert_blocks(a, kind, account_key="<!channel>", role_label=None, grant=None,
                                    attempts={"count": 3, "first": a.event_time, "last": a.event_time})
    text = all_text(fallback, blocks)
    for forbidden in ["<!channel>", "<!everyone>", "<@U", "<https://", "<!subteam"]:
        assert forbidden not in text
    expected = 2 if kind is AlertKind.UNCOVERED else 0
    assert fallback.count(LOUD_MENTION) + sum(t.count(LOUD_MENTION) for t in texts(blocks)) == expected


@pytest.mark.parametrize("loud", [True, False])
def test_a_digest_never_lets_event_data_mention_anyone(loud):
    """A burst digest shows values kept raw in the table: each escaped once; the only
    mention is our own, on the loud digest (uncovered calls, each named on its own line)."""
    import json as _json

    from chalicelib.slack.alert_views import digest_line, digest_message, digest_where

    a = hostile_assumption()
    line = _json.loads(_json.dumps(digest_line(a, "prod&<!here>", "<!channel>")))
    d = {"key": "20261112T1410Z#loud#ab#0", "loud": loud, "principal": "<!channel>", "members": 2, "shown": 0,
         "first": "2026-11-12T14:10:00Z", "last": "2026-11-12T14:10:09Z", "counts": {} if loud else {"req-1": 2},
         "grants": {} if loud else {"req-1": {"where": digest_where(a, "<!here>", "<!channel>"),
                                               "requester": "<@U1>", "reason": "<!channel> please",
                                               "approvers": ["<!everyone>"], "expires_at": "2026-11-12T16:02:15Z"}},
         "lines": [line, {**line, "event_id": "e-2"}] if loud else []}
    text, blocks, meta = digest_message(d)
    every = all_text(text, blocks)
    for forbidden in ["<!channel>", "<!everyone>", "<@U", "<https://", "<!subteam"]:
        assert forbidden not in every
    mentions = text.count(LOUD_MENTION) + sum(t.count(LOUD_MENTION) for t in texts(blocks))
    assert mentions == (2 if loud else 0)
    if loud:
        assert meta["event_payload"]["event_ids"] == [a.event_id, "e-2"]
        assert a.event_id in every and "e-2" in every
    else:
        assert meta["event_payload"]["counts"] == {"req-1": 2} and "*2*" in every
    assert meta["event_type"] == "role_assumed_digest" and meta["event_payload"]["calls"] == 2
