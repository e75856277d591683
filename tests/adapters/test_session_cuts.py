"""IamSessionCuts against moto: the IAM state of member accounts, reached as their revoker.

moto keeps one IAM per account and acts, for calls made with credentials from
``sts.assume_role`` of a role in account X, in account X (checked below), so the adapter's
cross-account path runs for real. What moto does not model is STS refusing a role that
does not exist (it issues credentials for any ARN): ``like_real_sts`` adds that refusal.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from chalicelib import cutoff
from chalicelib.adapters.session_cuts import IamSessionCuts
from chalicelib.domain.errors import CutOffsUnavailable
from local.seed import client as aws

MEMBER, OTHER = "222222222222", "333333333333"
BASTION = "123456789012"  # moto's default account: where the test's own keys act
REVOKER = "DrawbridgeSessionRevoker"
NOW = datetime(2026, 11, 12, 16, 0, tzinfo=timezone.utc)


def admin(account: str):
    return aws("iam", account_id=account)


def member_account(account: str, role: str = "admin", path: str = "/", *, policy: bool = True,
                   revoker: bool = True) -> str:
    """A member account as policies/member-account.yaml leaves it; returns the role's ARN."""
    iam = admin(account)
    arn = iam.create_role(RoleName=role, Path=path, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    if policy:
        p = iam.create_policy(PolicyName=cutoff.cutoff_policy_name(role), Path=cutoff.CUTOFF_POLICY_PATH,
                              PolicyDocument=json.dumps(cutoff.document([])))["Policy"]
        iam.attach_role_policy(RoleName=role, PolicyArn=p["Arn"])
    if revoker and not _exists(iam, REVOKER):
        iam.create_role(RoleName=REVOKER, AssumeRolePolicyDocument="{}")
    return arn


def _exists(iam, role: str) -> bool:
    try:
        iam.get_role(RoleName=role)
        return True
    except ClientError:
        return False


def policy_arn(account: str, role: str = "admin") -> str:
    return f"arn:aws:iam::{account}:policy/drawbridge/{cutoff.cutoff_policy_name(role)}"


def versions(account: str, role: str = "admin") -> list[dict]:
    return admin(account).list_policy_versions(PolicyArn=policy_arn(account, role))["Versions"]


def default_document(account: str, role: str = "admin") -> dict:
    (v,) = [v for v in versions(account, role) if v["IsDefaultVersion"]]
    return v["Document"]


def like_real_sts(session):
    """Real STS answers AccessDenied for a role that does not exist (or does not trust us)."""
    def refuse_missing_role(params, **_):
        account, role = params["RoleArn"].split(":")[4], params["RoleArn"].rsplit("/", 1)[1]
        if not _exists(admin(account), role):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized to perform "
                                         "sts:AssumeRole"}}, "AssumeRole")
    session.events.register("provide-client-params.sts.AssumeRole", refuse_missing_role)
    return session


class Sessions:
    """The adapter's session factory, counting the AssumeRole calls made through it."""

    def __init__(self):
        import boto3

        self.session = like_real_sts(boto3.session.Session(region_name="us-east-1"))
        self.assumed: list[str] = []
        self.session.events.register("provide-client-params.sts.AssumeRole",
                                     lambda params, **_: self.assumed.append(params["RoleArn"]))

    def __call__(self):
        return self.session


@pytest.fixture
def moto(aws_env):
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def sessions(moto):
    return Sessions()


@pytest.fixture
def cuts(sessions):
    return IamSessionCuts(sessions, REVOKER)


def cut(role_id: str, who: str = "alice", minutes: int = 0, rid: str = "req-20261112-0a11ce") -> cutoff.CutOff:
    return cutoff.CutOff(role_id, who, NOW + timedelta(minutes=minutes), rid)


# --------------------------------------------------------------------------- moto itself


def test_moto_acts_in_the_account_of_an_assumed_role(moto):
    """What every other test here relies on: the revoker's credentials act in its account."""
    import boto3

    member_account(MEMBER)
    creds = aws("sts").assume_role(RoleArn=f"arn:aws:iam::{MEMBER}:role/{REVOKER}",
                                   RoleSessionName="probe")["Credentials"]
    iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    assert iam.get_role(RoleName="admin")["Role"]["Arn"] == f"arn:aws:iam::{MEMBER}:role/admin"
    assert not _exists(aws("iam"), "admin")  # not in the test's own (bastion) account


# --------------------------------------------------------------------------- the port


def test_read_gives_the_templates_first_version(cuts):
    arn = member_account(MEMBER)
    assert cuts.read(arn) == cutoff.document([])


def test_role_id_is_the_member_accounts_role_not_a_same_named_bastion_role(cuts):
    arn = member_account(MEMBER)
    bastion_id = aws("iam").create_role(RoleName="admin", AssumeRolePolicyDocument="{}")["Role"]["RoleId"]
    got = cuts.role_id(arn)
    assert got == admin(MEMBER).get_role(RoleName="admin")["Role"]["RoleId"]
    assert got != bastion_id and got.startswith("AROA")


