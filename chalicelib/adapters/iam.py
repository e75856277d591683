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

#: IAM keeps at most 5 versions of a managed policy
MAX_POLICY_VERSIONS = 5
#: the tag a grant policy carries its expiry in (chalicelib/usecases/grant.py); an extension moves it
EXPIRES_TAG = "drawbridge:expires-at"

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
            self._delete_policy(self.arn(request_id))
            return []
        except ClientError as exc:
            if _code(exc) != "DeleteConflict":
                raise
        strangers = [p for p in self.attached_principals(self.arn(request_id)) or [] if p != principal]
        self.remove_policy(request_id, strangers)
        return strangers

    def extend(self, *, principal: Principal, request_id: str, document: dict,
               expected_expiry: str | None = None) -> str:
        """Make ``document`` the grant policy's default version and keep it attached.

        One ``CreatePolicyVersion(SetAsDefault=True)``: IAM evaluates the old version or the
        new one, never neither, and the policy stays attached throughout, so the holder never
        loses access and no second grant exists. Already the default: done (after tidying
        versions a lost answer left). Old versions are deleted afterwards, best effort (they
        are not evaluated; one left over is harmless). The ``drawbridge:expires-at`` tag, if
        the policy has it, follows the new expiry (the description cannot be changed).

        GrantMismatch, and nothing changes, when IAM holds no such policy, when it is not
        attached to ``principal`` or is attached to anybody else too (extending would lengthen
        their access), or when ``document`` differs from the current one in anything but its
        ``aws:CurrentTime`` expiry: an extension never changes what a grant allows. With
        ``expected_expiry``, also when the current expiry is another one (unless the
        document is already in force: a repeat after a lost answer).
        """
        from botocore.exceptions import ClientError

        _user(principal)
        arn = self.arn(request_id)
        name = pol.policy_name(request_id, self._path)
        try:
            policy = self._iam.get_policy(PolicyArn=arn)["Policy"]
        except ClientError as exc:
            if _code(exc) == "NoSuchEntity":
                raise GrantMismatch(f"IAM holds no policy {name}: there is no grant to extend") from None
            raise
        current = self._version_document(arn, policy["DefaultVersionId"])
        if pol.without_expiry(current) != pol.without_expiry(document):
            raise GrantMismatch(f"the policy {name} allows something else than the extended grant would "
                                "(an extension only moves the expiry); it was not changed")
        if expected_expiry is not None and current != document and pol.expiry_of(current) != expected_expiry:
            raise GrantMismatch(f"the policy {name} ends at {pol.expiry_of(current)}, not at {expected_expiry} "
                                "as the extension was asked from; it was not changed")
        holders = self.attached_principals(arn)
        if holders is None:
            raise GrantMismatch(f"IAM holds no policy {name}: there is no grant to extend")
        if principal not in holders:
            raise GrantMismatch(f"the policy {name} is not attached to {principal.name}; it was not extended")
        others = sorted(p.name for p in holders if p != principal)
        if others:
            raise GrantMismatch(f"the policy {name} is attached to {', '.join(others)} too; "
                                "extending it would lengthen their access, so it was not extended")
        if current != document:
            self._switch_default(arn, name, document)
        self._drop_old_versions(arn)
        tags = {t["Key"]: t["Value"] for t in policy.get("Tags") or []}
        expiry = pol.expiry_of(document)
        if EXPIRES_TAG in tags and expiry and tags[EXPIRES_TAG] != expiry:
            self._iam.tag_policy(PolicyArn=arn, Tags=[{"Key": EXPIRES_TAG, "Value": expiry}])
        return arn

    def _switch_default(self, arn: str, name: str, document: dict) -> None:
        from botocore.exceptions import ClientError

        for attempt in (1, 2):
            self._make_room(arn)
            try:
                self._iam.create_policy_version(PolicyArn=arn, PolicyDocument=pol.render(document),
                                                SetAsDefault=True)
                return
            except ClientError as exc:
                if _code(exc) == "NoSuchEntity":  # revoked meanwhile: nothing left to extend
                    raise GrantMismatch(f"IAM holds no policy {name}: there is no grant to extend") from None
                # a version made by a lost-answer attempt or a racing writer took the room
                if _code(exc) == "LimitExceeded" and attempt == 1:
                    continue
                raise

    def _versions(self, arn: str) -> list[dict]:
        """The policy's versions, oldest first (IAM keeps 5 at most: one page)."""
        versions = self._iam.list_policy_versions(PolicyArn=arn)["Versions"]
        return sorted(versions, key=lambda v: (v["CreateDate"], int(v["VersionId"].lstrip("v") or 0)))

    def _make_room(self, arn: str) -> None:
        """Delete the oldest non-default versions while the policy holds IAM's maximum."""
        from botocore.exceptions import ClientError

        versions = self._versions(arn)
        spare = [v for v in versions if not v["IsDefaultVersion"]]
        for v in spare[:max(0, len(versions) - MAX_POLICY_VERSIONS + 1)]:
            try:
                self._iam.delete_policy_version(PolicyArn=arn, VersionId=v["VersionId"])
            except ClientError as exc:  # a racing writer deleted it first: the room is made
                if _code(exc) != "NoSuchEntity":
                    raise

    def _drop_old_versions(self, arn: str) -> None:
        """Delete every version but the default, best effort: IAM never evaluates them."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for v in self._versions(arn):
                if not v["IsDefaultVersion"]:
                    self._iam.delete_policy_version(PolicyArn=arn, VersionId=v["VersionId"])
        except (BotoCoreError, ClientError):
            pass  # a racing writer's default, a version already gone, a throttle: left for next time

    def document(self, policy_arn: str) -> dict:
        """The default version's document of a policy (boto3 decodes it to a dict)."""
        version = self._iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
        return self._version_document(policy_arn, version)

    def _version_document(self, policy_arn: str, version: str) -> dict:
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
        self._delete_policy(self.arn(request_id))

    def _delete_policy(self, arn: str) -> None:
        """Delete a policy; already gone is done. IAM refuses (DeleteConflict) to delete a
        policy that still has versions besides its default - an extension's old version
        whose clean-up failed - so those go first, then it is deleted again. A policy still
        attached somewhere raises DeleteConflict."""
        from botocore.exceptions import ClientError

        try:
            self._iam.delete_policy(PolicyArn=arn)
            return
        except ClientError as exc:
            if _code(exc) == "NoSuchEntity":
                return
            if _code(exc) != "DeleteConflict" or not self._drop_spare_versions(arn):
                raise
        try:
            self._iam.delete_policy(PolicyArn=arn)
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise

    def _drop_spare_versions(self, arn: str) -> bool:
        """Delete every version but the default; whether there were any."""
        from botocore.exceptions import ClientError

        try:
            spare = [v for v in self._versions(arn) if not v["IsDefaultVersion"]]
        except ClientError as exc:
            if _code(exc) == "NoSuchEntity":
                return False
            raise
        for v in spare:
            try:
                self._iam.delete_policy_version(PolicyArn=arn, VersionId=v["VersionId"])
            except ClientError as exc:
                if _code(exc) != "NoSuchEntity":
                    raise
        return bool(spare)

    def revoke_from(self, principal: Principal, request_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self._iam.detach_user_policy(UserName=_user(principal), PolicyArn=self.arn(request_id))
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise
