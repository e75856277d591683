"""chalicelib.alerts (pure): parsing CloudTrail AssumeRole* events and deciding alerts."""

from __future__ import annotations

import ast
import copy
import dataclasses
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.alerts import (
    FAILURE_WINDOW,
    AlertKind,
    Assumption,
    IdentityChange,
    client_label,
    covers,
    decide_alert,
    envelope_problem,
    failure_group_key,
    failure_window_start,
    identity_change_loud,
    parse_assumption,
    parse_identity_change,
    parse_utc,
)
from chalicelib.slack.escape import escape_mrkdwn
from tests.fixtures import cloudtrail_names, load_cloudtrail

BASTION = "111111111111"
UTC = timezone.utc
REPO = Path(__file__).resolve().parents[2]


def parse(event):
    return parse_assumption(event, bastion_account_id=BASTION)


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, 12, hh, mm, ss, tzinfo=UTC)


# --------------------------------------------------------------------------- fixtures

EXPECTED = {
    "assume_role_bastion_copy": dict(
        event_id="e7e70000-0000-4000-8000-000000000001",
        shared_event_id="5a5ed000-0000-4000-8000-000000000001",
        dedupe_key="5a5ed000-0000-4000-8000-000000000001",
        event_name="AssumeRole",
        event_time=at(14, 3, 7),
        role_arn="arn:aws:iam::222222222222:role/admin",
        account_id="222222222222",
        role_name="admin",
        caller_type="IAMUser",
        iam_user="alice",
        who="arn:aws:iam::111111111111:user/alice",
        session_name="alice",
        source_ip="203.0.113.10",
        via_console=False,
        mfa=True,
        error_code=None,
        error_message=None,
        recipient_account="111111111111",
        region="us-east-1",
        copy="caller",
    ),
    "assume_role_prod_copy": dict(
        event_id="e7e70000-0000-4000-8000-000000000002",
        shared_event_id="5a5ed000-0000-4000-8000-000000000001",
        dedupe_key="5a5ed000-0000-4000-8000-000000000001",
        event_name="AssumeRole",
        event_time=at(14, 3, 7),
        role_arn="arn:aws:iam::222222222222:role/admin",
        account_id="222222222222",
        role_name="admin",
        caller_type="AWSAccount",
        iam_user="alice",
        who="arn:aws:iam::111111111111:user/alice",
        session_name="alice",
        source_ip="203.0.113.10",
        via_console=False,
        mfa=True,
        error_code=None,
        recipient_account="222222222222",
        region="us-east-1",
        copy="role_owner",
    ),
    "assume_role_console_switch": dict(
        event_id="e7e70000-0000-4000-8000-000000000003",
        dedupe_key="5a5ed000-0000-4000-8000-000000000002",
        event_time=at(14, 20, 33),
        role_arn="arn:aws:iam::222222222222:role/readonly",
        account_id="222222222222",
        role_name="readonly",
        caller_type="IAMUser",
        iam_user="alice",
        source_ip="AWS Internal",
        user_agent="AWS Internal",
        via_console=True,
        mfa=True,
        error_code=None,
        copy="caller",
    ),
    "assume_role_denied": dict(
        event_id="e7e70000-0000-4000-8000-000000000005",
        shared_event_id=None,
        dedupe_key="e7e70000-0000-4000-8000-000000000005",
        event_time=at(13, 58, 41),
        role_arn="arn:aws:iam::222222222222:role/admin",
        account_id="222222222222",
        role_name="admin",
        caller_type="IAMUser",
        iam_user="alice",
        via_console=False,
        error_code="AccessDenied",
        error_message=(
            "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: "
            "sts:AssumeRole on resource: arn:aws:iam::222222222222:role/admin"
        ),
        mfa=None,  # it sent her MFA serial, but a refused call proves nothing by what it sent
        recipient_account="111111111111",
        copy="caller",
    ),
    "assume_role_with_saml_prod": dict(
        event_id="e7e70000-0000-4000-8000-000000000006",
        shared_event_id=None,
        dedupe_key="e7e70000-0000-4000-8000-000000000006",
        event_name="AssumeRoleWithSAML",
        event_time=at(15, 5, 12),
        role_arn="arn:aws:iam::222222222222:role/admin",
        account_id="222222222222",
        caller_type="SAMLUser",
        iam_user=None,
        who="alice@example.com",
        session_name="alice@example.com",
        via_console=True,
        mfa=None,
        error_code=None,
        recipient_account="222222222222",
        copy="role_owner",
    ),
    "assume_role_dev_account": dict(
        event_id="e7e70000-0000-4000-8000-000000000007",
        dedupe_key="5a5ed000-0000-4000-8000-000000000003",
        event_time=at(16, 30),
        role_arn="arn:aws:iam::333333333333:role/admin",
        account_id="333333333333",
        role_name="admin",
        iam_user="alice",
        via_console=False,
        mfa=True,
        copy="caller",
    ),
}


