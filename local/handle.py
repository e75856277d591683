"""The client half of a local stack: everything needed to drive one that is running.

:class:`StackHandle` holds the URLs, the app's environment (signing secret included) and
the seeded people's keys, and plays the outside world against them: Slack posting signed
commands and clicks over real HTTP (built by ``local/slack_client.py``), what Slack shows
(the stand-in's messages), people calling AWS with their own keys, and Lambda running the
non-HTTP handlers (``sweep``, ``on_role_assumed``) in *this* process with the app's
environment. It starts no processes (``local/stack.py`` does); ``make dev`` saves it with
:meth:`StackHandle.to_state` so ``python -m local.dev ...`` can drive the stack from
another terminal.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional

from local import slack_client
from local.events import REGION, scheduled_event
from local.procs import StackError, child_base_env, http

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "policies" / "access.toml"
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")  # a raw Slack user id, as the app's parser takes it


@dataclass
class Reply:
    status: int
    body: Any

    @property
    def text(self) -> str:
        return self.body.get("text", "") if isinstance(self.body, dict) else str(self.body or "")


class UnknownPerson(KeyError):
    """``--as`` named nobody: not a catalog person and not a Slack user id."""

    def __init__(self, person: str, catalog_path: str, known: list[str]) -> None:
        super().__init__(person)
        self.person, self.catalog_path, self.known = person, catalog_path, known

    def __str__(self) -> str:
        return (f"{self.person!r} is not a person in {self.catalog_path} (known: {', '.join(self.known)}; "
                "or a Slack user id such as U0STRANGER for someone not in the catalog)")


# Handler output (Powertools JSON logs, EMF metrics) printed while the driver runs a
# handler goes to the stack's log file, so the narration stays readable. The Logger
# keeps the stream it was created with, so this forwards to whatever is current.
class _Forward:
    def __init__(self) -> None:
        self.target: Any = None

    def write(self, text: str) -> int:
        target = self.target or sys.__stdout__
        try:
            return target.write(text)
        except ValueError:  # closed
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            (self.target or sys.__stdout__).flush()

    def isatty(self) -> bool:
        return False


_HANDLER_OUT = _Forward()


class StackHandle:
    """Everything needed to talk to a running local stack (no processes of its own)."""

    def __init__(self, *, moto_url: str, slack_api_url: str, app_url: str, world, env: dict[str, str],
                 catalog_path: str | os.PathLike = CATALOG) -> None:
        from chalicelib.catalog import load_catalog

        self.moto_url = moto_url
        self.slack_api_url = slack_api_url
        self.app_url = app_url
        self.world = world
        self.env = dict(env)  # the app's own environment (what differs from the shell's)
        self.catalog_path = str(catalog_path)
        self.catalog = load_catalog(self.catalog_path)
        self._client_dir: str | None = None
        self.handler_log: Path | None = None

    # ---- identity -------------------------------------------------------------------
    @property
    def signing_secret(self) -> str:
        return self.env["SLACK_SIGNING_SECRET"]

    @property
    def slack_base(self) -> str:
        return self.slack_api_url.rsplit("/api/", 1)[0]

    def slack_id(self, person: str) -> str:
        """The Slack user id of a catalog person (``alice``); a raw Slack user id
        (``U0STRANGER``, ``W…``) is returned as is, to act as someone not in the catalog.
        Anything else raises :class:`UnknownPerson` (a ``KeyError``) naming who is known."""
        if SLACK_USER_ID.fullmatch(person):
            return person
        try:
            return self.catalog.people[person].slack_user
        except KeyError:
            raise UnknownPerson(person, self.catalog_path, list(self.catalog.people)) from None

    # ---- Slack -> app, over real HTTP, signed like Slack ------------------------------
    def post_signed(self, path: str, body: str, *, secret: str | None = None) -> Reply:
        status, raw = http("POST", self.app_url + path, body.encode(),
                           slack_client.sign(body, secret or self.signing_secret))
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Reply(status, parsed)

    def _response_url_base(self) -> str:
        return f"{self.slack_base}/_standin/response_url"  # loopback, like every URL here

    def signed_command(self, person: str, text: str, *, channel: str | None = None) -> Reply:
        """``person`` types ``/aws-access <text>`` (a leading ``/aws-access`` is dropped).
        ``text`` is what they type; it is sent as Slack sends it (``&``, ``<``, ``>`` escaped)."""
        text = text.strip()
        if text.split(" ", 1)[0] == slack_client.COMMAND:
            text = text[len(slack_client.COMMAND):].strip()
        body = slack_client.slash_body(self.slack_id(person), text, user_name=person,
                                       channel_id=channel or self.catalog.approvals_channel,
                                       response_url_base=self._response_url_base())
        return self.post_signed("/slack/commands", body)

    def signed_event(self, body: str) -> Reply:
        """An Events API request (JSON), signed like Slack signs it."""
        status, raw = http("POST", self.app_url + "/slack/events", body.encode(),
                           slack_client.sign(body, self.signing_secret, content_type=slack_client.JSON))
        return Reply(status, json.loads(raw) if raw else None)

    def open_home(self, person: str) -> Reply:
        """``person`` opens the app's Home tab (Slack posts ``app_home_opened``)."""
        return self.signed_event(slack_client.home_opened_body(self.slack_id(person)))

    def home(self, person: str) -> Optional[dict]:
        """The App Home view last published for ``person``, from the stand-in, or None."""
        user = urllib.parse.quote(self.slack_id(person))
        status, raw = http("GET", f"{self.slack_base}/_standin/home?user={user}", timeout=10)
        if status != 200:
            raise StackError(f"Slack stand-in inspection answered HTTP {status}")
        return json.loads(raw).get("view")

    def signed_form(self, person: str, *, channel: str | None = None) -> tuple[Reply, Optional[dict]]:
        """``person`` types a bare ``/aws-access``: the app's answer, and the request form the
        app opened with the command's trigger id (None when none opened)."""
        trigger = slack_client.trigger_id()
        body = slack_client.slash_body(self.slack_id(person), "", user_name=person, trigger=trigger,
                                       channel_id=channel or self.catalog.approvals_channel,
                                       response_url_base=self._response_url_base())
        reply = self.post_signed("/slack/commands", body)
        return reply, next((v for v in reversed(self.opened_views()) if v.get("trigger_id") == trigger), None)

    def opened_views(self) -> list[dict]:
        """Every view the app opened in the stand-in (``views.open``), oldest first."""
        status, raw = http("GET", f"{self.slack_base}/_standin/messages", timeout=10)
        if status != 200:
            raise StackError(f"Slack stand-in inspection answered HTTP {status}")
        return json.loads(raw).get("views") or []

    def signed_submit(self, person: str, view: dict, values: dict[str, str | None]) -> Reply:
        """``person`` submits ``view`` (as the stand-in opened it) holding ``values`` (block id
        -> a select's option value or a text input's text)."""
        return self.post_signed("/slack/interactions",
                                slack_client.view_submission_body(self.slack_id(person), view, values, user_name=person))

    def card(self, request_id: str) -> Optional[dict]:
        """The approval card (top-level message in the approvals channel) of a request."""
        for m in self.messages(channel=self.catalog.approvals_channel):
            if m.get("thread_ts") is None and (m.get("metadata") or {}).get(
                    "event_payload", {}).get("request_id") == request_id:
                return m
        return None

    def signed_click(self, person: str, action_id: str, request_id: str) -> Reply:
        """``person`` clicks the button ``action_id`` (approve_request / deny_request)."""
        user = self.slack_id(person)
        card = self.card(request_id) or {}
        body = slack_client.click_body(
            user, action_id, request_id, user_name=person,
            channel_id=card.get("channel") or self.catalog.approvals_channel, message_ts=card.get("ts") or "",
            message_text=card.get("text", ""), blocks=card.get("blocks", []),
            response_url_base=self._response_url_base())
        return self.post_signed("/slack/interactions", body)

    # ---- what Slack shows ------------------------------------------------------------------
    def messages(self, channel: str | None = None, event_type: str | None = None,
                 include_ephemeral: bool = False) -> list[dict]:
        """Messages the stand-in holds (current versions), from its inspection endpoint.
        ``channel`` may be a user id for that user's DM."""
        status, raw = http("GET", f"{self.slack_base}/_standin/messages", timeout=10)
        if status != 200:
            raise StackError(f"Slack stand-in inspection answered HTTP {status}")
        found = json.loads(raw)["messages"]
        if channel:
            channel = "D" + channel[1:] if channel.startswith("U") else channel
        return [m for m in found
                if (include_ephemeral or not m.get("ephemeral"))
                and (channel is None or m.get("channel") == channel)
                and (event_type is None or m.get("event_type") == event_type)]

    # ---- AWS as the people see it ---------------------------------------------------------
    def aws(self, service: str, person: str | None = None):
        """A boto3 client on moto, as ``person`` (their bastion keys) or as the service user."""
        from local.seed import client

        keys = self.world.people[person] if person else self.world.service
        return client(service, keys=keys, endpoint_url=self.moto_url, region=REGION)

    def assume_role(self, person: str, role_arn: str) -> str:
        """``person``'s own sts:AssumeRole; the assumed-role ARN, or the error code."""
        from botocore.exceptions import ClientError

        try:
            resp = self.aws("sts", person).assume_role(RoleArn=role_arn, RoleSessionName=person)
            return resp["AssumedRoleUser"]["Arn"]
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    def attached_policies(self, person: str) -> list[str]:
        iam = self.aws("iam")
        user = self.catalog.people[person].iam_user
        return [p["PolicyName"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]]

    def grant_expiry(self, person: str, request_id: str) -> tuple[str | None, int]:
        """(the ``aws:CurrentTime`` expiry in the default version of ``person``'s grant policy
        for ``request_id``, how many versions the policy has); (None, 0) if not attached."""
        import json

        from chalicelib import policy as pol

        iam = self.aws("iam")
        user = self.catalog.people[person].iam_user
        for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]:
            if p["PolicyName"] != pol.policy_name(request_id):
                continue
            versions = iam.list_policy_versions(PolicyArn=p["PolicyArn"])["Versions"]
            default = next(v["VersionId"] for v in versions if v["IsDefaultVersion"])
            doc = iam.get_policy_version(PolicyArn=p["PolicyArn"], VersionId=default)["PolicyVersion"]["Document"]
            return pol.expiry_of(json.loads(doc) if isinstance(doc, str) else doc), len(versions)
        return None, 0

    def cutoff_document(self, role_arn: str) -> tuple[str, dict]:
        """(the role's unique id, the default version of its session cut-off policy), read
        in the role's member account (chalicelib/cutoff.py)."""
        import boto3

        from chalicelib import cutoff
        from local.seed import REVOKER_ROLE

        account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[1]
        # read as the member account's revoker does (the local stack checks credentials)
        creds = self.aws("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/{REVOKER_ROLE}",
                                            RoleSessionName="drawbridge-demo")["Credentials"]
        iam = boto3.client("iam", endpoint_url=self.moto_url, region_name=REGION,
                           aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"])
        arn = f"arn:aws:iam::{account}:policy{cutoff.CUTOFF_POLICY_PATH}{cutoff.cutoff_policy_name(name)}"
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        return iam.get_role(RoleName=name)["Role"]["RoleId"], doc

    # ---- non-HTTP handlers, run here as Lambda would -------------------------------------
    @contextlib.contextmanager
    def app_environ(self) -> Iterator[None]:
        """os.environ = the shell's minus AWS/Drawbridge/Slack settings, plus the app's env."""
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(child_base_env(saved))
            os.environ.update(self.env)
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def invoke(self, name: str, event: Any = None) -> Any:
        """Run the Lambda handler ``name`` in this process with the app's environment."""
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from chalice.test import Client

        from chalicelib import wiring

        with contextlib.redirect_stdout(_HANDLER_OUT):
            from app import app  # Chalice's own log handler binds sys.stdout on first import

        if self._client_dir is None:
            # An empty project dir: no .chalice/config.json, so nothing but self.env
            # reaches the handler (a stage's environment_variables would win otherwise).
            self._client_dir = tempfile.mkdtemp(prefix="drawbridge-invoke-")
            atexit.register(shutil.rmtree, self._client_dir, True)
        # Each Lambda function runs in containers of its own, where the REST entry point
        # (the only place Chalice sets app.lambda_context) never ran. Keep it that way here,
        # whatever this process did with `app` before (e.g. other tests in one pytest run).
        app.__dict__.pop("lambda_context", None)
        log = open(self.handler_log, "a", encoding="utf-8") if self.handler_log else None
        previous = _HANDLER_OUT.target
        try:
            with self.app_environ():
                wiring.reset()  # clients are built for this stack's endpoint and keys
                _HANDLER_OUT.target = log
                with contextlib.redirect_stdout(_HANDLER_OUT), Client(app, project_dir=self._client_dir) as c:
                    return c.lambda_.invoke(name, {} if event is None else event).payload
        finally:
            _HANDLER_OUT.target = previous
            wiring.reset()
            if log is not None:
                log.close()

    def scheduled_event(self, at: datetime | None = None) -> dict:
        """The EventBridge scheduled event the every-minute rule delivers to ``sweep``."""
        return scheduled_event(self.catalog.bastion_account_id, at)

    def sweep(self, at: datetime | None = None) -> Any:
        """Run the sweep here; with ``at``, inside time_machine.travel(at) (this process only)."""
        if at is None:
            return self.invoke("sweep", self.scheduled_event())
        import time_machine

        with time_machine.travel(at, tick=True):
            return self.invoke("sweep", self.scheduled_event())

    # ---- persistence for `make dev` ----------------------------------------------------------
    def to_state(self) -> dict:
        w = self.world
        return {
            "moto_url": self.moto_url, "slack_api_url": self.slack_api_url, "app_url": self.app_url,
            "catalog": self.catalog_path, "env": self.env, "table": w.table,
            "service_keys": [w.service.access_key_id, w.service.secret_access_key],
            "people_keys": {k: [v.access_key_id, v.secret_access_key] for k, v in w.people.items()},
            "handler_log": str(self.handler_log) if self.handler_log else None,
        }

    @classmethod
    def from_state(cls, state: dict) -> "StackHandle":
        from local.seed import Keys, World

        world = World(service=Keys(*state["service_keys"]),
                      people={k: Keys(*v) for k, v in state["people_keys"].items()}, table=state["table"])
        handle = cls(moto_url=state["moto_url"], slack_api_url=state["slack_api_url"], app_url=state["app_url"],
                     world=world, env=state["env"], catalog_path=state["catalog"])
        handle.handler_log = Path(state["handler_log"]) if state.get("handler_log") else None
        return handle
