"""IamGrants.extend against moto: a live grant's expiry moves later in one atomic switch of
the policy's default version, with the policy attached throughout - never a moment without
access, never a second grant."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from chalicelib import policy as pol
from chalicelib.adapters.iam import IamGrants
from chalicelib.domain.errors import GrantMismatch
from chalicelib.domain.model import Principal, iso_z
from local.seed import client as aws

ACCOUNT = "111111111111"
ROLE = "arn:aws:iam::222222222222:role/admin"
RID = "req-20261112-0a11ce"
EXPIRES = datetime(2026, 11, 12, 16, 2, 15, tzinfo=timezone.utc)
LATER = EXPIRES + timedelta(hours=1)
ALICE, DAVE = Principal.iam_user("alice"), Principal.iam_user("dave")


@pytest.fixture
def iam(aws_env):
    from moto import mock_aws

    with mock_aws():
        client = aws("iam", account_id=ACCOUNT)
        for user in ("alice", "dave"):
            client.create_user(UserName=user)
        yield client


@pytest.fixture
def grants(iam):
    return IamGrants(iam, ACCOUNT, path="/drawbridge/dev/")


def doc(expires_at: datetime, role: str = ROLE) -> dict:
    return pol.grant_policy(role, expires_at, RID)


def give(grants: IamGrants, tags: dict | None = None) -> str:
    return grants.grant(principal=ALICE, request_id=RID, document=doc(EXPIRES), description="test",
                        tags={"drawbridge:request-id": RID} if tags is None else tags)


def extend(grants: IamGrants, expires_at: datetime = LATER, principal=ALICE, role: str = ROLE) -> str:
    return grants.extend(principal=principal, request_id=RID, document=doc(expires_at, role))


def calls(client, *ops: str) -> list[str]:
    """The names of the client's calls of ``ops`` from now on (appended as they succeed)."""
    seen: list[str] = []
    for op in ops:
        client.meta.events.register(f"after-call.iam.{op}", lambda model, **_: seen.append(model.name))
    return seen


def versions(iam, arn: str) -> list[dict]:
    return iam.list_policy_versions(PolicyArn=arn)["Versions"]


def holdings(observer, user: str = "alice") -> list[tuple[str, str, str | None]]:
    """Every Drawbridge policy the user holds: (ARN, role allowed, until when) of its default version."""
    out = []
    for p in observer.list_attached_user_policies(UserName=user)["AttachedPolicies"]:
        if "/drawbridge/" not in p["PolicyArn"]:
            continue
        version = observer.get_policy(PolicyArn=p["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = observer.get_policy_version(PolicyArn=p["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
        (st,) = document["Statement"]
        out.append((p["PolicyArn"], st["Resource"], pol.expiry_of(document)))
    return out


def test_extend_moves_the_expiry_of_the_one_policy_the_user_holds(iam, grants):
    arn = give(grants)
    assert extend(grants) == arn
    assert holdings(iam) == [(arn, ROLE, iso_z(LATER))]
    assert [p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]] == [arn]  # no second grant
    assert grants.attached_principals(arn) == [ALICE]  # nobody else
    (st,) = grants.document(arn)["Statement"]
    assert st["Condition"] == {"DateLessThan": {"aws:CurrentTime": iso_z(LATER)},
                               "Bool": {"aws:MultiFactorAuthPresent": "true"}}
    assert [v["IsDefaultVersion"] for v in versions(iam, arn)] == [True]  # the old version tidied away


def test_no_moment_without_access_and_never_two_grants(iam, grants):
    """IAM's state, looked at by another client before and after every call extend makes
    that changes it: the user always holds exactly one Drawbridge policy, for the role,
    until the old expiry at least."""
    arn = give(grants)
    observer = aws("iam", account_id=ACCOUNT)
    seen = []

    def snapshot(event_name, **_):
        seen.append((event_name.split(".")[0] + " " + event_name.split(".")[-1], holdings(observer)))

    for op in ("CreatePolicyVersion", "DeletePolicyVersion", "TagPolicy"):
        for when in ("before-call", "after-call"):
            iam.meta.events.register(f"{when}.iam.{op}", snapshot)

    extend(grants)

    assert [step for step, _ in seen] == ["before-call CreatePolicyVersion", "after-call CreatePolicyVersion",
                                         "before-call DeletePolicyVersion", "after-call DeletePolicyVersion"]
    for step, held in seen:
        assert len(held) == 1, step
        (held_arn, role, until) = held[0]
        assert (held_arn, role) == (arn, ROLE) and until >= iso_z(EXPIRES), step
    assert seen[0][1][0][2] == iso_z(EXPIRES) and seen[1][1][0][2] == iso_z(LATER)


def test_a_repeat_changes_nothing(iam, grants):
    arn = give(grants)
    extend(grants)
    before = versions(iam, arn)
    made = calls(iam, "CreatePolicyVersion", "DeletePolicyVersion", "TagPolicy")
    assert extend(grants) == arn
    assert made == [] and versions(iam, arn) == before


def test_a_lost_answer_then_a_retry_converges(iam, grants):
    arn = give(grants)
    lost = []

    def lose_answer(**_):  # the version was made; its answer never arrives
        if not lost:
            lost.append(1)
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "lost"}}, "CreatePolicyVersion")

    iam.meta.events.register("after-call.iam.CreatePolicyVersion", lose_answer)
    with pytest.raises(ClientError):
        extend(grants)
    assert holdings(iam) == [(arn, ROLE, iso_z(LATER))]  # it did happen
    made = calls(iam, "CreatePolicyVersion")
    assert extend(grants) == arn
    assert made == []  # no new version: the retry finds it done ...
    assert [v["IsDefaultVersion"] for v in versions(iam, arn)] == [True]  # ... and tidies the old one


