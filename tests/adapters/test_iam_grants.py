"""IamGrants against moto, plus the one IAM rule moto does not model (DeleteConflict)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError

from chalicelib import policy as pol
from chalicelib.adapters.iam import IamGrants
from chalicelib.domain.model import Principal
from local.seed import client as aws

EXPIRES = datetime(2026, 11, 12, 16, 2, 15, tzinfo=timezone.utc)


@pytest.fixture
def iam(aws_env):
    from moto import mock_aws

    with mock_aws():
        client = aws("iam", account_id="111111111111")
        for user in ("alice", "dave"):
            client.create_user(UserName=user)
        yield client


def like_real_iam(client):
    """Real IAM refuses to delete a managed policy that is still attached (moto deletes it)."""
    def refuse_if_attached(params, **_):
        n = client.get_policy(PolicyArn=params["PolicyArn"])["Policy"]["AttachmentCount"]
        if n:
            raise ClientError({"Error": {"Code": "DeleteConflict",
                                         "Message": "Cannot delete a policy attached to entities."}},
                              "DeletePolicy")
    client.meta.events.register("provide-client-params.iam.DeletePolicy", refuse_if_attached)
    return client


def grant(grants: IamGrants, user: str, rid: str) -> str:
    return grants.grant(principal=Principal.iam_user(user), request_id=rid,
                        document=pol.grant_policy("arn:aws:iam::222222222222:role/admin", EXPIRES, rid),
                        description="test", tags={"drawbridge:request-id": rid})


def test_revoke_takes_a_copied_grant_back_from_everyone(iam):
    grants = IamGrants(like_real_iam(iam), "111111111111")
    arn = grant(grants, "alice", "req-20261112-0a11ce")
    iam.attach_user_policy(UserName="dave", PolicyArn=arn)  # copied by hand

    assert grants.revoke(principal=Principal.iam_user("alice"), request_id="req-20261112-0a11ce") == [
        Principal.iam_user("dave")]
    for user in ("alice", "dave"):
        assert iam.list_attached_user_policies(UserName=user)["AttachedPolicies"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == []


def test_stages_in_one_account_never_see_each_others_grants(iam):
    dev = IamGrants(iam, "111111111111", path="/drawbridge/dev/")
    prod = IamGrants(iam, "111111111111", path="/drawbridge/prod/")
    grant(prod, "alice", "req-20261112-0a11ce")
    grant(dev, "dave", "req-20261112-0b0b0b")
    assert [rid for rid, _, _ in dev.drawbridge_policies()] == ["req-20261112-0b0b0b"]
    assert [rid for rid, _, _ in prod.drawbridge_policies()] == ["req-20261112-0a11ce"]
    assert prod.arn("req-20261112-0a11ce").endswith(":policy/drawbridge/prod/drawbridge-prod-req-20261112-0a11ce")
    names = {p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]}
    # IAM policy names are unique per account whatever the path: the stage is in the name too
    assert names == {"drawbridge-prod-req-20261112-0a11ce", "drawbridge-dev-req-20261112-0b0b0b"}


def test_two_stages_may_hold_a_grant_with_the_same_request_id(iam):
    """Without the stage in the name, dev's CreatePolicy would hit prod's policy (same name)."""
    dev = IamGrants(iam, "111111111111", path="/drawbridge/dev/")
    prod = IamGrants(iam, "111111111111", path="/drawbridge/prod/")
    rid = "req-20261112-0a11ce"
    assert grant(prod, "alice", rid) != grant(dev, "dave", rid)
    assert [r for r, _, _ in dev.drawbridge_policies()] == [r for r, _, _ in prod.drawbridge_policies()] == [rid]
    dev.revoke(principal=Principal.iam_user("dave"), request_id=rid)
    assert [r for r, _, _ in prod.drawbridge_policies()] == [rid]
    assert len(iam.list_attached_user_policies(UserName="alice")["AttachedPolicies"]) == 1


@pytest.mark.parametrize("path", ["/drawbridge", "/other/", "/drawbridge/a/b/", "/drawbridge/../"])
def test_grant_paths_stay_under_drawbridge(path):
    with pytest.raises(ValueError):
        pol.check_path(path)


def test_grant_is_idempotent_and_revoke_of_nothing_succeeds(iam):
    grants = IamGrants(like_real_iam(iam), "111111111111")
    first = grant(grants, "alice", "req-20261112-0a11ce")
    assert grant(grants, "alice", "req-20261112-0a11ce") == first  # a retried worker
    assert len(iam.list_attached_user_policies(UserName="alice")["AttachedPolicies"]) == 1
    grants.revoke(principal=Principal.iam_user("alice"), request_id="req-20261112-0a11ce")
    assert grants.revoke(principal=Principal.iam_user("alice"), request_id="req-20261112-0a11ce") == []  # already gone