EXPECTED.update({
    "assume_root_bastion": dict(
        event_id="e7e70000-0000-4000-8000-000000000016",
        dedupe_key="e7e70000-0000-4000-8000-000000000016",
        event_name="AssumeRoot",
        event_time=at(15, 40, 2),
        role_arn="arn:aws:iam::222222222222:root",
        account_id="222222222222",  # the target member account, not where it was recorded
        role_name="root",
        caller_type="AssumedRole",
        iam_user=None,
        who="arn:aws:sts::111111111111:assumed-role/root-admin/erin",
        source_ip="203.0.113.40",
        mfa=True,  # the caller's session: sessionContext.attributes.mfaAuthenticated
        error_code=None,
        recipient_account="111111111111",
        copy="caller",
        access="root_session",
        note="arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials",
    ),
    "get_federation_token_prod": dict(
        event_id="e7e70000-0000-4000-8000-000000000011",
        event_name="GetFederationToken",
        event_time=at(14, 41, 5),
        role_arn="arn:aws:sts::222222222222:federated-user/deploy-bot-fed",
        account_id="222222222222",
        role_name="federated-user/deploy-bot-fed",
        caller_type="IAMUser",
        iam_user=None,  # an IAM user of prod, not of the bastion
        who="arn:aws:iam::222222222222:user/deploy-bot",
        session_name="deploy-bot-fed",
        mfa=False,  # a long-term AKIA key
        error_code=None,
        recipient_account="222222222222",
        access="federation_token",
    ),
    "console_login_root_prod": dict(
        event_id="e7e70000-0000-4000-8000-000000000013",
        event_name="ConsoleLogin",
        event_time=at(15, 30, 12),
        role_arn="arn:aws:iam::222222222222:root",
        account_id="222222222222",
        role_name="root",
        caller_type="Root",
        iam_user=None,
        who="arn:aws:iam::222222222222:root",
        source_ip="203.0.113.60",
        via_console=True,
        mfa=True,  # additionalEventData.MFAUsed "Yes"
        error_code=None,
        access="console_login",
    ),
    "console_login_iam_user_prod": dict(
        event_id="e7e70000-0000-4000-8000-000000000015",
        role_arn="arn:aws:iam::222222222222:user/ops-legacy",
        account_id="222222222222",
        role_name="user/ops-legacy",
        caller_type="IAMUser",
        iam_user=None,
        who="arn:aws:iam::222222222222:user/ops-legacy",
        mfa=False,
        error_code=None,
        access="console_login",
    ),
    "console_login_iam_user_failed_prod": dict(
        event_id="e7e70000-0000-4000-8000-000000000014",
        event_time=at(15, 33, 40),
        role_arn="arn:aws:iam::222222222222:user/ops-legacy",  # no ARN in a failed sign-in: built
        account_id="222222222222",
        who="ops-legacy",
        mfa=None,  # MFAUsed of a failed sign-in proves nothing
        error_code="Failed authentication",  # no errorCode: the errorMessage stands in
        error_message="Failed authentication",
        access="console_login",
    ),
})

NOT_A_WAY_IN = {"signin_switch_role", "iam_enable_mfa_device_self", "iam_create_access_key_by_admin",
                "cloudtrail_stop_logging_prod", "cloudtrail_put_event_selectors_denied_dev",
                "cloudtrail_describe_trails_prod", "events_delete_forwarding_rule_prod",
                "events_delete_other_rule_prod", "heartbeat_dev"}


def test_every_fixture_is_covered_by_this_file():
    assert set(cloudtrail_names()) == set(EXPECTED) | NOT_A_WAY_IN


@pytest.mark.parametrize("name", sorted(NOT_A_WAY_IN))
def test_other_fixtures_are_not_ways_in(name):
    assert parse(load_cloudtrail(name)) is None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_exact_values(name):
    a = parse(load_cloudtrail(name))
    assert isinstance(a, Assumption)
    actual = {field: getattr(a, field) for field in EXPECTED[name]}
    assert actual == EXPECTED[name]
    assert a.event_time.tzinfo is not None and a.event_time.utcoffset() == timedelta(0)


def test_signin_switch_role_is_not_an_assumption():
    assert parse(load_cloudtrail("signin_switch_role")) is None


def test_both_copies_of_one_call_name_alice_and_share_the_dedupe_key():
    caller = parse(load_cloudtrail("assume_role_bastion_copy"))
    owner = parse(load_cloudtrail("assume_role_prod_copy"))
    assert (caller.copy, owner.copy) == ("caller", "role_owner")
    assert caller.event_id != owner.event_id
    assert caller.dedupe_key == owner.dedupe_key == "5a5ed000-0000-4000-8000-000000000001"
    assert caller.iam_user == owner.iam_user == "alice"
    assert caller.who == owner.who
    assert caller.role_arn == owner.role_arn