def test_a_create_policy_version_sent_twice_leaves_one_version(iam, grants):
    """botocore resends a request whose answer was lost: IAM makes the version twice."""
    arn = give(grants)
    sent = []

    def resend_first(attempts, **_):
        sent.append(attempts)
        return 0 if attempts == 1 else None

    iam.meta.events.register("needs-retry.iam.CreatePolicyVersion", resend_first)
    assert extend(grants) == arn
    assert sent == [1, 2]
    (only,) = versions(iam, arn)
    assert only["IsDefaultVersion"] and holdings(iam) == [(arn, ROLE, iso_z(LATER))]


def test_a_policy_at_the_five_version_limit_is_extended(iam, grants):
    arn = give(grants)
    for _ in range(4):  # left over by earlier attempts whose clean-up failed
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=pol.render(doc(EXPIRES)), SetAsDefault=False)
    assert len(versions(iam, arn)) == 5
    assert extend(grants) == arn
    assert holdings(iam) == [(arn, ROLE, iso_z(LATER))]
    assert len(versions(iam, arn)) == 1
    for hours in range(2, 9):  # extended again and again: never stuck at the limit
        extend(grants, EXPIRES + timedelta(hours=hours))
    assert holdings(iam) == [(arn, ROLE, iso_z(EXPIRES + timedelta(hours=8)))]


def test_a_failed_clean_up_does_not_fail_the_extension(iam, grants):
    arn = give(grants)

    def refuse(**_):
        raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "DeletePolicyVersion")

    iam.meta.events.register("before-call.iam.DeletePolicyVersion", refuse)
    assert extend(grants) == arn
    assert holdings(iam) == [(arn, ROLE, iso_z(LATER))] and len(versions(iam, arn)) == 2
    iam.meta.events.unregister("before-call.iam.DeletePolicyVersion", refuse)
    extend(grants)  # the next call tidies up
    assert len(versions(iam, arn)) == 1


def iam_refuses_to_delete_a_policy_with_spare_versions(iam) -> None:
    """Real IAM's rule that moto does not apply: DeletePolicy is a DeleteConflict while the
    policy has versions besides its default (IAM API reference, DeletePolicy)."""
    observer = aws("iam", account_id=ACCOUNT)

    def conflict(params, **_):
        if len(observer.list_policy_versions(PolicyArn=params["PolicyArn"])["Versions"]) > 1:
            raise ClientError({"Error": {"Code": "DeleteConflict", "Message": "delete the versions first"}},
                              "DeletePolicy")

    iam.meta.events.register("before-parameter-build.iam.DeletePolicy", conflict)


@pytest.mark.parametrize("how", ["revoke", "remove_policy"])
def test_an_extended_grant_whose_old_version_was_left_is_still_removed(iam, grants, how):
    arn = give(grants)

    def refuse(**_):
        raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "DeletePolicyVersion")

    iam.meta.events.register("before-call.iam.DeletePolicyVersion", refuse)
    extend(grants)
    iam.meta.events.unregister("before-call.iam.DeletePolicyVersion", refuse)
    assert len(versions(iam, arn)) == 2
    iam_refuses_to_delete_a_policy_with_spare_versions(iam)

    if how == "revoke":
        assert grants.revoke(principal=ALICE, request_id=RID) == []
    else:
        grants.remove_policy(RID, [ALICE])
    assert holdings(iam) == []
    with pytest.raises(ClientError):
        iam.get_policy(PolicyArn=arn)


