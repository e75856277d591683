"""IAM grants in the bastion account: one managed policy per grant under /drawbridge/.

The adapter for principals of kind ``iam_user`` (the only kind today): the policy is
attached to the IAM user. Another kind of principal would be another adapter behind the
same port (:class:`chalicelib.ports.Grants`).

Every operation is idempotent so a retried worker or sweep converges:
creating a policy that exists reuses it, removing one that is gone succeeds.
Only policies under ``/drawbridge/`` named ``drawbridge-<request id>`` are ever
touched (see chalicelib/policy.py). IAM's errors are translated into the domain's
(:class:`GrantLimitReached`); anything else is a transient failure to the caller.
"""

from __future__ import annotations

from .. import policy as pol
from ..domain.errors import GrantLimitReached, GrantMismatch
from ..domain.model import Principal

__all__ = ["GrantLimitReached", "GrantMismatch", "IamGrants"]

#: ``ListPolicies`` page size: IAM's maximum (MaxItems 1..1000; it defaults to 100)
LIST_PAGE = 1000


def _code(exc) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def _user(principal: Principal) -> str:
    if principal.kind != Principal.IAM_USER:
        raise ValueError(f"IamGrants attaches grants to IAM users, not {principal.kind}")
    return principal.name


class IamGrants:
    def __init__(self, client, bastion_account_id: str,
                 max_attached: int = pol.DEFAULT_MANAGED_POLICIES_PER_USER, path: str = pol.POLICY_PATH):
        self._iam = client
        self._account = bastion_account_id
        self._max_attached = max_attached
        self._path = pol.check_path(path)

    def arn(self, request_id: str) -> str:
        return pol.policy_arn(self._account, request_id, self._path)

    def grant(self, *, principal: Principal, request_id: str, document: dict, description: str,
              tags: dict[str, str]) -> str:
        """Create the grant's policy (or reuse it) and attach it to the user."""
        from botocore.exceptions import ClientError

        user = _user(principal)
        arn = self.arn(request_id)
        attached = self.attached(user)
        if arn not in attached and len(attached) >= self._max_attached:
            raise GrantLimitReached(
                f"IAM user {user} already has {len(attached)} managed policies attached "
                f"(the limit is {self._max_attached}); revoke a grant first"
            )
        try:
            self._iam.create_policy(
                PolicyName=pol.policy_name(request_id, self._path),
                Path=self._path,
                PolicyDocument=pol.render(document),
                Description=description,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )
        except ClientError as exc:
            if _code(exc) != "EntityAlreadyExists":
                raise
            # A retried grant finds its own policy; anything else under that name (made by
            # hand, or by someone who can write to IAM) is not reused.
            existing = self.document(arn)
            if existing != document:
                raise GrantMismatch(f"IAM already holds a policy named {pol.policy_name(request_id, self._path)} "
                                    "with another document; it was not reused") from None
        if arn not in attached:
            self._iam.attach_user_policy(UserName=user, PolicyArn=arn)
        return arn

    def revoke(self, *, principal: Principal, request_id: str) -> list[Principal]:
        """Detach and delete exactly this grant's policy; already gone counts as done.

        Returns the *other* users it also had to be detached from (a copy made by hand),
        so the caller can report them; IAM refuses to delete a policy still attached.
        """
        from botocore.exceptions import ClientError

        self.revoke_from(principal, request_id)
        try:
            self._iam.delete_policy(PolicyArn=self.arn(request_id))
            return []
        except ClientError as exc:
            if _code(exc) == "NoSuchEntity":
                return []
            if _code(exc) != "DeleteConflict":
                raise
        strangers = [p for p in self.attached_principals(self.arn(request_id)) or [] if p != principal]
        self.remove_policy(request_id, strangers)
        return strangers

    def document(self, policy_arn: str) -> dict:
        """The default version's document of a policy (boto3 decodes it to a dict)."""
        version = self._iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
        doc = self._iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]["Document"]
        if isinstance(doc, str):  # URL-encoded JSON from some endpoints
            import json
            from urllib.parse import unquote

            doc = json.loads(unquote(doc))
        return doc

    def mfa_serial(self, principal: Principal) -> str | None:
        """The serial (ARN) of the user's MFA device, for the DM's CLI profile; None if the
        user has none. With several devices, the one enabled first (the one people set up
        when they joined; the profile is a suggestion, IAM accepts any of their devices)."""
        devices = self._iam.list_mfa_devices(UserName=_user(principal)).get("MFADevices", [])
        devices = sorted(devices, key=lambda d: (str(d.get("EnableDate", "")), d.get("SerialNumber", "")))
        return devices[0]["SerialNumber"] if devices else None

    def attached(self, iam_user: str) -> list[str]:
        arns: list[str] = []
        for page in self._iam.get_paginator("list_attached_user_policies").paginate(UserName=iam_user):
            arns.extend(p["PolicyArn"] for p in page["AttachedPolicies"])
        return arns

    def drawbridge_policies(self) -> list[tuple[str, str, int]]:
        """Every policy Drawbridge created: (request id, policy ARN, how many entities hold it).

        One ``ListPolicies`` page per 1,000 policies (IAM's largest page; its quota of
        customer-managed policies, 1,500 by default and 5,000 at most, makes that 1 to 5
        pages); who holds a policy is a separate call (:meth:`attached_principals`), made
        only when the count alone cannot settle it or the sweep's rotation asks.
        """
        out = []
        for page in self._iam.get_paginator("list_policies").paginate(
                Scope="Local", PathPrefix=self._path, PaginationConfig={"PageSize": LIST_PAGE}):
            for p in page["Policies"]:
                rid = pol.request_id_from_policy_name(p["PolicyName"], self._path)
                if rid is None or p.get("Path") != self._path:
                    continue  # not ours, even if it sits under our path
                out.append((rid, p["Arn"], int(p.get("AttachmentCount", 0))))
        return out

    def attached_principals(self, policy_arn: str) -> list[Principal] | None:
        """Who holds the policy; None if it no longer exists."""
        from botocore.exceptions import ClientError

        users: list[Principal] = []
        try:
            for page in self._iam.get_paginator("list_entities_for_policy").paginate(
                    PolicyArn=policy_arn, EntityFilter="User"):
                users.extend(Principal.iam_user(u["UserName"]) for u in page["PolicyUsers"])
        except ClientError as exc:
            if _code(exc) == "NoSuchEntity":
                return None
            raise
        return users

    def remove_policy(self, request_id: str, principals: list[Principal]) -> None:
        """Detach a Drawbridge policy from every principal given and delete it."""
        from botocore.exceptions import ClientError

        for principal in principals:
            self.revoke_from(principal, request_id)
        try:
            self._iam.delete_policy(PolicyArn=self.arn(request_id))
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise

    def revoke_from(self, principal: Principal, request_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self._iam.detach_user_policy(UserName=_user(principal), PolicyArn=self.arn(request_id))
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise
