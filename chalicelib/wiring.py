"""The one place that reads the environment and builds clients (lazily, cached).

Nothing here runs at import time: ``settings()`` reads the environment when a
handler needs it, and ``service()`` builds boto3 / WebClient objects on first
use and reuses them while the settings stay the same (warm Lambda invocations).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent
#: the catalog packaged into the Lambda zip (``make package`` copies policies/access.toml here)
PACKAGED_CATALOG = _HERE / "access.toml"
REPO_CATALOG = _HERE.parent / "policies" / "access.toml"


@dataclass(frozen=True)
class Settings:
    catalog_path: str
    table: str
    slack_api_url: str
    pending_window: timedelta
    in_lambda: bool
    worker_function: str
    policy_path: str = "/drawbridge/"
    #: the role the worker and sweep assume in each member account to write cut-offs
    #: (policies/member-account.yaml RevokerRoleName)
    revoker_role: str = "DrawbridgeSessionRevoker"
    #: cut off a person's live role sessions when their grant ends (chalicelib/cutoff.py)
    session_cutoffs: bool = True

    # The secrets are read when used, not when the settings are: an ack needs the signing
    # secret only, and the bot token (one more SSM read on a cold start) is the worker's.
    @property
    def signing_secret(self) -> str:
        return _secret("SLACK_SIGNING_SECRET")

    @property
    def bot_token(self) -> str:
        return _secret("SLACK_BOT_TOKEN")


class ConfigError(RuntimeError):
    pass


def settings() -> Settings:
    from .domain.duration import parse_duration

    env = os.environ
    table = env.get("DRAWBRIDGE_TABLE", "")
    if not table:
        raise ConfigError("DRAWBRIDGE_TABLE is not set")
    default_catalog = PACKAGED_CATALOG if PACKAGED_CATALOG.exists() else REPO_CATALOG
    function = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
    if function and env.get(LOCAL_EMULATION) != "1":
        _refuse_local_settings_in_lambda(env)
    return Settings(
        catalog_path=env.get("DRAWBRIDGE_CATALOG") or str(default_catalog),
        table=table,
        slack_api_url=env.get("SLACK_API_URL") or "https://slack.com/api/",
        pending_window=timedelta(seconds=parse_duration(env.get("DRAWBRIDGE_PENDING_WINDOW") or "1h")),
        in_lambda=bool(function),
        worker_function=env.get("DRAWBRIDGE_WORKER_FUNCTION") or (f"{function}-worker" if function else ""),
        policy_path=env.get("DRAWBRIDGE_POLICY_PATH") or "/drawbridge/",
        revoker_role=_revoker_role(env.get("DRAWBRIDGE_REVOKER_ROLE") or "DrawbridgeSessionRevoker"),
        session_cutoffs=_on_off("DRAWBRIDGE_SESSION_CUTOFFS", env.get("DRAWBRIDGE_SESSION_CUTOFFS") or "on"),
    )


def _on_off(name: str, value: str) -> bool:
    value = value.strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"{name} must be 'on' or 'off', not {value!r}")
    return value == "on"


def _revoker_role(name: str) -> str:
    # a role name, not an ARN or a path: the ARN is built per member account
    if not re.fullmatch(r"[\w+=,.@-]{1,64}", name, re.ASCII):
        raise ConfigError(f"DRAWBRIDGE_REVOKER_ROLE must be an IAM role name (the member template's "
                          f"RevokerRoleName), not {name!r}")
    return name


#: set only by the benchmarks, which run the handlers "as Lambda" against local emulators;
#: `make lint-deploy` fails if a stage's environment sets it
LOCAL_EMULATION = "DRAWBRIDGE_LOCAL_EMULATION"


def _refuse_local_settings_in_lambda(env) -> None:
    """Inside Lambda, Slack and AWS are the real ones and secrets come from SSM: a setting
    that points elsewhere or carries a secret in plain text is a mistake (or tampering)."""
    problems = [f"{name} is set" for name in ("SLACK_API_URL", "AWS_ENDPOINT_URL", "SLACK_SIGNING_SECRET",
                                                 "SLACK_BOT_TOKEN") if env.get(name)]
    problems += [f"{name} is not set" for name in ("SLACK_SIGNING_SECRET_PARAM", "SLACK_BOT_TOKEN_PARAM")
                 if not env.get(name)]
    if problems:
        raise ConfigError("refusing to run in Lambda: " + "; ".join(problems) + " (secrets come from SSM "
                          "through the *_PARAM settings; Slack and AWS endpoints are never overridden)")


#: how long a secret read from SSM is reused before it is fetched again (seconds)
SECRET_MAX_AGE = 300


def _secret(name: str) -> str:
    """A Slack secret: from SSM Parameter Store when ``<name>_PARAM`` names a parameter
    (deployed stages), else the plain ``<name>`` variable (local runs and tests).

    Parameter values are decrypted (SecureString) and cached in-process by Powertools
    Parameters for ``SECRET_MAX_AGE`` seconds, so a warm Lambda makes at most one SSM
    call per secret per five minutes and picks up a rotated secret within that time.
    """
    env = os.environ
    param = env.get(f"{name}_PARAM", "")
    if not param:
        return env.get(name, "")
    value = _ssm_parameters(os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_DEFAULT_REGION")).get(
        param, decrypt=True, max_age=SECRET_MAX_AGE)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"SSM parameter {param} (from {name}_PARAM) is empty")
    return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


#: service models cut down to the operations Drawbridge calls, put in the zip by
#: ``make package`` (deploy/botocore_models.py): first on botocore's data path when present
TRIMMED_MODELS = _HERE.parent / "botocore_models"


@lru_cache(maxsize=4)
def _boto_session(endpoint: str | None, region: str | None):
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    if TRIMMED_MODELS.is_dir():
        core.set_config_variable("data_path", str(TRIMMED_MODELS))
    return boto3.session.Session(botocore_session=core)


@lru_cache(maxsize=4)
def _ssm_parameters(endpoint: str | None, region: str | None):
    """Powertools Parameters over an SSM client of this module's boto3 session: one session
    (its loaded endpoint and partition data shared with the DynamoDB client), not a second
    one that Powertools' default provider would build and load again on a cold start."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    return SSMProvider(boto3_client=aws_client("ssm"))