def test_event_time_comes_from_cloudtrail_not_from_arrival():
    event = load_cloudtrail("assume_role_bastion_copy")
    event["time"] = "2026-11-12T18:00:00Z"  # delivered hours later
    assert parse(event).event_time == at(14, 3, 7)


def test_event_time_with_offset_and_fraction_is_normalised_to_utc():
    event = load_cloudtrail("assume_role_bastion_copy")
    event["detail"]["eventTime"] = "2026-11-12T16:03:07.250+02:00"
    assert parse(event).event_time == datetime(2026, 11, 12, 14, 3, 7, 250000, tzinfo=UTC)


# --------------------------------------------------------------------------- role ARN fallbacks


def test_denied_with_null_request_parameters_recovers_role_from_error_message():
    event = load_cloudtrail("assume_role_denied")
    event["detail"]["requestParameters"] = None
    a = parse(event)
    assert a.role_arn == "arn:aws:iam::222222222222:role/admin"
    assert (a.account_id, a.role_name) == ("222222222222", "admin")
    assert a.error_code == "AccessDenied"
    assert a.session_name is None
    assert a.iam_user == "alice"  # the IAMUser copy names the user whatever the outcome


def test_role_recovered_from_newer_error_message_wording():
    event = load_cloudtrail("assume_role_denied")
    event["detail"]["requestParameters"] = None
    event["detail"]["errorMessage"] = (
        "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: sts:AssumeRole "
        "on resource: arn:aws:iam::222222222222:role/ops/admin because no identity-based policy "
        "allows the sts:AssumeRole action"
    )
    a = parse(event)
    assert a.role_arn == "arn:aws:iam::222222222222:role/ops/admin"
    assert a.role_name == "ops/admin"


def test_role_from_resources_when_request_parameters_missing():
    event = load_cloudtrail("assume_role_bastion_copy")
    del event["detail"]["requestParameters"]
    a = parse(event)
    assert a.role_arn == "arn:aws:iam::222222222222:role/admin"
    assert a.mfa is False  # long-term AKIA key and no serialNumber to be seen


def test_saml_provider_resource_is_not_taken_for_the_role():
    event = load_cloudtrail("assume_role_with_saml_prod")
    del event["detail"]["requestParameters"]["roleArn"]
    event["detail"]["resources"].reverse()
    assert parse(event).role_arn == "arn:aws:iam::222222222222:role/admin"


def test_role_path_is_kept_in_role_name():
    event = load_cloudtrail("assume_role_bastion_copy")
    event["detail"]["requestParameters"]["roleArn"] = "arn:aws:iam::222222222222:role/ops/admin"
    a = parse(event)
    assert (a.role_name, a.account_id) == ("ops/admin", "222222222222")


# --------------------------------------------------------------------------- identity rules


def test_iam_user_of_another_account_is_not_a_bastion_user():
    event = load_cloudtrail("assume_role_bastion_copy")
    event["detail"]["userIdentity"]["accountId"] = "444444444444"
    event["detail"]["userIdentity"]["arn"] = "arn:aws:iam::444444444444:user/alice"
    a = parse(event)
    assert a.iam_user is None
    assert a.who == "arn:aws:iam::444444444444:user/alice"


def test_role_owner_copy_from_another_account_has_no_iam_user():
    event = load_cloudtrail("assume_role_prod_copy")
    event["detail"]["userIdentity"]["accountId"] = "444444444444"
    a = parse(event)
    assert a.iam_user is None
    assert a.who == "session alice from account 444444444444"


def test_role_owner_copy_from_a_bastion_role_session_has_no_iam_user():
    event = load_cloudtrail("assume_role_prod_copy")
    event["detail"]["userIdentity"]["principalId"] = "AROAEXAMPLEBASTION001:robot"
    event["detail"]["requestParameters"]["roleSessionName"] = "robot"
    assert parse(event).iam_user is None


def test_session_name_that_is_not_a_user_name_is_not_trusted():
    event = load_cloudtrail("assume_role_prod_copy")
    event["detail"]["requestParameters"]["roleSessionName"] = "<!channel>"
    a = parse(event)
    assert a.iam_user is None
    assert a.session_name == "<!channel>"  # kept raw; the views escape it


def test_assumed_role_caller():
    event = load_cloudtrail("assume_role_bastion_copy")
    event["detail"]["userIdentity"] = {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLEBASTION001:robot",
        "arn": "arn:aws:sts::111111111111:assumed-role/deployer/robot",
        "accountId": "111111111111",
        "accessKeyId": "ASIAEXAMPLEROBOT0001",
        "sessionContext": {"attributes": {"mfaAuthenticated": "false"}},
    }
    del event["detail"]["requestParameters"]["serialNumber"]
    a = parse(event)
    assert (a.caller_type, a.iam_user, a.mfa) == ("AssumedRole", None, False)
    assert a.who == "arn:aws:sts::111111111111:assumed-role/deployer/robot"


