"""Slack's side of the wire: requests to the app signed and shaped the way Slack sends them.

The one place tests, benchmarks and the local stack build Slack requests::

    body = slash_body("U0ALICE001", "prod admin 2h R&D <ops>")        # /aws-access <typed text>
    body = click_body("U0BOB00001", "approve_request", request_id)      # a button on the card
    headers = sign(body, signing_secret)                                # v0 HMAC-SHA256 + timestamp

* :func:`sign`: Slack's v0 scheme, ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``
  under the app's signing secret, in ``X-Slack-Signature``, with the timestamp in
  ``X-Slack-Request-Timestamp``; ``Content-Type`` is the form type Slack posts.
* :func:`slash_form` / :func:`slash_body`: every field Slack posts for a slash command,
  the typed text escaped as Slack escapes it (:func:`slack_escape`).
* :func:`click_payload` / :func:`click_body`: a ``block_actions`` interaction
  (``payload=<JSON>``) for one button: user, channel, container, message, the action.
* :func:`url_verification_body` / :func:`home_opened_body`: Events API bodies (JSON) for
  ``/slack/events``: Slack's request URL check, and a person opening the App Home.
  :func:`home_click_body`: a button clicked in the App Home (``container.type`` "view",
  no channel).
* :func:`view_submission_payload` / :func:`view_submission_body`: a modal's Submit
  (``view_submission``) with values entered in the view ``views.open`` opened: its state
  built from the view's input blocks as Slack builds it.
* :func:`trigger_id`: a fresh trigger id (Slack gives each invocation its own; a
  redelivery repeats it, so pass ``trigger=`` to replay one).

The workspace is the Slack stand-in's (``local/slack_standin.py``): team ``T0STANDIN``,
app ``A0DRAWBRDG``, approvals channel ``C0APPROVE1``. Stdlib only, importing nothing a
fresh process would not already need to sign a request (``bench/_first_request.py``
times a cold start after importing this), and nothing from ``chalicelib``.
"""

import hashlib
import hmac
import json
import time
import urllib.parse
import uuid

FORM = "application/x-www-form-urlencoded"
COMMAND = "/aws-access"
TEAM_ID, TEAM_DOMAIN = "T0STANDIN", "standin"
API_APP_ID = "A0DRAWBRDG"
VERIFICATION_TOKEN = "local-standin-verification-token"  # the deprecated token Slack still sends
APPROVALS_CHANNEL, APPROVALS_CHANNEL_NAME = "C0APPROVE1", "aws-access-approvals"
RESPONSE_URL_BASE = "https://hooks.slack.com"  # never called by the app; the local stack points it at the stand-in

_STYLES = {"approve_request": "primary", "deny_request": "danger"}  # the card's buttons, as Slack echoes them
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def slack_escape(text: str) -> str:
    """Typed text as Slack sends it to an app (slash command ``text``): ``&``, ``<`` and
    ``>`` escaped, nothing else. Use it wherever a test or tool plays a person typing."""
    return str(text).translate(_SLACK_ESCAPES)


# ---- signing ---------------------------------------------------------------------------------
def signature(body: str | bytes, secret: str, timestamp: int | str) -> str:
    """``v0=<hex HMAC-SHA256 of v0:{timestamp}:{body}>`` (body as sent: str is UTF-8 encoded)."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def sign(body: str | bytes, secret: str, timestamp: int | None = None, *,
         content_type: str = FORM) -> dict[str, str]:
    """The headers Slack sends with ``body``: signed now (or at ``timestamp``, Unix seconds)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature(body, secret, ts)}


# ---- ids -------------------------------------------------------------------------------------
def _digits(n: int) -> str:
    return f"{uuid.uuid4().int % 10**n:0{n}d}"


def trigger_id() -> str:
    """A fresh trigger id, shaped like Slack's (``<seconds>.<digits>.<32 hex>``)."""
    return f"{int(time.time())}.{_digits(10)}.{uuid.uuid4().hex}"