def test_the_switch_starts_from_the_expiry_iam_holds(iam, grants):
    """``expected_expiry``: a record whose expiry is not IAM's (edited in the table) moves nothing."""
    arn = give(grants)
    with pytest.raises(GrantMismatch, match="ends at 2026-11-12T16:02:15Z, not at 2026-11-12T20:00:00Z"):
        grants.extend(principal=ALICE, request_id=RID, document=doc(LATER), expected_expiry="2026-11-12T20:00:00Z")
    assert holdings(iam) == [(arn, ROLE, iso_z(EXPIRES))]
    assert grants.extend(principal=ALICE, request_id=RID, document=doc(LATER), expected_expiry=iso_z(EXPIRES)) == arn
    # a repeat after a lost answer: IAM already holds the document, the old expiry is gone: done
    assert grants.extend(principal=ALICE, request_id=RID, document=doc(LATER), expected_expiry=iso_z(EXPIRES)) == arn
    assert holdings(iam) == [(arn, ROLE, iso_z(LATER))]


def test_the_expiry_tag_follows_the_extension(iam, grants):
    arn = give(grants, tags={"drawbridge:request-id": RID, "drawbridge:expires-at": iso_z(EXPIRES)})
    extend(grants)
    tags = {t["Key"]: t["Value"] for t in iam.list_policy_tags(PolicyArn=arn)["Tags"]}
    assert tags == {"drawbridge:request-id": RID, "drawbridge:expires-at": iso_z(LATER)}


def test_a_policy_without_the_expiry_tag_is_not_tagged(iam, grants):
    arn = give(grants)
    tagged = calls(iam, "TagPolicy")
    extend(grants)
    assert tagged == []
    assert {t["Key"] for t in iam.list_policy_tags(PolicyArn=arn)["Tags"]} == {"drawbridge:request-id"}


def _unchanged(iam, arn: str) -> None:
    assert [v["IsDefaultVersion"] for v in versions(iam, arn)] == [True]
    assert holdings(iam) == [(arn, ROLE, iso_z(EXPIRES))]


def test_no_policy_no_extension(iam, grants):
    with pytest.raises(GrantMismatch, match="no policy drawbridge-dev-req-20261112-0a11ce"):
        extend(grants)
    assert iam.list_policies(Scope="Local")["Policies"] == []


def test_another_users_grant_is_not_extended(iam, grants):
    arn = give(grants)
    with pytest.raises(GrantMismatch, match="not attached to dave"):
        extend(grants, principal=DAVE)
    _unchanged(iam, arn)


def test_a_grant_copied_to_somebody_else_is_not_extended(iam, grants):
    arn = give(grants)
    iam.attach_user_policy(UserName="dave", PolicyArn=arn)  # by hand
    with pytest.raises(GrantMismatch, match="attached to dave too"):
        extend(grants)
    _unchanged(iam, arn)


def test_an_extension_never_changes_the_role(iam, grants):
    arn = give(grants)
    with pytest.raises(GrantMismatch, match="allows something else"):
        extend(grants, role="arn:aws:iam::222222222222:role/other")
    _unchanged(iam, arn)


def test_an_extension_never_widens_the_grant(iam, grants):
    arn = give(grants)
    wider = doc(LATER)
    wider["Statement"][0]["Action"] = "sts:*"
    with pytest.raises(GrantMismatch, match="allows something else"):
        grants.extend(principal=ALICE, request_id=RID, document=wider)
    _unchanged(iam, arn)


#: one extension on the real adapter: the policy read (GetPolicy, GetPolicyVersion), who holds
#: it (ListEntitiesForPolicy), its versions (room for one more, then the old ones to delete),
#: the switch (CreatePolicyVersion), the old version deleted, and the expiry tag moved
EXTEND_CALLS = {"GetPolicy": 1, "GetPolicyVersion": 1, "ListEntitiesForPolicy": 1, "CreatePolicyVersion": 1,
                "ListPolicyVersions": 2, "DeletePolicyVersion": 1, "TagPolicy": 1}


def test_one_extension_costs_a_fixed_handful_of_calls(iam, grants):
    from collections import Counter

    give(grants, tags={"drawbridge:request-id": RID, "drawbridge:expires-at": iso_z(EXPIRES)})
    seen: Counter = Counter()
    iam.meta.events.register("before-call.iam", lambda model, **_: seen.update([model.name]))
    extend(grants)
    assert dict(seen) == EXTEND_CALLS
    seen.clear()
    extend(grants)  # a repeat (a lost answer): reads, changes nothing
    assert "CreatePolicyVersion" not in seen and "TagPolicy" not in seen
