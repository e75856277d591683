"""The service layer: every use case against the in-memory fakes (tests/fakes.py), no moto,
no HTTP. Only test_fakes_contract.py touches moto (marked ``moto``): it holds the fake
store to the real adapter."""

from __future__ import annotations

import pytest

from tests.fakes import make_service


def pytest_configure(config):
    config.addinivalue_line("markers", "moto: runs the real DynamoDB adapter on moto in-process (slower)")


@pytest.fixture
def svc():
    """Drawbridge on fresh fakes with the sample catalog, the clock at T0 (14:00 UTC)."""
    return make_service()