def response_url(kind: str = "commands", base: str = RESPONSE_URL_BASE, team_id: str = TEAM_ID) -> str:
    """A fresh response_url (``kind``: "commands" or "actions"), as Slack's are shaped."""
    return f"{base.rstrip('/')}/{kind}/{team_id}/{_digits(13)}/{uuid.uuid4().hex[:24]}"


# ---- bodies ----------------------------------------------------------------------------------
def slash_form(user_id: str, text: str, *, user_name: str | None = None,
               channel_id: str = APPROVALS_CHANNEL, channel_name: str = APPROVALS_CHANNEL_NAME,
               command: str = COMMAND, trigger: str | None = None,
               response_url_base: str = RESPONSE_URL_BASE, team_id: str = TEAM_ID,
               api_app_id: str = API_APP_ID) -> dict[str, str]:
    """The form Slack posts when ``user_id`` types ``<command> <text>``; ``text`` is what
    they typed, sent escaped (``&``, ``<``, ``>``) as Slack sends it."""
    return {
        "token": VERIFICATION_TOKEN, "team_id": team_id, "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id, "channel_name": channel_name,
        "user_id": user_id, "user_name": user_name or user_id.lower(),
        "command": command, "text": slack_escape(text), "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url("commands", response_url_base),
        "trigger_id": trigger or trigger_id(),
    }


def slash_body(user_id: str, text: str, **fields) -> str:
    """:func:`slash_form`, form-encoded: the body to sign and post to ``/slack/commands``."""
    return urllib.parse.urlencode(slash_form(user_id, text, **fields))


def click_payload(user_id: str, action_id: str, value: str, *, user_name: str | None = None,
                  channel_id: str = APPROVALS_CHANNEL, channel_name: str = APPROVALS_CHANNEL_NAME,
                  message_ts: str | None = None, message_text: str = "", blocks: list | None = None,
                  block_id: str = "req_actions", trigger: str | None = None,
                  response_url_base: str = RESPONSE_URL_BASE, team_id: str = TEAM_ID,
                  api_app_id: str = API_APP_ID) -> dict:
    """The ``block_actions`` payload Slack posts when ``user_id`` clicks the button
    ``action_id`` (carrying ``value``) on the message ``message_ts`` in ``channel_id``."""
    name = user_name or user_id.lower()
    ts = message_ts or f"{int(time.time())}.000100"
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": name, "name": name, "team_id": team_id},
        "api_app_id": api_app_id, "token": VERIFICATION_TOKEN,
        "container": {"type": "message", "message_ts": ts, "channel_id": channel_id, "is_ephemeral": False},
        "trigger_id": trigger or trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN}, "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": {"type": "message", "ts": ts, "text": message_text, "blocks": list(blocks or [])},
        "state": {"values": {}},
        "response_url": response_url("actions", response_url_base),
        "actions": [{"action_id": action_id, "block_id": block_id,
                     "text": {"type": "plain_text", "text": action_id.split("_")[0].title(), "emoji": True},
                     "value": value, **({"style": _STYLES[action_id]} if action_id in _STYLES else {}),
                     "type": "button", "action_ts": f"{time.time():.6f}"}],
    }


def click_body(user_id: str, action_id: str, value: str, **fields) -> str:
    """:func:`click_payload` as Slack posts it (``payload=<JSON>``, form-encoded) to
    ``/slack/interactions``."""
    return urllib.parse.urlencode({"payload": json.dumps(click_payload(user_id, action_id, value, **fields))})


# ---- Events API ------------------------------------------------------------------------------
JSON = "application/json"


def url_verification_body(challenge: str | None = None) -> tuple[str, str]:
    """(body, challenge): what Slack posts to an Events request URL when it is saved."""
    challenge = challenge or uuid.uuid4().hex
    return json.dumps({"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}), challenge


def event_id() -> str:
    return f"Ev{uuid.uuid4().hex[:10].upper()}"


def home_opened_body(user_id: str, *, tab: str = "home", event: str | None = None, team_id: str = TEAM_ID,
                     api_app_id: str = API_APP_ID) -> str:
    """The ``event_callback`` Slack posts when ``user_id`` opens the app's Home tab
    (``event``: replay an event id, as a retry does)."""
    return json.dumps({
        "token": VERIFICATION_TOKEN, "team_id": team_id, "api_app_id": api_app_id,
        "event": {"type": "app_home_opened", "user": user_id, "channel": "D" + user_id[1:], "tab": tab,
                  "event_ts": f"{time.time():.6f}"},
        "type": "event_callback", "event_id": event or event_id(), "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": "U0DRAWBRDG", "is_bot": True}],
    })


def home_click_body(user_id: str, action_id: str, value: str, *, block_id: str = "home",
                    trigger: str | None = None, team_id: str = TEAM_ID, api_app_id: str = API_APP_ID) -> str:
    """A button clicked in the App Home: ``block_actions`` from a view, so no channel and no
    message (``container.type`` "view"), as Slack posts it to ``/slack/interactions``."""
    payload = click_payload(user_id, action_id, value, block_id=block_id, trigger=trigger, team_id=team_id,
                            api_app_id=api_app_id)
    for key in ("channel", "message", "response_url"):
        payload.pop(key)
    view_id = "V" + uuid.uuid4().hex[:8].upper()
    payload["container"] = {"type": "view", "view_id": view_id}
    payload["view"] = {"id": view_id, "type": "home", "blocks": [], "state": {"values": {}}}
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


# ---- modals ----------------------------------------------------------------------------------
def _chosen(element: dict, value: str | None) -> dict | None:
    """The option of a select whose value is ``value`` (None: nothing chosen)."""
    if value is None:
        return None
    options = list(element.get("options") or []) + [o for g in element.get("option_groups") or []
                                                      for o in g.get("options") or []]
    found = next((o for o in options if o.get("value") == value), None)
    # an option the view does not offer: what a forged submission could carry
    return found or {"text": {"type": "plain_text", "text": value}, "value": value}


def view_state(view: dict, values: dict[str, str | None]) -> dict:
    """``view.state`` as Slack sends it with a submission: for every input block, its one
    element's state (a select's ``selected_option``, a text input's ``value``), from
    ``values`` (block id -> the value entered; missing or None: left empty)."""
    state: dict = {}
    for block in view.get("blocks") or []:
        if block.get("type") != "input":
            continue
        element = block.get("element") or {}
        kind, value = element.get("type"), values.get(block["block_id"])
        if kind in ("static_select", "external_select"):
            entry = {"type": kind, "selected_option": _chosen(element, value)}
        else:
            entry = {"type": kind, "value": value}
        state[block["block_id"]] = {element.get("action_id") or block["block_id"]: entry}
    return {"values": state}


def view_submission_payload(user_id: str, view: dict, values: dict[str, str | None], *,
                            user_name: str | None = None, team_id: str = TEAM_ID,
                            api_app_id: str = API_APP_ID) -> dict:
    """The ``view_submission`` payload Slack posts when ``user_id`` submits ``view`` (as
    ``views.open`` returned it, with its ``id``) holding ``values``."""
    name = user_name or user_id.lower()
    submitted = {k: v for k, v in view.items() if k != "trigger_id"}
    submitted["state"] = view_state(view, values)
    return {
        "type": "view_submission", "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": name, "name": name, "team_id": team_id},
        "api_app_id": api_app_id, "token": VERIFICATION_TOKEN, "trigger_id": trigger_id(),
        "view": submitted, "response_urls": [], "is_enterprise_install": False, "enterprise": None,
    }


def view_submission_body(user_id: str, view: dict, values: dict[str, str | None], **fields) -> str:
    """:func:`view_submission_payload` as Slack posts it (``payload=<JSON>``, form-encoded)
    to ``/slack/interactions``."""
    return urllib.parse.urlencode({"payload": json.dumps(view_submission_payload(user_id, view, values, **fields))})
