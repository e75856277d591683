"""Seed a local AWS (moto, in-process or moto_server) from an access catalog.

Builds what a real installation has: the bastion account's IAM users (one per
catalog person, with access keys and an MFA device), a service identity for Drawbridge itself,
the member accounts' target roles (trusting the bastion, MFA required, session
name = IAM user name) with their session cut-off policies and each member account's
revoker role, and the table created from policies/table.json.
Shared by the test suite, ``make demo`` and ``make dev``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib import cutoff

ROOT = Path(__file__).resolve().parents[1]
TABLE_TEMPLATE = ROOT / "policies" / "table.json"
SERVICE_USER = "drawbridge-service"
#: policies/member-account.yaml RevokerRoleName's default (and chalicelib.wiring's)
REVOKER_ROLE = "DrawbridgeSessionRevoker"


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


@dataclass
class World:
    service: Keys  # what Drawbridge runs as (stands in for the Lambda role)
    people: dict[str, Keys] = field(default_factory=dict)  # person key -> their bastion keys
    table: str = ""


def client(service: str, *, account_id: str | None = None, keys: Keys | None = None,
           endpoint_url: str | None = None, region: str = "us-east-1"):
    """A boto3 client; ``account_id`` picks the moto account via moto's own header."""
    import boto3

    kwargs = {"region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if keys is not None:
        kwargs.update(aws_access_key_id=keys.access_key_id, aws_secret_access_key=keys.secret_access_key)
    else:
        kwargs.update(aws_access_key_id="AKIAEXAMPLESEED00001", aws_secret_access_key="seed")
    c = boto3.client(service, **kwargs)
    if account_id:
        def _add_account(request, **_):
            request.headers["x-moto-account-id"] = account_id
        c.meta.events.register(f"before-sign.{c.meta.service_model.endpoint_prefix}.*", _add_account)
    return c


def _bastion_may_assume(bastion_account_id: str, condition: dict | None = None) -> dict:
    statement = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{bastion_account_id}:root"},
                 "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def trust_policy(bastion_account_id: str) -> dict:
    """A JIT role's trust: a person of the bastion, with MFA, under their own user name."""
    return _bastion_may_assume(bastion_account_id, {
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
        "StringLike": {"sts:RoleSessionName": "${aws:username}"},
        "StringEquals": {"aws:PrincipalTag/drawbridge-human": "true"},
    })


def revoker_policy(roles: list) -> dict:
    """The member template's revoker permissions, for the seeded roles of one account."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadJitRoles", "Effect": "Allow", "Action": "iam:GetRole",
         "Resource": [r.role_arn for r in roles]},
        {"Sid": "WriteSessionCutoffs", "Effect": "Allow",
         "Action": ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions", "iam:CreatePolicyVersion",
                    "iam:DeletePolicyVersion"],
         # moto judges IAM calls on policies against the resource "*" (it resolves role ARNs
         # only), so here the policy calls are allowed on any resource; the template names
         # the cut-off policies exactly (tested as documents, tests/deploy/test_member_template.py)
         "Resource": "*"},
    ]}


def revoker_trust_policy(bastion_account_id: str) -> dict:
    """The member template's revoker trust (the worker and sweep roles; here any bastion role)."""
    return _bastion_may_assume(bastion_account_id)


def seed(catalog, table: str, *, endpoint_url: str | None = None, region: str = "us-east-1") -> World:
    from chalicelib.adapters.store import create_table_from_template

    bastion = catalog.bastion_account_id
    iam = client("iam", account_id=bastion, endpoint_url=endpoint_url, region=region)

    def user_with_keys(name: str, tags: list[dict] | None = None) -> Keys:
        iam.create_user(UserName=name, Tags=tags or [])
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Keys(key["AccessKeyId"], key["SecretAccessKey"])

    service = user_with_keys(SERVICE_USER)
    # Locally the service user may do anything; deployed, the Lambda role is least-privilege
    # (.chalice/policy-*.json).
    iam.put_user_policy(UserName=SERVICE_USER, PolicyName="local-admin", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    world = World(service=service, table=table)
    for person in catalog.people.values():
        # People carry the tag the JIT roles' trust requires (an administrator sets it; the
        # person cannot: their boundary has no iam:TagUser).
        world.people[person.key] = user_with_keys(person.iam_user, [{"Key": "drawbridge-human", "Value": "true"}])
        # Every person has enrolled a virtual MFA device named after their user, as the
        # deploy guide asks; the "access granted" DM names it (moto accepts any codes).
        serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=person.iam_user)["VirtualMFADevice"]
        iam.enable_mfa_device(UserName=person.iam_user, SerialNumber=serial["SerialNumber"],
                              AuthenticationCode1="123456", AuthenticationCode2="654321")

    for account in catalog.accounts.values():
        member = client("iam", account_id=account.id, endpoint_url=endpoint_url, region=region)
        for role in account.roles.values():
            path, _, name = role.role_name.rpartition("/")
            member.create_role(RoleName=name, Path=f"/{path}/" if path else "/",
                               AssumeRolePolicyDocument=json.dumps(trust_policy(bastion)),
                               MaxSessionDuration=3600)
            # its session cut-off policy, as policies/member-account.yaml creates it
            policy = member.create_policy(
                PolicyName=cutoff.cutoff_policy_name(name), Path=cutoff.CUTOFF_POLICY_PATH,
                PolicyDocument=json.dumps(cutoff.document([])))["Policy"]
            member.attach_role_policy(RoleName=name, PolicyArn=policy["Arn"])
        # the role Drawbridge assumes to write the cut-offs, with the template's permissions
        # (policies/member-account.yaml, RevokerRole) on these roles: the local stack
        # enforces identity policies, so a call the template does not allow fails here too
        # (moto does not judge the trust; the template's is tested as a document, tests/deploy)
        member.create_role(RoleName=REVOKER_ROLE, AssumeRolePolicyDocument=json.dumps(revoker_trust_policy(bastion)),
                           MaxSessionDuration=3600, Tags=[{"Key": "drawbridge", "Value": "revoker-role"}])
        member.put_role_policy(RoleName=REVOKER_ROLE, PolicyName="write-session-cutoffs",
                               PolicyDocument=json.dumps(revoker_policy(list(account.roles.values()))))

    create_table_from_template(client("dynamodb", keys=service, endpoint_url=endpoint_url, region=region),
                               table, str(TABLE_TEMPLATE))
    return world
