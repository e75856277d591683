"""Session cut-off policies in member accounts, written through each account's revoker role.

The adapter behind :class:`chalicelib.ports.SessionCuts`. A JIT role
``arn:<partition>:iam::<account>:role/<path>/<Name>`` has, in its own account, the
customer-managed policy ``/drawbridge/drawbridge-session-cutoffs-<Name>``
(chalicelib/cutoff.py) attached. Drawbridge (bastion account) cannot touch it directly:
it assumes ``arn:<partition>:iam::<account>:role/<revoker>`` (policies/member-account.yaml
``RevokerRole``: trusted by the bastion's worker and sweep roles only; allowed iam:GetRole
on the JIT roles and Get/GetVersion/ListVersions/CreateVersion/DeletePolicyVersion on the
cut-off policies, nothing else) and makes its IAM calls with those credentials.

* Credentials are cached per account until two minutes before they expire (a sweep that
  touches many roles of one account assumes the revoker once).
* ``write`` keeps the policy within IAM's five versions: it deletes the oldest version that
  is not the default (by CreateDate) before it creates the new default. A version created
  by an earlier attempt whose answer was lost (or by a racing writer) can make the create
  fail with ``LimitExceeded``: it makes room once more and tries once more.
* A member account that cannot take cut-offs (no revoker, or it does not trust us; no such
  role; no cut-off policy) is :class:`CutOffsUnavailable`, with what to deploy where.
  Anything else propagates: the caller treats it as transient (the sweep retries).

boto3/botocore are imported when used: nothing heavy at import time (boto3 is the Lambda
runtime's, not the zip's).
"""

from __future__ import annotations

import json
import time
from typing import Callable
from urllib.parse import unquote

from .. import cutoff
from ..domain.errors import CutOffsUnavailable

#: RoleSessionName of the revoker's sessions (CloudTrail in the member account shows it)
SESSION_NAME = "drawbridge-cutoffs"
#: the shortest session STS issues: the credentials are used for seconds
SESSION_SECONDS = 900
#: credentials this close to their expiry are not reused
REFRESH_MARGIN = 120
DEFAULT_REVOKER_ROLE = "DrawbridgeSessionRevoker"
_DEPLOY = "deploy policies/member-account.yaml (StackSet) there"


def _code(exc) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def _config():
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10)


class _Role:
    """The parts of a JIT role's ARN the adapter needs."""

    def __init__(self, role_arn: str) -> None:
        parts = role_arn.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "iam" or not parts[5].startswith("role/"):
            raise ValueError(f"not an IAM role ARN: {role_arn!r}")
        self.arn = role_arn
        self.partition, self.account = parts[1], parts[4]
        self.name = parts[5].rsplit("/", 1)[1]

    @property
    def policy_arn(self) -> str:
        return (f"arn:{self.partition}:iam::{self.account}:policy{cutoff.CUTOFF_POLICY_PATH}"
                f"{cutoff.cutoff_policy_name(self.name)}")


def _document(raw) -> dict:
    """A policy version's Document: botocore decodes it to a dict; a raw answer is the
    URL-encoded JSON IAM sends (or, from some stand-ins, plain JSON)."""
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return json.loads(unquote(raw))


