"""How the deployed wiring turns session cut-offs on and off, and reaches the seeded stack."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib import cutoff, wiring


@pytest.fixture
def fresh():
    wiring.reset()
    yield
    wiring.reset()


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("DRAWBRIDGE_TABLE", "t")
    for name in ("DRAWBRIDGE_SESSION_CUTOFFS", "DRAWBRIDGE_REVOKER_ROLE", "AWS_LAMBDA_FUNCTION_NAME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_cut_offs_are_on_by_default_with_the_templates_revoker(env):
    s = wiring.settings()
    assert s.session_cutoffs is True and s.revoker_role == "DrawbridgeSessionRevoker"


@pytest.mark.parametrize("value, on", [("on", True), ("off", False), ("OFF", False), (" on ", True)])
def test_on_and_off(env, value, on):
    env.setenv("DRAWBRIDGE_SESSION_CUTOFFS", value)
    assert wiring.settings().session_cutoffs is on


@pytest.mark.parametrize("value", ["no", "false", "0", "disabled", "onn"])
def test_anything_else_is_refused(env, value):
    env.setenv("DRAWBRIDGE_SESSION_CUTOFFS", value)
    with pytest.raises(wiring.ConfigError, match="DRAWBRIDGE_SESSION_CUTOFFS must be 'on' or 'off'"):
        wiring.settings()


@pytest.mark.parametrize("value", ["arn:aws:iam::222222222222:role/X", "ops/revoker", "a" * 65, "has space"])
def test_the_revoker_is_a_role_name(env, value):
    env.setenv("DRAWBRIDGE_REVOKER_ROLE", value)
    with pytest.raises(wiring.ConfigError, match="DRAWBRIDGE_REVOKER_ROLE"):
        wiring.settings()
    env.setenv("DRAWBRIDGE_REVOKER_ROLE", "MyRevoker")
    assert wiring.settings().revoker_role == "MyRevoker"


def test_off_wires_no_port(stack, monkeypatch, fresh):
    monkeypatch.setenv("DRAWBRIDGE_SESSION_CUTOFFS", "off")
    assert wiring.service().cuts is None


def test_on_reaches_every_catalog_roles_cut_off_policy_in_the_seeded_stack(stack, catalog, fresh):
    """The wired adapter, the seed (policies and revokers) and the catalog's ARNs agree."""
    svc = wiring.service()
    assert svc.cuts is not None
    for role in catalog.roles():
        assert svc.cuts.read(role.role_arn) == cutoff.document([]), role.role_arn
        assert svc.cuts.role_id(role.role_arn).startswith("AROA")
    role = catalog.roles()[0]
    doc = cutoff.document([cutoff.cutoff_statement(
        cutoff.CutOff(svc.cuts.role_id(role.role_arn), "alice", datetime(2026, 11, 12, 16, tzinfo=timezone.utc),
                      "req-20261112-0a11ce"))])
    svc.cuts.write(role.role_arn, doc)
    assert svc.cuts.read(role.role_arn) == doc


def test_a_changed_revoker_name_is_the_one_assumed(stack, catalog, monkeypatch, fresh):
    from chalicelib.domain.errors import CutOffsUnavailable

    monkeypatch.setenv("DRAWBRIDGE_REVOKER_ROLE", "SomeOtherRevoker")
    svc = wiring.service()
    assert svc.cuts._factory is not None  # lazily built: nothing assumed yet
    built = svc.cuts._factory()
    assert built._revoker == "SomeOtherRevoker"
    with pytest.raises(CutOffsUnavailable):
        _refusing_missing_roles(built).read(catalog.roles()[0].role_arn)


def _refusing_missing_roles(cuts):
    """moto issues credentials for any role ARN; real STS refuses a role that is not there."""
    from botocore.exceptions import ClientError

    from local.seed import client

    session = cuts._session()

    def refuse(params, **_):
        account, name = params["RoleArn"].split(":")[4], params["RoleArn"].rsplit("/", 1)[1]
        try:
            client("iam", account_id=account).get_role(RoleName=name)
        except ClientError:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "AssumeRole") from None
    session.events.register("provide-client-params.sts.AssumeRole", refuse)
    return cuts