def test_a_role_with_a_path_is_found_by_its_name(cuts):
    arn = member_account(MEMBER, role="readonly", path="/jit/")
    assert arn == f"arn:aws:iam::{MEMBER}:role/jit/readonly"
    assert cuts.role_id(arn) == admin(MEMBER).get_role(RoleName="readonly")["Role"]["RoleId"]
    cuts.write(arn, cutoff.document([cutoff.cutoff_statement(cut(cuts.role_id(arn)))]))
    assert default_document(MEMBER, "readonly")["Statement"][0]["Sid"] == "Cutreq202611120a11ce"


def test_a_merged_document_survives_the_round_trip_through_iam(cuts):
    arn = member_account(MEMBER)
    role_id = cuts.role_id(arn)
    merged = cutoff.merge(cuts.read(arn), [cut(role_id, "alice"), cut(role_id, "bob", 5, "req-20261112-0b0b0b")],
                          NOW)
    assert merged.changed
    cuts.write(arn, merged.document)

    assert default_document(MEMBER) == merged.document  # what IAM holds
    back = cuts.read(arn)
    assert back == merged.document
    again = cutoff.merge(back, [], NOW)
    assert not again.changed  # nothing lost to IAM's encoding: merging what is there changes nothing
    # read back, a cut-off keeps its person and bound (its request id only as the Sid's letters)
    assert {(c.userid, c.bound) for c in again.kept} == {(c.userid, c.bound) for c in merged.kept}


def test_six_writes_keep_at_most_five_versions_and_the_last_is_the_default(cuts):
    arn = member_account(MEMBER)
    role_id = cuts.role_id(arn)
    docs = [cutoff.document([cutoff.cutoff_statement(cut(role_id, minutes=i, rid=f"req-{i}"))]) for i in range(7)]
    for i, doc in enumerate(docs):
        cuts.write(arn, doc)
        assert default_document(MEMBER) == doc, i
        assert len(versions(MEMBER)) <= cutoff.MAX_POLICY_VERSIONS
    assert len(versions(MEMBER)) == cutoff.MAX_POLICY_VERSIONS
    kept = sorted(versions(MEMBER), key=lambda v: int(v["VersionId"][1:]))
    # the oldest went first: the five newest remain
    assert [v["Document"] for v in kept] == docs[-5:]
    assert cuts.read(arn) == docs[-1]


def test_an_extra_version_from_a_lost_answer_leaves_room_for_the_next_write(cuts):
    """An earlier write whose answer was lost left its version (the default) behind, and the
    policy already holds five: the next write still lands."""
    arn = member_account(MEMBER)
    role_id = cuts.role_id(arn)
    for i in range(4):
        admin(MEMBER).create_policy_version(PolicyArn=policy_arn(MEMBER), SetAsDefault=True, PolicyDocument=json.dumps(
            cutoff.document([cutoff.cutoff_statement(cut(role_id, minutes=i, rid=f"req-lost{i}"))])))
    assert len(versions(MEMBER)) == 5
    doc = cutoff.document([cutoff.cutoff_statement(cut(role_id))])
    cuts.write(arn, doc)
    assert default_document(MEMBER) == doc and len(versions(MEMBER)) == 5
    assert cutoff.document([]) not in [v["Document"] for v in versions(MEMBER)]  # v1, the oldest, went


def test_a_version_created_between_making_room_and_writing_is_made_room_for_again(cuts, sessions):
    """A racing writer (or our own duplicate) fills the fifth slot after the adapter made
    room: CreatePolicyVersion fails with LimitExceeded once; the adapter prunes and retries."""
    arn = member_account(MEMBER)
    role_id = admin(MEMBER).get_role(RoleName="admin")["Role"]["RoleId"]  # (a client copies the hooks it is born with)
    for i in range(3):
        admin(MEMBER).create_policy_version(PolicyArn=policy_arn(MEMBER), SetAsDefault=False, PolicyDocument=json.dumps(
            cutoff.document([cutoff.cutoff_statement(cut(role_id, minutes=i, rid=f"req-old{i}"))])))
    racer = cutoff.document([cutoff.cutoff_statement(cut(role_id, "bob", rid="req-racer"))])
    raced = []

    def race(params, **_):
        if not raced:
            raced.append(admin(MEMBER).create_policy_version(PolicyArn=policy_arn(MEMBER), SetAsDefault=True,
                                                             PolicyDocument=json.dumps(racer)))
    sessions.session.events.register("provide-client-params.iam.CreatePolicyVersion", race)
    assert len(versions(MEMBER)) == 4  # room for one: the racer takes it

    ours = cutoff.document([cutoff.cutoff_statement(cut(role_id))])
    cuts.write(arn, ours)
    assert raced
    assert default_document(MEMBER) == ours
    assert len(versions(MEMBER)) == 5
    assert racer in [v["Document"] for v in versions(MEMBER)]  # the racer's default was not deleted under it