def test_web_identity_caller():
    event = load_cloudtrail("assume_role_with_saml_prod")
    detail = event["detail"]
    detail["eventName"] = "AssumeRoleWithWebIdentity"
    detail["userIdentity"] = {
        "type": "WebIdentityUser",
        "principalId": "token.actions.githubusercontent.com:sts.amazonaws.com:repo:example/infra:ref:refs/heads/main",
        "userName": "repo:example/infra:ref:refs/heads/main",
        "identityProvider": "token.actions.githubusercontent.com",
    }
    detail["sourceIPAddress"] = "203.0.113.50"
    detail["userAgent"] = "aws-sdk-js/3.600.0"
    detail["requestParameters"] = {
        "roleArn": "arn:aws:iam::222222222222:role/deploy",
        "roleSessionName": "gh-actions",
    }
    detail["responseElements"] = {"subjectFromWebIdentityToken": "repo:example/infra:ref:refs/heads/main"}
    a = parse(event)
    assert a.event_name == "AssumeRoleWithWebIdentity"
    assert a.who == "repo:example/infra:ref:refs/heads/main (token.actions.githubusercontent.com)"
    assert (a.iam_user, a.via_console, a.mfa, a.copy) == (None, False, None, "role_owner")
    assert client_label(a.user_agent, a.via_console) == "SDK (JavaScript)"


def test_same_account_assumption_is_the_caller_copy():
    event = load_cloudtrail("assume_role_bastion_copy")
    event["detail"]["requestParameters"]["roleArn"] = "arn:aws:iam::111111111111:role/tooling"
    assert parse(event).copy == "caller"


def _session_key(detail, mfa_authenticated=None):
    detail["requestParameters"].pop("serialNumber")
    detail["userIdentity"]["accessKeyId"] = "ASIAEXAMPLE000000001"
    if mfa_authenticated is not None:
        detail["userIdentity"]["sessionContext"] = {"attributes": {"mfaAuthenticated": mfa_authenticated}}


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: None, True),
        (lambda d: d["requestParameters"].pop("serialNumber"), False),  # AKIA key, no MFA serial
        (lambda d: _session_key(d), None),
        (lambda d: _session_key(d, "true"), True),
        (lambda d: _session_key(d, "false"), False),
    ],
    ids=["serial", "long-term-key", "session-unknown", "session-mfa", "session-no-mfa"],
)
def test_mfa(mutate, expected):
    event = load_cloudtrail("assume_role_bastion_copy")
    mutate(event["detail"])
    assert parse(event).mfa is expected


def _denied(detail):
    detail["errorCode"] = "AccessDenied"
    detail["errorMessage"] = ("User: arn:aws:iam::111111111111:user/alice is not authorized to perform: "
                              "sts:AssumeRole on resource: arn:aws:iam::222222222222:role/admin")
    detail["responseElements"] = None


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: None, None),  # serialNumber sent, call refused: the token may have been wrong
        (lambda d: d["requestParameters"].pop("serialNumber"), False),  # AKIA key, nothing presented
        (lambda d: _session_key(d), None),
        (lambda d: _session_key(d, "true"), True),  # the session signed in with MFA
        (lambda d: _session_key(d, "false"), False),
        (lambda d: (d["requestParameters"].update(serialNumber="arn:aws:iam::111111111111:mfa/alice"),
                    d["userIdentity"].update(accessKeyId="ASIAEXAMPLE000000001")), None),
    ],
    ids=["serial", "long-term-key", "session-unknown", "session-mfa", "session-no-mfa", "session-and-serial"],
)
def test_mfa_of_a_failed_call_comes_from_the_session_only(mutate, expected):
    event = load_cloudtrail("assume_role_bastion_copy")
    _denied(event["detail"])
    mutate(event["detail"])
    a = parse(event)
    assert a.failed and a.mfa is expected


def test_the_denied_fixture_does_not_claim_mfa():
    detail = load_cloudtrail("assume_role_denied")["detail"]
    assert detail["requestParameters"]["serialNumber"] == "arn:aws:iam::111111111111:mfa/alice"
    assert parse(load_cloudtrail("assume_role_denied")).mfa is None


# --------------------------------------------------------------------------- malformed input


def _with(path: str, value):
    event = load_cloudtrail("assume_role_bastion_copy")
    node = event
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return event


_DELETE = object()

MALFORMED = [
    ("None", None),
    ("empty dict", {}),
    ("list", [load_cloudtrail("assume_role_bastion_copy")]),
    ("string", "AssumeRole"),
    ("detail null", _with("detail", None)),
    ("detail list", _with("detail", [])),
    ("detail missing", _with("detail", _DELETE)),
    ("wrong source", _with("source", "aws.signin")),
    ("source missing", _with("source", _DELETE)),
    ("wrong detail-type", _with("detail-type", "AWS Service Event via CloudTrail")),
    ("GetCallerIdentity", _with("detail.eventName", "GetCallerIdentity")),
    ("eventName number", _with("detail.eventName", 7)),
    ("eventSource not sts", _with("detail.eventSource", "iam.amazonaws.com")),
    ("eventTime garbage", _with("detail.eventTime", "yesterday")),
    ("eventTime number", _with("detail.eventTime", 1794492187)),
    ("eventTime naive", _with("detail.eventTime", "2026-11-12T14:03:07")),
    ("eventTime month 13", _with("detail.eventTime", "2026-13-12T14:03:07Z")),
    ("eventTime missing", _with("detail.eventTime", _DELETE)),
    ("eventID missing", _with("detail.eventID", _DELETE)),
    ("eventID dict", _with("detail.eventID", {"a": 1})),
]


def _no_role_anywhere():
    event = _with("detail.requestParameters", None)
    del event["detail"]["resources"]
    return event


def _garbage_role_sources():
    event = _with("detail.requestParameters", ["x"])
    event["detail"]["resources"] = [None, 3, {"type": "AWS::IAM::Role", "ARN": 5}]
    event["detail"]["errorMessage"] = "on resource: arn:aws:iam::2222:role/x"
    return event


def _no_valid_role_arn():
    event = _with("detail.requestParameters.roleArn", "arn:aws:iam::2222:role/admin")
    event["detail"]["resources"] = [{"type": "AWS::IAM::Role", "ARN": "arn:aws:iam::222222222222:user/x"}]
    return event


MALFORMED += [
    ("role ARNs malformed", _no_valid_role_arn()),
    ("requestParameters null, no resources", _no_role_anywhere()),
    ("requestParameters list, resources garbage", _garbage_role_sources()),
]


@pytest.mark.parametrize("event", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_input_gives_none(event):
    assert parse(event) is None


@pytest.mark.parametrize(
    "path, value",
    [
        ("detail.userIdentity", None),
        ("detail.userIdentity", "IAMUser"),
        ("detail.userIdentity.type", ["IAMUser"]),
        ("detail.userIdentity.sessionContext", "x"),
        ("detail.responseElements", 3),
        ("detail.sharedEventID", 12),
        ("detail.sourceIPAddress", None),
        ("detail.userAgent", {"x": 1}),
        ("detail.recipientAccountId", None),
        ("detail.errorCode", ["AccessDenied"]),
        ("detail.requestParameters.roleSessionName", 42),
    ],
)
def test_odd_optional_fields_degrade_gracefully(path, value):
    a = parse(_with(path, value))
    assert a is not None
    assert a.role_arn == "arn:aws:iam::222222222222:role/admin"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
_KEYS = st.sampled_from(
    ["source", "detail-type", "detail", "eventName", "eventTime", "eventID", "userIdentity", "type",
     "requestParameters", "roleArn", "resources", "ARN", "errorMessage", "accountId", "sessionContext",
     "attributes", "mfaAuthenticated", "responseElements", "serialNumber", "roleSessionName"]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.one_of(_KEYS, st.text(max_size=8)), json_values, max_size=8))
def test_random_nested_dicts_never_raise(event):
    parse(event)


@st.composite
def mutated_fixture(draw):
    """A real fixture with a few values anywhere replaced by random JSON values."""
    event = copy.deepcopy(draw(st.sampled_from([load_cloudtrail(n) for n in cloudtrail_names()])))
    for _ in range(draw(st.integers(1, 4))):
        node = event
        while True:
            if not isinstance(node, dict) or not node:
                break
            key = draw(st.sampled_from(sorted(node)))
            if isinstance(node[key], dict) and node[key] and draw(st.booleans()):
                node = node[key]
                continue
            node[key] = draw(json_values)
            break
    return event


@settings(max_examples=300, deadline=None)
@given(mutated_fixture())
def test_mutated_fixtures_never_raise(event):
    a = parse(event)
    if a is not None:
        assert a.event_time.utcoffset() == timedelta(0)
        if a.access == "role":
            assert a.role_arn.endswith(":role/" + a.role_name)
        else:  # what was entered, in an account that is a 12-digit id (or unknown: "")
            assert isinstance(a.role_arn, str) and (a.account_id == "" or re.fullmatch(r"\d{12}", a.account_id))
    change = parse_identity_change(event)
    if change is not None:
        assert change.event_time.utcoffset() == timedelta(0)
        identity_change_loud(change)


# --------------------------------------------------------------------------- small rules


@pytest.mark.parametrize(
    "user_agent, via_console, label",
    [
        ("aws-cli/2.27.50 md/awscrt#0.26.1 ua/2.1 os/linux", False, "AWS CLI"),
        ("aws-cli/1.33.0 Python/3.11.7 Linux/6.8 botocore/1.34.0", False, "AWS CLI"),
        ("Boto3/1.44.5 md/Botocore#1.44.5 ua/2.1 os/linux lang/python#3.11.7", False, "SDK (boto3)"),
        ("aws-vault/v7.2.0 aws-sdk-go-v2/1.24.0", False, "aws-vault"),
        ("APN/1.0 HashiCorp/1.0 Terraform/1.9.0 aws-sdk-go-v2/1.30", False, "Terraform"),
        ("aws-internal/3 aws-sdk-java/1.12.780", False, "console"),
        ("AWS Internal", False, "console"),
        ("aws-cli/2.27.50", True, "console"),
        ("curl/8.0", False, "other client"),
        (None, False, "unknown client"),
        ("", False, "unknown client"),
    ],
)
def test_client_label(user_agent, via_console, label):
    assert client_label(user_agent, via_console) == label


GRANTED, EXPIRES = at(14, 2, 15), at(16, 2, 15)


@pytest.mark.parametrize(
    "event_time, expected",
    [
        (GRANTED - timedelta(seconds=1), False),
        (GRANTED, True),  # inclusive start
        (at(14, 3, 7), True),
        (EXPIRES, True),  # inclusive end
        (EXPIRES + timedelta(microseconds=1), False),
        (datetime(2026, 11, 12, 17, 2, 15, tzinfo=timezone(timedelta(hours=1))), True),  # = 16:02:15Z
        (datetime(2026, 11, 12, 17, 2, 16, tzinfo=timezone(timedelta(hours=1))), False),
    ],
)
def test_covers_boundaries(event_time, expected):
    assert covers(GRANTED, EXPIRES, event_time) is expected


def test_covers_refuses_naive_times():
    with pytest.raises(ValueError):
        covers(GRANTED, EXPIRES, datetime(2026, 11, 12, 14, 3, 7))


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-11-12T14:03:07Z", at(14, 3, 7)),
        ("2026-11-12T15:03:07+01:00", at(14, 3, 7)),
        ("2026-11-12T14:03:07", None),
        ("2026-11-12", None),
        ("Nov 12, 2026, 4:03:07 PM", None),
        (None, None),
        (3, None),
    ],
)
def test_parse_utc(value, expected):
    assert parse_utc(value) == expected


FIXTURE_A = {n: parse(load_cloudtrail(n)) for n in EXPECTED}
OK = FIXTURE_A["assume_role_bastion_copy"]
DENIED = FIXTURE_A["assume_role_denied"]


@pytest.mark.parametrize(
    "a, production, has_grant, kind",
    [
        (OK, True, True, AlertKind.COVERED),
        (OK, True, False, AlertKind.UNCOVERED),
        (DENIED, True, False, AlertKind.FAILED_ATTEMPT),
        (DENIED, True, True, AlertKind.FAILED_ATTEMPT),
        (OK, False, False, AlertKind.NOT_PRODUCTION),
        (OK, False, True, AlertKind.NOT_PRODUCTION),
        (DENIED, False, False, AlertKind.NOT_PRODUCTION),
        (OK, None, False, AlertKind.UNKNOWN_ACCOUNT),
        (DENIED, None, True, AlertKind.UNKNOWN_ACCOUNT),
    ],
)
def test_decide_alert(a, production, has_grant, kind):
    assert decide_alert(a, production=production, has_grant=has_grant) is kind


def _fixture(name: str) -> Assumption:
    return parse(load_cloudtrail(name))


@pytest.mark.parametrize("production", [True, False, None])
def test_a_root_session_is_always_loud(production):
    root = _fixture("assume_root_bastion")
    assert decide_alert(root, production=production, has_grant=True) is AlertKind.UNCOVERED
    failed = dataclasses.replace(root, error_code="AccessDenied")
    assert decide_alert(failed, production=production, has_grant=False) is AlertKind.FAILED_ATTEMPT


@pytest.mark.parametrize("name", ["get_federation_token_prod", "console_login_root_prod",
                                  "console_login_iam_user_prod"])
def test_no_grant_covers_the_other_ways_in(name):
    a = _fixture(name)
    assert decide_alert(a, production=True, has_grant=True) is AlertKind.UNCOVERED
    assert decide_alert(a, production=False, has_grant=False) is AlertKind.NOT_PRODUCTION
    assert decide_alert(a, production=None, has_grant=False) is AlertKind.UNKNOWN_ACCOUNT


def test_a_failed_console_sign_in_in_production_is_a_failed_attempt():
    a = _fixture("console_login_iam_user_failed_prod")
    assert decide_alert(a, production=True, has_grant=False) is AlertKind.FAILED_ATTEMPT


def test_root_signing_in_to_the_bastion_is_loud_an_iam_user_is_not():
    root = dataclasses.replace(_fixture("console_login_root_prod"), account_id=BASTION)
    assert decide_alert(root, production=None, has_grant=False, in_bastion=True) is AlertKind.UNCOVERED
    user = dataclasses.replace(_fixture("console_login_iam_user_prod"), account_id=BASTION)
    assert decide_alert(user, production=None, has_grant=False, in_bastion=True) is AlertKind.UNKNOWN_ACCOUNT


def test_assume_root_with_an_arn_target_and_a_denied_call_without_parameters():
    event = load_cloudtrail("assume_root_bastion")
    event["detail"]["requestParameters"]["targetPrincipal"] = "arn:aws:iam::222222222222:root"
    assert parse(event).account_id == "222222222222"
    event["detail"].update(requestParameters=None, responseElements=None, errorCode="AccessDenied",
                           errorMessage="User: arn:aws:sts::111111111111:assumed-role/root-admin/erin is not "
                                        "authorized to perform: sts:AssumeRoot on resource: arn:aws:iam::222222222222:root")
    a = parse(event)
    assert (a.account_id, a.failed, a.mfa, a.access) == ("222222222222", True, True, "root_session")


def test_federated_console_sign_ins_are_not_parsed():
    event = load_cloudtrail("console_login_iam_user_prod")
    event["detail"]["userIdentity"] = {"type": "AssumedRole", "accountId": "222222222222",
                                       "arn": "arn:aws:sts::222222222222:assumed-role/admin/alice"}
    assert parse(event) is None


# --------------------------------------------------------------------------- failed attempts, grouped


def test_the_failure_window_is_fixed_ten_minutes():
    assert FAILURE_WINDOW == timedelta(minutes=10)
    assert failure_window_start(at(14, 9, 59)) == at(14, 0)
    assert failure_window_start(at(14, 10)) == at(14, 10)


def test_failed_attempts_share_a_group_per_caller_target_and_window():
    denied = _fixture("assume_role_denied")  # 13:58:41
    again = dataclasses.replace(denied, event_id="e7e70000-0000-4000-8000-0000000000ff",
                                dedupe_key="e7e70000-0000-4000-8000-0000000000ff", event_time=at(13, 59, 59))
    assert failure_group_key(denied) == failure_group_key(again)
    assert failure_group_key(denied).startswith("20261112T1350Z#")
    assert failure_group_key(dataclasses.replace(denied, event_time=at(14, 0))) != failure_group_key(denied)
    assert failure_group_key(dataclasses.replace(denied, iam_user="bob")) != failure_group_key(denied)
    other_role = dataclasses.replace(denied, role_arn="arn:aws:iam::222222222222:role/readonly")
    assert failure_group_key(other_role) != failure_group_key(denied)
    hostile = dataclasses.replace(denied, iam_user=None, who="<!channel> " + "x" * 5000)
    assert len(failure_group_key(hostile)) == 55 and "<" not in failure_group_key(hostile)


# --------------------------------------------------------------------------- the envelope

CATALOG_ACCOUNTS = ["222222222222", "333333333333"]


def envelope(event):
    return envelope_problem(event, bastion_account_id=BASTION, catalog_account_ids=CATALOG_ACCOUNTS)


@pytest.mark.parametrize("name", sorted(n for n in cloudtrail_names() if not n.startswith("heartbeat")))
def test_every_fixture_has_a_believable_envelope(name):  # the heartbeat has no CloudTrail record: test_heartbeat.py
    assert envelope(load_cloudtrail(name)) is None


@pytest.mark.parametrize(
    "account, recipient, problem",
    [
        ("444444444444", "111111111111", "is not detail.recipientAccountId"),  # a member forging the bastion
        ("222222222222", "111111111111", "is not detail.recipientAccountId"),  # a catalog account forging it
        ("444444444444", "444444444444", "neither the bastion nor a catalog account"),
        ("111111111111", None, "is not detail.recipientAccountId"),
        (None, "111111111111", "no 12-digit envelope account"),
        ("1111", "1111", "no 12-digit envelope account"),
    ],
)
def test_forged_or_foreign_envelopes_are_refused(account, recipient, problem):
    event = load_cloudtrail("iam_create_access_key_by_admin")
    event["account"] = account
    event["detail"]["recipientAccountId"] = recipient
    assert problem in envelope(event)


def test_garbage_is_refused():
    assert envelope(None) and envelope({"account": "111111111111", "detail": "x"})


