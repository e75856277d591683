"""The DM's CLI profile names the person's real MFA device: the one IAM lists for their
user at grant time, or the catalog's `mfa_serial` for them; never a guessed ARN."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local.seed import client as aws
from tests.conftest import CATALOG

BASTION = "111111111111"


def grant_readonly(app_client) -> str:
    reply = app_client.command("alice", "prod readonly 1h checking dashboards")
    rid = re.search(r"req-\d{8}-[0-9a-f]{6}", reply.text).group(0)
    app_client.approve("bob", rid)
    return rid


def drop_seeded_mfa(stack, user: str) -> None:
    """The seed gives everyone a device named after their user; these tests choose their own."""
    iam = aws("iam", keys=stack.service)
    serial = f"arn:aws:iam::{BASTION}:mfa/{user}"
    iam.deactivate_mfa_device(UserName=user, SerialNumber=serial)
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    assert iam.list_mfa_devices(UserName=user)["MFADevices"] == []


def enable_virtual_mfa(stack, user: str, name: str) -> str:
    drop_seeded_mfa(stack, user)
    iam = aws("iam", keys=stack.service)
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(UserName=user, SerialNumber=serial, AuthenticationCode1="123456",
                          AuthenticationCode2="654321")
    return serial


def granted_dm(slack) -> str:
    (dm,) = [m for m in slack.dms("U0ALICE001") if m.event_type == "access_granted"]
    return dm.all_text()


def test_the_device_iam_lists_is_named(app_client, stack, slack, store):
    serial = enable_virtual_mfa(stack, "alice", "alice-phone")
    assert serial == f"arn:aws:iam::{BASTION}:mfa/alice-phone"
    rid = grant_readonly(app_client)
    assert store.get(rid).mfa_serial == serial
    assert f"mfa_serial = {serial}" in granted_dm(slack)


def test_the_catalog_override_wins(app_client, stack, slack, store, tmp_path: Path, monkeypatch):
    enable_virtual_mfa(stack, "alice", "alice-phone")
    path = tmp_path / "access.toml"
    path.write_text(CATALOG.read_text().replace(
        'iam_user   = "alice"', 'iam_user   = "alice"\nmfa_serial = "arn:aws:iam::111111111111:mfa/alice-yubikey"'))
    monkeypatch.setenv("DRAWBRIDGE_CATALOG", str(path))
    rid = grant_readonly(app_client)
    assert store.get(rid).mfa_serial == "arn:aws:iam::111111111111:mfa/alice-yubikey"
    assert "mfa_serial = arn:aws:iam::111111111111:mfa/alice-yubikey" in granted_dm(slack)


def test_without_a_device_the_dm_says_to_enrol_one_and_guesses_nothing(app_client, stack, slack, store):
    drop_seeded_mfa(stack, "alice")
    rid = grant_readonly(app_client)
    assert store.get(rid).mfa_serial is None
    text = granted_dm(slack)
    assert "mfa/alice" not in text  # no guessed ARN
    assert "no MFA device" in text