def aws_client(name: str):
    from botocore.config import Config

    session = _boto_session(os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_DEFAULT_REGION"))
    return session.client(name, config=Config(
        retries={"mode": "standard", "max_attempts": 4}, connect_timeout=2, read_timeout=10,
    ))


def slack_client(token: str, base_url: str, wait_when_rate_limited: bool = True):
    """slack-sdk's WebClient with Drawbridge's retries. ``wait_when_rate_limited=False``:
    a 429 is not waited out and repeated but raised at once (the alert path groups instead
    of waiting: chalicelib/usecases/alert_digest.py)."""
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    class _NeverRepeatAPost:
        """A post whose answer was lost (the connection dropped after the request went out)
        may have landed: slack-sdk must not send it again - the use case looks for it first
        (chalicelib/usecases/delivery.py). A 5xx or 429 is Slack saying it did not post it,
        and everything else is safe to repeat."""

        def _can_retry(self, *, state, request, response=None, error=None) -> bool:
            if str(getattr(request, "url", "")).rstrip("/").endswith(("chat.postMessage",
                                                                      "files.completeUploadExternal")):
                return False
            return super()._can_retry(state=state, request=request, response=response, error=error)

    class Connection(_NeverRepeatAPost, ConnectionErrorRetryHandler):
        pass

    if not base_url.endswith("/"):
        base_url += "/"
    handlers = [Connection(max_retry_count=2), ServerErrorRetryHandler(max_retry_count=2)]
    if wait_when_rate_limited:
        handlers.insert(1, RateLimitErrorRetryHandler(max_retry_count=2))  # a 429 was refused, not done: repeat it
    return WebClient(token=token, base_url=base_url, timeout=10, retry_handlers=handlers)


class _SlackNotifier:
    """The Slack port, built on first use with the bot token as it is then; rebuilt when the
    token changed (a rotation reaches a warm container within SECRET_MAX_AGE)."""

    def __init__(self, s: Settings) -> None:
        self._settings = s
        self._token: str | None = None
        self._obj = None

    def _build(self, token: str, url: str):
        from .adapters.slack_notifier import SlackNotifier

        # the alert path's posts fail fast on a 429 (a digest takes over) instead of waiting it out;
        # views.open runs before Slack's 3 s ack: one short try (a retry after a lost answer would
        # only meet "exchanged_trigger_id", and the person is told to try again)
        return SlackNotifier(slack_client(token, url), slack_client(token, url, wait_when_rate_limited=False),
                             ack_client(token, url, ACK_TIMEOUT_SECONDS))

    def __getattr__(self, name):
        token = self._settings.bot_token  # cached in-process by Powertools Parameters
        if self._obj is None or token != self._token:
            self._obj = self._build(token, self._settings.slack_api_url)
            self._token = token
        return getattr(self._obj, name)


#: how long a Slack call made before the 3 s ack may take (views.open, a user group lookup)
ACK_TIMEOUT_SECONDS = 1.5


def ack_client(token: str, base_url: str, timeout: float):
    """A WebClient for a call on the ack path: one try within ``timeout``, no retries."""
    from slack_sdk import WebClient

    return WebClient(token=token, base_url=base_url if base_url.endswith("/") else base_url + "/",
                     timeout=timeout, retry_handlers=[])


class _SlackUserGroups(_SlackNotifier):
    """The user groups port (who is in ``@sre-leads``), built and rebuilt with the token as
    the notifier is; its answers are kept a minute by the service's clock
    (adapters/slack_notifier.py)."""

    #: a group is resolved on the ack path (a click is decided within Slack's 3 s): one try,
    #: no retries; a slow or failing Slack supplies nobody from the group (fail closed)
    TIMEOUT_SECONDS = 1

    def _build(self, token: str, url: str):
        from .adapters.slack_notifier import SlackUserGroups

        return SlackUserGroups(ack_client(token, url, self.TIMEOUT_SECONDS), clock=utcnow)


class _Lazy:
    """Builds its object on first use: an ack that never touches IAM or Slack's Web API
    never pays for their clients (cold start)."""

    def __init__(self, factory):
        self._factory = factory
        self._obj = None

    def __getattr__(self, name):
        if self._obj is None:
            self._obj = self._factory()
        return getattr(self._obj, name)


@lru_cache(maxsize=4)
def lambda_client(endpoint: str | None, region: str | None):
    """The client that hands jobs to the worker; built once per warm container."""
    return aws_client("lambda")


@lru_cache(maxsize=4)
def _service(s: Settings, endpoint: str | None, region: str | None):
    from .adapters.iam import IamGrants
    from .adapters.session_cuts import IamSessionCuts
    from .adapters.store import DynamoStore
    from .catalog import load_catalog
    from .service import Drawbridge

    catalog = load_catalog(s.catalog_path)
    return Drawbridge(
        catalog=catalog,
        store=DynamoStore(aws_client("dynamodb"), s.table),
        grants=_Lazy(lambda: IamGrants(aws_client("iam"), catalog.bastion_account_id, path=s.policy_path)),
        slack=_SlackNotifier(s),
        groups=_SlackUserGroups(s),
        clock=utcnow,
        pending_window=s.pending_window,
        # each member account's revoker, assumed with the function's own credentials
        cuts=_Lazy(lambda: IamSessionCuts(lambda: _boto_session(endpoint, region), s.revoker_role,
                                          endpoint=endpoint, region=region)) if s.session_cutoffs else None,
        # in Lambda, work too long for the caller (the sweep's owed reviews) goes to the worker
        handoff=_to_worker(s, endpoint, region) if s.in_lambda else None,
    )


def _to_worker(s: Settings, endpoint: str | None, region: str | None):
    """Hand jobs (wire form) to the async worker, as ``handlers.defer`` does."""
    def handoff(wire_jobs: list) -> None:
        import json

        from .log import CORRELATION

        lambda_client(endpoint, region).invoke(
            FunctionName=s.worker_function, InvocationType="Event",
            Payload=json.dumps({"jobs": wire_jobs, "correlation_id": CORRELATION.get("current", "-")}).encode())

    return handoff


def service(s: Settings | None = None):
    """The use cases, wired to real clients. The catalog is re-checked on every call
    (a stat; it reloads only when the file changed)."""
    from .catalog import load_catalog

    s = s or settings()
    svc = _service(s, os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_DEFAULT_REGION"))
    svc.catalog = load_catalog(s.catalog_path)
    _warn_once(svc.catalog)
    return svc


_WARNED: set[int] = set()


def _warn_once(catalog) -> None:
    """Log a loaded catalog's warnings once per load (they also print at validation time)."""
    if catalog.warnings and id(catalog) not in _WARNED:
        from .log import logger

        _WARNED.add(id(catalog))
        for line in catalog.warnings:
            logger().warning("catalog warning", extra={"warning": line})


def reset() -> None:
    """Forget cached clients (tests that swap endpoints)."""
    _service.cache_clear()
    _boto_session.cache_clear()
    _ssm_parameters.cache_clear()
    lambda_client.cache_clear()