# --------------------------------------------------------------------------- IAM changes to a person


def test_an_mfa_device_enabled_by_the_person_with_mfa_is_quiet():
    c = parse_identity_change(load_cloudtrail("iam_enable_mfa_device_self"))
    assert isinstance(c, IdentityChange)
    assert (c.event_name, c.account_id, c.iam_user, c.subject) == (
        "EnableMFADevice", BASTION, "alice", "arn:aws:iam::111111111111:mfa/alice-phone")
    assert (c.actor, c.actor_user, c.by_self, c.mfa, c.via_console) == (
        "arn:aws:iam::111111111111:user/alice", "alice", True, True, True)
    assert identity_change_loud(c) is False


def test_an_access_key_created_by_someone_else_is_loud():
    c = parse_identity_change(load_cloudtrail("iam_create_access_key_by_admin"))
    assert (c.iam_user, c.subject, c.actor) == (
        "alice", "AKIAEXAMPLEALICE0002", "arn:aws:sts::111111111111:assumed-role/iam-admin/mallory")
    assert (c.by_self, c.mfa) == (False, False)
    assert identity_change_loud(c) is True


def test_the_person_without_mfa_is_loud_a_failure_never_is():
    event = load_cloudtrail("iam_enable_mfa_device_self")
    event["detail"]["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] = "false"
    assert identity_change_loud(parse_identity_change(event)) is True
    event["detail"]["errorCode"] = "AccessDenied"
    assert identity_change_loud(parse_identity_change(event)) is False


@pytest.mark.parametrize(
    "event_name, request_parameters, response, expected_user",
    [
        ("CreateAccessKey", None, {"accessKey": {"userName": "alice", "accessKeyId": "AKIAEXAMPLEALICE0003"}},
         "alice"),
        ("CreateAccessKey", {}, None, "alice"),  # no userName: IAM acts on the caller's own user
        ("DeleteVirtualMFADevice", {"serialNumber": "arn:aws:iam::111111111111:mfa/bob"}, None, "bob"),
        ("UpdateLoginProfile", {"userName": "carol", "passwordResetRequired": False}, None, "carol"),
        ("CreateLoginProfile", {"userName": "<!here>"}, None, None),  # not an IAM user name
    ],
)
def test_the_changed_user(event_name, request_parameters, response, expected_user):
    event = load_cloudtrail("iam_enable_mfa_device_self")
    event["detail"].update(eventName=event_name, requestParameters=request_parameters,
                           responseElements=response)
    assert parse_identity_change(event).iam_user == expected_user


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.update(source="aws.sts"),
        lambda e: e["detail"].update(eventName="CreateUser"),
        lambda e: e["detail"].update(eventSource="sts.amazonaws.com"),
        lambda e: e["detail"].update(eventTime="later"),
        lambda e: e.update(detail=None),
    ],
)
def test_not_an_identity_change(mutate):
    event = load_cloudtrail("iam_create_access_key_by_admin")
    mutate(event)
    assert parse_identity_change(event) is None


def test_what_reaches_the_security_channel():
    assert {k for k in AlertKind if k.posts_to_security_channel} == {
        AlertKind.COVERED,
        AlertKind.UNCOVERED,
        AlertKind.FAILED_ATTEMPT,
    }
    assert [k for k in AlertKind if k.loud] == [AlertKind.UNCOVERED]


@pytest.mark.parametrize(
    "text, escaped",
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here>", "&lt;!here&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<https://evil.example|AWS console>", "&lt;https://evil.example|AWS console&gt;"),
        ("a & b", "a &amp; b"),
        ("&lt;", "&amp;lt;"),
        ("alice", "alice"),
        ("", ""),
    ],
)
def test_escape_mrkdwn(text, escaped):
    assert escape_mrkdwn(text) == escaped


# --------------------------------------------------------------------------- purity

STDLIB = set(sys.stdlib_module_names)
#: chalicelib.alerts is a package: its modules may import each other
ALERTS_MODULES = {f"chalicelib.alerts.{p.stem}" for p in (REPO / "chalicelib" / "alerts").glob("*.py")}


@pytest.mark.parametrize(
    "module, allowed_local",
    [
        *[(f"chalicelib/alerts/{p.name}", {"chalicelib.event_pattern", *ALERTS_MODULES})
          for p in sorted((REPO / "chalicelib" / "alerts").glob("*.py"))],
        ("chalicelib/event_pattern.py", set()),
        ("chalicelib/slack/escape.py", set()),
    ],
)
def test_pure_modules_import_only_the_stdlib(module, allowed_local):
    tree = ast.parse((REPO / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    foreign = {m for m in imported if m.split(".")[0] not in STDLIB and m not in allowed_local}
    assert not foreign
    assert "os" not in {m.split(".")[0] for m in imported}