def test_a_write_that_keeps_failing_with_limit_exceeded_is_not_retried_forever(cuts, sessions):
    arn = member_account(MEMBER)

    def always_full(params, **_):
        raise ClientError({"Error": {"Code": "LimitExceeded", "Message": "full"}}, "CreatePolicyVersion")
    calls = []
    sessions.session.events.register("provide-client-params.iam.CreatePolicyVersion",
                                     lambda params, **_: calls.append(1))
    sessions.session.events.register("provide-client-params.iam.CreatePolicyVersion", always_full)
    with pytest.raises(ClientError, match="LimitExceeded"):
        cuts.write(arn, cutoff.document([]))
    assert len(calls) == 2
    assert default_document(MEMBER) == cutoff.document([]) and len(versions(MEMBER)) == 1


def test_two_member_accounts_are_kept_apart(cuts, sessions):
    a, b = member_account(MEMBER), member_account(OTHER)
    assert cuts.role_id(a) != cuts.role_id(b)
    doc = cutoff.document([cutoff.cutoff_statement(cut(cuts.role_id(a)))])
    cuts.write(a, doc)
    assert default_document(MEMBER) == doc
    assert default_document(OTHER) == cutoff.document([]) and len(versions(OTHER)) == 1
    assert cuts.read(b) == cutoff.document([])
    assert sorted(set(sessions.assumed)) == [f"arn:aws:iam::{acct}:role/{REVOKER}" for acct in (MEMBER, OTHER)]


def test_the_revoker_is_assumed_once_per_account_until_two_minutes_before_its_credentials_expire(sessions):
    import time

    arn = member_account(MEMBER)
    issued = time.time()  # moto's credentials expire DurationSeconds (900) after they are issued
    now = [issued]
    cuts = IamSessionCuts(sessions, REVOKER, clock=lambda: now[0])
    cuts.role_id(arn)
    now[0] = issued + 900 - 125  # (a few seconds of slack for the test's own run time)
    cuts.read(arn)
    cuts.write(arn, cutoff.document([]))
    assert len(sessions.assumed) == 1
    now[0] = issued + 900 - 115  # less than two minutes left: a fresh session
    cuts.read(arn)
    assert len(sessions.assumed) == 2
    cuts.role_id(member_account(OTHER))
    assert len(sessions.assumed) == 3  # another account, its own session


# --------------------------------------------------------------------------- not deployed there


def test_no_revoker_in_the_account(cuts):
    arn = member_account(MEMBER, revoker=False)
    for call in (lambda: cuts.role_id(arn), lambda: cuts.read(arn), lambda: cuts.write(arn, cutoff.document([]))):
        with pytest.raises(CutOffsUnavailable) as err:
            call()
        assert MEMBER in str(err.value) and REVOKER in str(err.value)
        assert "policies/member-account.yaml" in str(err.value)


def test_no_cut_off_policy_on_the_role(cuts):
    arn = member_account(MEMBER, policy=False)
    for call in (lambda: cuts.read(arn), lambda: cuts.write(arn, cutoff.document([]))):
        with pytest.raises(CutOffsUnavailable) as err:
            call()
        message = str(err.value)
        assert MEMBER in message and cutoff.cutoff_policy_name("admin") in message
        assert "policies/member-account.yaml" in message
    assert cuts.role_id(arn).startswith("AROA")  # the role itself is there


def test_no_such_role(cuts):
    member_account(MEMBER)
    with pytest.raises(CutOffsUnavailable, match=f"{MEMBER}.*ghost"):
        cuts.role_id(f"arn:aws:iam::{MEMBER}:role/ghost")


def test_other_errors_propagate(cuts, sessions):
    arn = member_account(MEMBER)

    def throttled(params, **_):
        raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "GetPolicy")
    sessions.session.events.register("provide-client-params.iam.GetPolicy", throttled)
    with pytest.raises(ClientError, match="Throttling"):
        cuts.read(arn)


def test_not_a_role_arn_is_refused(cuts):
    with pytest.raises(ValueError):
        cuts.role_id(f"arn:aws:iam::{MEMBER}:user/alice")


def test_documents_iam_hands_back_as_strings_are_decoded():
    from urllib.parse import quote

    from chalicelib.adapters.session_cuts import _document

    doc = cutoff.document([])
    assert _document(doc) == doc
    assert _document(json.dumps(doc)) == doc
    assert _document(quote(json.dumps(doc))) == doc


def test_importing_the_adapter_loads_no_aws_sdk():
    import subprocess
    import sys

    code = ("import sys, chalicelib.adapters.session_cuts; "
            "print([m for m in ('boto3', 'botocore') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_role_the_revoker_may_not_read_is_named(cuts, sessions):
    # the member template's revoker may read its own JIT roles only: a catalog role made
    # outside it is refused by IAM, and the error says which role and what to deploy
    arn = member_account(MEMBER)

    def denied(params, **_):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized to perform: iam:GetRole"}},
                          "GetRole")
    sessions.session.events.register("provide-client-params.iam.GetRole", denied)
    with pytest.raises(CutOffsUnavailable, match=f"revoker of account {MEMBER} may not read role admin"):
        cuts.role_id(arn)
