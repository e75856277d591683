"""The notable actions: the ONE short list of write calls called out in the grant card's
thread as they happen (and listed in the end-of-grant digest). PURE: stdlib only.

A call is notable when it changes who can get in or what is watched: IAM and
Organizations (every write), KMS key policies and key deletion, CloudTrail and
EventBridge rules, S3 bucket policies/ACLs/public-access blocks, GuardDuty, Config,
Security Hub, access-key creation, and security groups opened to the whole internet.
Edit the tables below, nowhere else.
"""

from __future__ import annotations

from typing import Any, Mapping

#: every write call of these services is notable (value: the short label's subject)
WHOLE_SERVICES: dict[str, str] = {
    "iam": "IAM change",
    "organizations": "Organizations change",
    "cloudtrail": "CloudTrail change",
    "sso": "IAM Identity Center change",
}

#: these write calls are notable: (service, action) -> short label
ACTIONS: dict[tuple[str, str], str] = {
    ("kms", "PutKeyPolicy"): "KMS key policy replaced",
    ("kms", "ScheduleKeyDeletion"): "KMS key scheduled for deletion",
    ("kms", "DisableKey"): "KMS key disabled",
    ("kms", "CreateGrant"): "KMS grant created",
    ("events", "PutRule"): "EventBridge rule changed",
    ("events", "DeleteRule"): "EventBridge rule deleted",
    ("events", "DisableRule"): "EventBridge rule disabled",
    ("events", "PutTargets"): "EventBridge targets changed",
    ("events", "RemoveTargets"): "EventBridge targets removed",
    ("events", "PutPermission"): "EventBridge bus opened to other accounts",
    ("s3", "PutBucketPolicy"): "S3 bucket policy replaced",
    ("s3", "DeleteBucketPolicy"): "S3 bucket policy deleted",
    ("s3", "PutBucketAcl"): "S3 bucket ACL changed",
    ("s3", "DeleteBucketPublicAccessBlock"): "S3 public access block removed",
    ("s3", "PutBucketPublicAccessBlock"): "S3 public access block changed",
    ("guardduty", "DeleteDetector"): "GuardDuty detector deleted",
    ("guardduty", "UpdateDetector"): "GuardDuty detector changed",
    ("config", "StopConfigurationRecorder"): "AWS Config recorder stopped",
    ("config", "DeleteConfigurationRecorder"): "AWS Config recorder deleted",
    ("securityhub", "DisableSecurityHub"): "Security Hub disabled",
    ("ec2", "CreateKeyPair"): "EC2 key pair created",
    ("ec2", "ImportKeyPair"): "EC2 key pair imported",
    ("ec2", "ModifySnapshotAttribute"): "EBS snapshot sharing changed",
    ("ec2", "ModifyImageAttribute"): "AMI sharing changed",
    ("rds", "ModifyDBSnapshotAttribute"): "RDS snapshot sharing changed",
    ("lambda", "AddPermission"): "Lambda function policy widened",
}

#: IAM calls that get a label of their own (they are notable anyway, as IAM writes)
IAM_LABELS: dict[str, str] = {
    "CreateAccessKey": "IAM access key created",
    "CreateUser": "IAM user created",
    "CreateLoginProfile": "console password created",
    "AttachRolePolicy": "policy attached to a role",
    "AttachUserPolicy": "policy attached to a user",
    "PutRolePolicy": "inline policy put on a role",
    "PutUserPolicy": "inline policy put on a user",
    "UpdateAssumeRolePolicy": "role trust policy changed",
    "CreateRole": "IAM role created",
}

#: ingress rules that open a security group to everybody
OPEN_CIDRS = ("0.0.0.0/0", "::/0")
SG_INGRESS = ("AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules")


def _service(event_source: str) -> str:
    return event_source[: -len(".amazonaws.com")] if event_source.endswith(".amazonaws.com") else event_source


def _opens_to_world(request: Any) -> bool:
    """Whether an ingress call's parameters name 0.0.0.0/0 or ::/0 anywhere (CloudTrail
    nests them: ipPermissions.items[].ipRanges.items[].cidrIp, ipv6Ranges...cidrIpv6,
    securityGroupRuleSet.items[].securityGroupRule.cidrIpv4/cidrIpv6, or a flat cidrIp)."""
    if isinstance(request, str):
        return request in OPEN_CIDRS
    if isinstance(request, Mapping):
        return any(_opens_to_world(v) for v in request.values())
    if isinstance(request, list):
        return any(_opens_to_world(v) for v in request)
    return False


def notable(event_source: str, event_name: str, request_parameters: Any = None) -> str | None:
    """A short human label when this write call is notable, else None."""
    service = _service(event_source or "")
    if service == "iam":
        return IAM_LABELS.get(event_name, WHOLE_SERVICES["iam"])
    if service in WHOLE_SERVICES:
        return WHOLE_SERVICES[service]
    if service == "ec2" and event_name in SG_INGRESS:
        return "security group opened to the internet" if _opens_to_world(request_parameters) else None
    return ACTIONS.get((service, event_name))