class IamSessionCuts:
    def __init__(self, session: Callable[[], object], revoker_role: str = DEFAULT_REVOKER_ROLE,
                 endpoint: str | None = None, region: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``session``: returns the boto3 Session whose credentials are Drawbridge's own
        (wiring's ``_boto_session``); the revoker is assumed with them."""
        self._session = session
        self._revoker = revoker_role
        self._endpoint = endpoint
        self._region = region
        self._clock = clock
        self._sts = None
        #: account -> (IAM client with the revoker's credentials, when to stop using it)
        self._clients: dict[str, tuple[object, float]] = {}

    # -- the port

    def role_id(self, role_arn: str) -> str:
        from botocore.exceptions import ClientError

        role = _Role(role_arn)
        try:
            return self._iam(role).get_role(RoleName=role.name)["Role"]["RoleId"]
        except ClientError as exc:
            if _code(exc) == "NoSuchEntity":
                raise CutOffsUnavailable(
                    f"account {role.account} has no role {role.name} ({role.arn}): the catalog names a "
                    f"role that does not exist; {_DEPLOY}, or fix the catalog") from None
            if _code(exc) == "AccessDenied":  # the revoker covers the template's JIT roles only
                raise CutOffsUnavailable(
                    f"the revoker of account {role.account} may not read role {role.name} ({role.arn}): "
                    f"it is not one of the roles that account's member template made; {_DEPLOY}, "
                    "with this role among its role names") from None
            raise

    def read(self, role_arn: str) -> dict:
        from botocore.exceptions import ClientError

        role = _Role(role_arn)
        iam = self._iam(role)
        try:
            version = iam.get_policy(PolicyArn=role.policy_arn)["Policy"]["DefaultVersionId"]
            raw = iam.get_policy_version(PolicyArn=role.policy_arn, VersionId=version)["PolicyVersion"]["Document"]
        except ClientError as exc:
            self._missing_policy(role, exc)
            raise
        return _document(raw)

    def write(self, role_arn: str, document: dict) -> None:
        from botocore.exceptions import ClientError

        from ..policy import render

        role = _Role(role_arn)
        iam = self._iam(role)
        for attempt in (1, 2):
            try:
                self._make_room(iam, role.policy_arn)
                iam.create_policy_version(PolicyArn=role.policy_arn, PolicyDocument=render(document),
                                          SetAsDefault=True)
                return
            except ClientError as exc:
                self._missing_policy(role, exc)
                # a version made by a lost-answer attempt or a racing writer took the room
                if _code(exc) == "LimitExceeded" and attempt == 1:
                    continue
                raise

    # -- helpers

    @staticmethod
    def _make_room(iam, policy_arn: str) -> None:
        """Delete the oldest non-default version while the policy holds IAM's maximum."""
        from botocore.exceptions import ClientError

        versions = iam.list_policy_versions(PolicyArn=policy_arn)["Versions"]
        spare = sorted((v for v in versions if not v["IsDefaultVersion"]),
                       key=lambda v: (v["CreateDate"], int(v["VersionId"].lstrip("v") or 0)))
        for v in spare[:max(0, len(versions) - cutoff.MAX_POLICY_VERSIONS + 1)]:
            try:
                iam.delete_policy_version(PolicyArn=policy_arn, VersionId=v["VersionId"])
            except ClientError as exc:  # a racing writer deleted it first: the room is made
                if _code(exc) != "NoSuchEntity":
                    raise

    def _missing_policy(self, role: _Role, exc) -> None:
        if _code(exc) == "NoSuchEntity":
            raise CutOffsUnavailable(
                f"account {role.account} has no session cut-off policy for role {role.name} "
                f"({role.policy_arn}): {_DEPLOY}, with the role's name among its role names") from None

    def _iam(self, role: _Role):
        """An IAM client acting as the revoker of the role's account (cached)."""
        cached = self._clients.get(role.account)
        if cached and self._clock() < cached[1]:
            return cached[0]
        creds = self._assume(role)
        client = self._session().client(
            "iam", aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"], endpoint_url=self._endpoint, region_name=self._region,
            config=_config())
        expires = creds["Expiration"]
        expires_at = expires.timestamp() if hasattr(expires, "timestamp") else float(expires)
        self._clients[role.account] = (client, expires_at - REFRESH_MARGIN)
        return client

    def _assume(self, role: _Role) -> dict:
        from botocore.exceptions import ClientError

        if self._sts is None:
            self._sts = self._session().client("sts", endpoint_url=self._endpoint, region_name=self._region,
                                               config=_config())
        revoker = f"arn:{role.partition}:iam::{role.account}:role/{self._revoker}"
        try:
            return self._sts.assume_role(RoleArn=revoker, RoleSessionName=SESSION_NAME,
                                         DurationSeconds=SESSION_SECONDS)["Credentials"]
        except ClientError as exc:
            if _code(exc) == "AccessDenied":
                raise CutOffsUnavailable(
                    f"account {role.account} cannot take session cut-offs: assuming its revoker role "
                    f"{revoker} was denied (it does not exist, or does not trust this worker/sweep "
                    f"role): {_DEPLOY} with RevokerRoleName={self._revoker} and the bastion's worker "
                    f"and sweep role names") from None
            raise
