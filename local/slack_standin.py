"""A local stand-in for the Slack Web API (stdlib only).

Point a real client at it::

    with SlackStandin("xoxb-test-token") as slack:
        client = slack_sdk.WebClient(token="xoxb-test-token", base_url=slack.url)
        client.chat_postMessage(channel="C0APPROVE1", text="hi")
        assert slack.messages("C0APPROVE1")[0].text == "hi"

Wire format: ``POST /api/<method>`` (``GET`` with a query string also works), body
``application/json`` or ``application/x-www-form-urlencoded``; in form bodies
``blocks``/``attachments``/``metadata`` are JSON strings. Token from
``Authorization: Bearer ...`` (or a ``token`` argument). Answers are HTTP 200
``{"ok": true, ...}`` / ``{"ok": false, "error": ...}`` unless a fault was injected.

DMs, as in Slack: ``chat.postMessage(channel="U0ALICE001")`` and
``conversations.open(users="U0ALICE001")`` both use the DM channel ``D0ALICE001``
(``"D" + user id[1:]``), which the responses return. ``chat.update``/``chat.getPermalink``
need that ``D...`` id (a user id gets ``channel_not_found``, as Slack documents).
``dms(user)`` and ``messages(channel=<user id>)`` read the DM.

``chat.update`` keeps text/blocks/attachments/metadata that the call omits (as Slack
documents); the previous version is appended to ``Message.updates``.

Text as Slack treats it. Slack sends what a person typed with ``&``, ``<`` and ``>``
escaped (:func:`slack_escape`, re-exported from ``local/slack_client.py``, which builds
every request "Slack" sends to the app), and shows mrkdwn the other way round: ``<...>``
control sequences become mentions and links, then ``&amp;``/``&lt;``/``&gt;`` are shown
as ``&``/``<``/``>`` (:func:`display_mrkdwn`).
``Message.displayed_text()`` is what a person sees; ``Message.mentions()`` lists the
raw ``<!channel>``/``<!here>``/``<!everyone>``/``<@U…>``/``<!subteam^…>`` sequences in its
mrkdwn, i.e. who it would ping. ``Message.all_text()`` stays the raw wire text. The
printed transcript shows displayed text (links as ``label (url)``).

Rate limits (off unless asked for: ``SlackStandin(rate_limits=True)`` or ``--rate-limits``):
Slack's "special" limit for posting, about one message per second per channel with short
bursts allowed, as a token bucket per channel (``post_rate`` tokens a second, ``post_burst``
at most). A ``chat.postMessage`` (thread replies included) or ``chat.update`` with no token
left gets HTTP 429 ``{"ok": false, "error": "ratelimited"}`` with ``Retry-After`` (whole
seconds until a token is back) and changes nothing. ``chat.update`` is counted against its
channel too, which is stricter than Slack (it limits updates per app, ~50 a minute): a
client that stays within this stays within Slack. The bucket reads ``time.time()``, so a
test that moves the clock (time_machine) moves the bucket with it. ``rate_limited()``
lists the refused calls; ``writes(channel)`` every post and update that landed, with its
time.

The App Home: ``views.publish`` (user_id + a ``home`` view of at most 100 blocks, as Slack
checks them; ``invalid_arguments`` otherwise, with ``response_metadata.messages`` saying
why, ``not_enabled`` when built with ``home_tab=False``) keeps the view published for each
user: ``home(user)`` reads it, ``homes()`` lists who has one. The Events API's request URL
check, as Slack makes it when the URL is saved: :meth:`SlackStandin.verify_request_url`
sends a signed ``url_verification`` body through a callable and says whether the answer
echoed the challenge (``local/slack_client.py`` builds it and the ``app_home_opened``
event).

User groups: ``add_usergroup(handle, members)`` makes a group (id ``S…``),
``set_usergroup_members`` changes who is in it; ``usergroups.list`` (``include_users``,
``include_disabled``) and ``usergroups.users.list`` (``usergroup`` id required,
``no_such_subteam`` for an unknown one) answer from them.
Channel members: ``set_channel_members(channel, members)``; ``conversations.members``
answers from it in one page (``channel_not_found`` for a channel never set).

Files, as ``files_upload_v2`` shares them: ``files.getUploadURLExternal`` (``filename`` and
``length`` required) answers a ``file_id`` and an ``upload_url`` on the stand-in's own
loopback address (``POST /_upload/<file id>`` with the bytes; 200 ``OK - <length>``, or 404
for an unknown id); ``files.completeUploadExternal`` (``files``: a JSON list of ``{"id",
"title"}``) shares uploaded files into ``channel_id`` (a ``thread_ts`` there must be a message
of that channel: ``invalid_thread_ts`` otherwise), as one message carrying them, and answers
the files. A file never uploaded is ``file_not_found``; one already shared, ``already_shared``
here (Slack would share it again: the stand-in is stricter, so a repeat shows). ``files()``
lists what was shared, with each file's ``content`` (text).

Modals: ``views.open`` (a Slack-shaped ``trigger_id``, good once and for 3 seconds, and a
``modal`` view checked as Slack checks it; see ``_views_open``) records each view opened:
``opened_views()`` / ``opened_view(trigger_id)`` read them.

Inspection over HTTP (for tests in another process): ``GET /_standin/messages`` (each
message with ``all_text``, ``displayed_text`` and ``mentions``; ``views``: the modals opened;
``files``: the files shared),
``GET /_standin/home?user=U…`` (the App Home last published for a user), ``POST /_standin/reset``.
Run: ``python -m local.slack_standin --port 0 [--ready-file PATH] [--usergroup sre-leads=U0BOB00001,...]``.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple, Optional
from urllib.parse import parse_qsl, urlsplit

from local.background import ServedInBackground

from local.slack_client import TEAM_ID, slack_escape  # noqa: F401 - slack_escape is re-exported here

Printer = Callable[[str], None]
BOT_USER_ID, BOT_ID = "U0DRAWBRDG", "B0DRAWBRDG"  # the workspace: TEAM_ID, as the Slack client sends it
_JSON_ARGS = {"blocks": "invalid_blocks_format", "attachments": "invalid_attachments",
              "metadata": "invalid_metadata_format"}  # argument -> Slack error when malformed


@dataclass
class Message:
    channel: str
    ts: str
    thread_ts: Optional[str] = None
    text: str = ""
    blocks: list[dict] = field(default_factory=list)
    metadata: Optional[dict] = None
    user: Optional[str] = None  # recipient of an ephemeral message
    ephemeral: bool = False
    updates: list[dict] = field(default_factory=list)  # previous versions, oldest first
    attachments: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)  # files shared with it: {"id", "name", "title"}

    @property
    def event_type(self) -> Optional[str]:
        return (self.metadata or {}).get("event_type")

    @property
    def dm_user(self) -> Optional[str]:
        """The user of a DM channel (D0ALICE001 -> U0ALICE001), else None."""
        return "U" + self.channel[1:] if self.channel.startswith("D") else None

    @property
    def event_payload(self) -> dict:
        return (self.metadata or {}).get("event_payload") or {}

    def all_text(self) -> str:
        """The text plus every text in blocks/attachments (sections, fields, context, buttons),
        raw, as sent (mrkdwn escapes and control sequences included)."""
        return "\n".join([self.text, *_texts(self.blocks), *_texts(self.attachments)]).strip()

    def displayed_text(self, names: Optional[dict[str, str]] = None) -> str:
        """What Slack shows in the conversation: the blocks (the text only when there are
        none) and attachments, mrkdwn displayed (``&lt;`` shows as ``<``, ``<@U1>`` as
        ``@U1`` or its name from ``names``, ``<url|label>`` as ``label``); plain_text as is."""
        parts = [text if kind == "plain_text" else display_mrkdwn(text, names)
                 for kind, text in _text_objects(self.blocks)]
        if not self.blocks:
            parts.insert(0, display_mrkdwn(self.text, names))
        parts += [text if kind == "plain_text" else display_mrkdwn(text, names)
                  for kind, text in _text_objects(self.attachments)]
        return "\n".join(parts).strip()

    def mentions(self) -> list[str]:
        """Every raw mention or broadcast in the message's mrkdwn (top-level text included,
        as it drives notifications), in order: whom posting it would ping."""
        texts = [self.text] + [t for kind, t in _text_objects([self.blocks, self.attachments])
                               if kind != "plain_text"]
        return [m.group(0) for t in texts for m in _MENTION.finditer(t)]

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "event_type": self.event_type, "all_text": self.all_text(),
                "displayed_text": self.displayed_text(), "mentions": self.mentions()}


class Call(NamedTuple):
    method: str
    params: dict
    error: Optional[str] = None  # None when answered ok; else the error / "http_500" / "http_429"


class _Fault(NamedTuple):
    status: int
    retry_after: int
    error: Optional[str]


class SlackError(Exception):
    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


def _invalid_arguments(why: str) -> "SlackError":
    """Slack's ``invalid_arguments``, with the reason in ``response_metadata.messages``."""
    err = SlackError("invalid_arguments")
    err.messages = [f"[ERROR] {why}"]  # type: ignore[attr-defined]
    return err


def dm_channel(channel: str) -> str:
    """The DM channel id for a user id (U0ALICE001 -> D0ALICE001); other ids unchanged."""
    return "D" + channel[1:] if channel.startswith("U") else channel


# ---- text as Slack treats it ---------------------------------------------------------------
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_CONTROL = re.compile(r"<([^<>]*)>")  # in mrkdwn every raw <...> is a control sequence
_MENTION = re.compile(r"<(?:@[UW][A-Z0-9]+|!(?:channel|here|everyone|subteam\^[A-Z0-9]+))(?:\|[^<>]*)?>")


def display_mrkdwn(text: str, names: Optional[dict[str, str]] = None, *, show_urls: bool = False) -> str:
    """What Slack shows for mrkdwn ``text``: control sequences rendered (``<@U1>`` -> ``@U1``
    or ``names[U1]``, ``<!here>`` -> ``@here``, ``<#C1>`` -> ``#C1``, ``<url|label>`` ->
    ``label``, or ``label (url)`` with ``show_urls``), then ``&amp;``/``&lt;``/``&gt;``
    shown as ``&``/``<``/``>`` (once: ``&amp;lt;`` shows as ``&lt;``)."""
    names = names or {}

    def control(m: re.Match) -> str:
        target, _, label = m.group(1).partition("|")
        if target.startswith(("@", "#")):
            ident = target[1:]
            if names.get(ident):
                return names[ident]
            return label if label.startswith(("@", "#")) else target[0] + (label or ident)
        if target.startswith("!"):
            word = target[1:]
            if word.startswith("date^"):
                return label or word
            return label or "@" + word.split("^", 1)[0]
        if not label:
            return target
        return f"{label} ({target})" if show_urls else label

    shown = _CONTROL.sub(control, text or "")
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], shown)


def _text_objects(obj: Any) -> list[tuple[Optional[str], str]]:
    """(type, text) of every text object (a dict with a string "text") under ``obj``, depth
    first; type is "mrkdwn", "plain_text" or None (an attachment's own text: mrkdwn)."""
    out: list[tuple[Optional[str], str]] = []
    if isinstance(obj, dict):
        if isinstance(obj.get("text"), str):
            kind = obj.get("type")
            out.append((kind if kind in ("mrkdwn", "plain_text") else None, obj["text"]))
        for key, value in obj.items():
            if not (key == "text" and isinstance(value, str)):
                out.extend(_text_objects(value))
    elif isinstance(obj, list):
        for item in obj:
            out.extend(_text_objects(item))
    return out


def _texts(obj: Any) -> list[str]:
    """Every string under a "text" key, depth first, in document order."""
    out: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "text" and isinstance(value, str):
                out.append(value)
            else:
                out.extend(_texts(value))
    elif isinstance(obj, list):
        for item in obj:
            out.extend(_texts(item))
    return out


def _element(e: dict, names: Optional[dict[str, str]] = None) -> str:
    kind = e.get("type")
    if kind == "button":
        return f"[ {(e.get('text') or {}).get('text', '')} ]"
    if kind == "plain_text":
        return e.get("text", "")
    if kind == "mrkdwn":
        return display_mrkdwn(e.get("text", ""), names, show_urls=True)
    if kind == "image":
        return f"(image: {e.get('alt_text', '')})"
    return f"[ {(e.get('placeholder') or {}).get('text', kind)} ▾ ]"


def render_blocks(blocks: list[dict], names: Optional[dict[str, str]] = None) -> list[str]:
    """Blocks as readable lines, as Slack shows them: mrkdwn displayed (escapes undone,
    mentions as @name via ``names``, links as ``label (url)``), fields side by side,
    buttons as [ Label ]."""
    lines: list[str] = []
    for b in blocks:
        kind = b.get("type")
        if kind in ("section", "header"):
            if b.get("text"):
                lines.append(_element(b["text"], names))
            if b.get("fields"):
                lines.append("   ".join(_element(f, names).replace("\n", " ") for f in b["fields"]))
            if b.get("accessory"):
                lines.append(_element(b["accessory"], names))
        elif kind in ("context", "actions"):
            lines.append("  ".join(_element(e, names) for e in b.get("elements") or []))
        elif kind == "divider":
            lines.append("─" * 20)
        else:
            lines.extend(_texts(b))
    return lines


class SlackStandin(ServedInBackground):
    def __init__(self, token: str = "xoxb-test-token", *, printer: Optional[Printer] = None,
                 channel_names: Optional[dict[str, str]] = None, port: int = 0,
                 rate_limits: bool = False, post_rate: float = 1.0, post_burst: int = 3,
                 home_tab: bool = True) -> None:
        self.token = token
        self.home_tab = home_tab
        self._homes: dict[str, dict] = {}  # user id -> the view views.publish made their App Home
        self._usergroups: dict[str, dict] = {}  # handle -> {"id", "handle", "name", "users", "disabled"}
        self._channel_members: dict[str, list[str]] = {}  # channel id -> its members' user ids
        self._views: list[dict] = []  # the modals views.open opened, oldest first
        self._files: dict[str, dict] = {}  # file id -> {"id", "name", "length", "data", "channel", "thread_ts"}
        self._triggers: set[str] = set()  # trigger ids views.open has used
        self.rate_limits = rate_limits
        self.post_rate, self.post_burst = float(post_rate), int(post_burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)
        self._writes: list[tuple[str, str, float]] = []  # (channel, method, time.time()) that landed
        self.printer = printer
        self.channel_names = dict(channel_names or {})
        self._port = port
        self._lock = threading.RLock()
        self._messages: list[Message] = []
        self._calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._clock = int(time.time()) * 1_000_000
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # ---- lifecycle ---------------------------------------------------------------
    def start(self) -> "SlackStandin":
        return self._serve(self._port, _Handler, "slack-standin", standin=self)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("SlackStandin is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    # ---- user groups (usergroups.list / usergroups.users.list) ---------------------
    def add_usergroup(self, handle: str, members: list[str] | tuple[str, ...] = (), *,
                      name: Optional[str] = None, disabled: bool = False) -> str:
        """Create (or replace) the user group ``@handle`` with these member user ids; its id."""
        with self._lock:
            old = self._usergroups.get(handle)
            ident = old["id"] if old else f"S{len(self._usergroups) + 1:09d}"
            self._usergroups[handle] = {"id": ident, "handle": handle, "name": name or handle,
                                        "users": list(members), "disabled": disabled}
            return ident

    def set_channel_members(self, channel: str, members: list[str] | tuple[str, ...]) -> None:
        """Who is in ``channel`` (``conversations.members``; a channel never set is not found)."""
        with self._lock:
            self._channel_members[channel] = list(members)

    def set_usergroup_members(self, handle: str, members: list[str] | tuple[str, ...]) -> None:
        """Change who is in ``@handle`` (as an admin editing the group in Slack would)."""
        with self._lock:
            self._usergroups[handle]["users"] = list(members)

    def _usergroup(self, group: dict, with_users: bool) -> dict:
        out = {"id": group["id"], "team_id": TEAM_ID, "is_usergroup": True, "handle": group["handle"],
               "name": group["name"], "description": "", "date_create": 1700000000,
               "date_update": 1700000000, "date_delete": 1700000001 if group["disabled"] else 0,
               "user_count": len(group["users"])}
        if with_users:
            out["users"] = list(group["users"])
        return out

    # ---- recorded state ------------------------------------------------------------
    def messages(self, channel: Optional[str] = None) -> list[Message]:
        """Current version of every non-ephemeral message and reply, in post order."""
        with self._lock:
            channel = dm_channel(channel) if channel else None
            return [copy.deepcopy(m) for m in self._messages
                    if not m.ephemeral and (channel is None or m.channel == channel)]

    def ephemerals(self, user: Optional[str] = None) -> list[Message]:
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages
                    if m.ephemeral and (user is None or m.user == user)]

    def files(self, channel: Optional[str] = None, thread_ts: Optional[str] = None) -> list[dict]:
        """Every file shared (files.completeUploadExternal), oldest first: ``id``, ``name``,
        ``title``, ``channel``, ``thread_ts`` and ``content`` (the uploaded bytes as text)."""
        with self._lock:
            channel = dm_channel(channel) if channel else None
            return [{k: v for k, v in f.items() if k != "data"} | {"content": f["data"].decode("utf-8", "replace")}
                    for f in self._files.values() if f.get("channel") is not None
                    and (channel is None or f["channel"] == channel)
                    and (thread_ts is None or f["thread_ts"] == thread_ts)]

    def upload(self, file_id: str, data: bytes) -> bool:
        """The upload step (``POST /_upload/<file id>``); False for an id never handed out."""
        with self._lock:
            f = self._files.get(file_id)
            if f is None:
                return False
            f["data"] = bytes(data)
            self._calls.append(Call("upload", {"file_id": file_id, "bytes": len(data)}))
            return True

    def dms(self, user: str) -> list[Message]:
        return self.messages(channel=user)

    def find(self, event_type: Optional[str] = None, channel: Optional[str] = None) -> list[Message]:
        return [m for m in self.messages(channel) if event_type is None or m.event_type == event_type]

    def get(self, channel: str, ts: str) -> Optional[Message]:
        with self._lock:
            found = self._find(dm_channel(channel), ts)
            return copy.deepcopy(found) if found else None

    def home(self, user: str) -> Optional[dict]:
        """The App Home view last published for ``user`` (as ``views.publish`` returned it), or None."""
        with self._lock:
            return copy.deepcopy(self._homes.get(user))

    def homes(self) -> list[str]:
        with self._lock:
            return list(self._homes)

    @staticmethod
    def verify_request_url(post: Callable[[str, dict], tuple[int, Any]], signing_secret: str) -> bool:
        """Slack's check of an Events API request URL: ``post(body, headers)`` sends a signed
        ``url_verification`` body and returns (HTTP status, parsed JSON); True when it is a
        200 whose ``challenge`` is the one sent (Slack refuses the URL otherwise)."""
        from local.slack_client import sign, url_verification_body

        body, challenge = url_verification_body()
        status, answer = post(body, sign(body, signing_secret, content_type="application/json"))
        return status == 200 and isinstance(answer, dict) and answer.get("challenge") == challenge

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def reset(self) -> None:
        """Forget messages, calls and pending faults (timestamps keep increasing)."""
        with self._lock:
            self._messages.clear()
            self._calls.clear()
            self._faults.clear()
            self._buckets.clear()
            self._writes.clear()
            self._homes.clear()
            self._files.clear()
            self._views.clear()
            self._triggers.clear()

    def rate_limited(self) -> list[Call]:
        """The calls refused with 429 (injected or by the rate limits)."""
        with self._lock:
            return [c for c in self._calls if c.error == "http_429"]

    def writes(self, channel: Optional[str] = None) -> list[tuple[str, str, float]]:
        """(channel, method, time) of every chat.postMessage / chat.update that landed."""
        with self._lock:
            channel = dm_channel(channel) if channel else None
            return [w for w in self._writes if channel is None or w[0] == channel]

    _PACED = ("chat.postMessage", "chat.update")

    def _take_token(self, method: str, params: dict) -> Optional[int]:
        """None if the call may go ahead (a token is taken), else the Retry-After seconds."""
        if not self.rate_limits or method not in self._PACED:
            return None
        channel = dm_channel(str(params.get("channel") or ""))
        now = time.time()
        tokens, at = self._buckets.get(channel, (float(self.post_burst), now))
        tokens = min(float(self.post_burst), tokens + max(0.0, now - at) * self.post_rate)
        if tokens >= 1.0:
            self._buckets[channel] = (tokens - 1.0, now)
            return None
        self._buckets[channel] = (tokens, now)
        return max(1, int(-(-(1.0 - tokens) // self.post_rate)))

    def fail_next(self, method: str, *, times: int = 1, status: int = 500, retry_after: int = 1,
                  error: Optional[str] = None) -> None:
        """The next `times` calls of `method` get HTTP `status` (500 or 429 + Retry-After),
        or, when `error` is given, HTTP 200 {"ok": false, "error": error}."""
        if error is None and status not in (429, 500, 503):
            raise ValueError("status must be 429, 500 or 503 (or give error=...)")
        with self._lock:
            self._faults.setdefault(method, []).extend([_Fault(status, retry_after, error)] * times)

    # ---- request handling (called by the HTTP handler) ----------------------------
    def handle(self, method: str, params: dict, token: Optional[str]) -> tuple[int, dict, dict]:
        """Returns (HTTP status, extra headers, JSON body)."""
        with self._lock:
            error: Optional[str] = None
            try:
                if token != self.token:
                    raise SlackError("invalid_auth")
                faults = self._faults.get(method)
                if faults:
                    fault = faults.pop(0)
                    if fault.error is not None:
                        raise SlackError(fault.error)
                    error = f"http_{fault.status}"
                    headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
                    body = {"ok": False, "error": "ratelimited" if fault.status == 429 else "internal_error"}
                    return fault.status, headers, body
                handler = self._METHODS.get(method)
                if handler is None:
                    raise SlackError("unknown_method")
                wait = self._take_token(method, params)
                if wait is not None:
                    error = "http_429"
                    return 429, {"Retry-After": str(wait)}, {"ok": False, "error": "ratelimited"}
                body = {"ok": True, **handler(self, params)}
                if method in self._PACED:
                    self._writes.append((body["channel"], method, time.time()))
                return 200, {}, body
            except SlackError as e:
                error = e.error
                extra = {"response_metadata": {"messages": e.messages}} if getattr(e, "messages", None) else {}
                return 200, {}, {"ok": False, "error": e.error, **extra}
            finally:
                self._calls.append(Call(method, params, error))

    def _next_ts(self) -> str:
        self._clock = max(self._clock + 100, int(time.time()) * 1_000_000)
        return f"{self._clock // 1_000_000}.{self._clock % 1_000_000:06d}"

    def _find(self, channel: str, ts: str) -> Optional[Message]:
        return next((m for m in self._messages
                     if not m.ephemeral and m.channel == channel and m.ts == ts), None)

    @staticmethod
    def _channel(params: dict, *, user_ok: bool = True) -> str:
        channel = str(params.get("channel") or "")
        if not channel or channel[0] not in ("CGDU" if user_ok else "CGD"):
            raise SlackError("channel_not_found")
        return dm_channel(channel)

    @staticmethod
    def _content(params: dict) -> dict:
        """text/blocks/attachments/metadata present in the call, JSON strings decoded and checked."""
        content: dict = {}
        for name in ("text", *_JSON_ARGS):
            value = params.get(name)
            if name in _JSON_ARGS and value is not None:
                try:
                    value = json.loads(value) if isinstance(value, str) else value
                except ValueError:
                    raise SlackError(_JSON_ARGS[name])
                if not isinstance(value, list if name != "metadata" else dict):
                    raise SlackError(_JSON_ARGS[name])
            if value is not None:
                content[name] = value
        meta = content.get("metadata")
        if meta is not None and not (isinstance(meta.get("event_type"), str)
                                     and isinstance(meta.get("event_payload"), dict)):
            raise SlackError("invalid_metadata_format")
        if not (content.get("text") or content.get("blocks") or content.get("attachments")):
            raise SlackError("no_text")
        return content

    def _record(self, msg: Message, what: str) -> dict:
        self._messages.append(msg)
        self._print(msg, what)
        return {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": msg.ts,
                "text": msg.text, "blocks": msg.blocks, "metadata": msg.metadata,
                **({"thread_ts": msg.thread_ts} if msg.thread_ts else {})}

    def _post_message(self, params: dict) -> dict:
        channel = self._channel(params)
        content = self._content(params)
        thread_ts = params.get("thread_ts") or None
        msg = Message(channel=channel, ts=self._next_ts(), thread_ts=thread_ts, text=content.get("text", ""),
                      blocks=content.get("blocks", []), metadata=content.get("metadata"),
                      attachments=content.get("attachments", []))
        what = f"reply in thread {thread_ts}: {msg.ts}" if thread_ts else f"new message {msg.ts}"
        return {"channel": channel, "ts": msg.ts, "message": self._record(msg, what)}

    def _update(self, params: dict) -> dict:
        channel = self._channel(params, user_ok=False)
        msg = self._find(channel, str(params.get("ts") or ""))
        if msg is None:
            raise SlackError("message_not_found")
        content = self._content(params)
        msg.updates.append({"text": msg.text, "blocks": msg.blocks, "metadata": msg.metadata,
                            "attachments": msg.attachments})
        for name, value in content.items():
            setattr(msg, name, value)
        self._print(msg, f"update {msg.ts}, v{len(msg.updates) + 1}")
        return {"channel": channel, "ts": msg.ts, "text": msg.text,
                "message": {"text": msg.text, "blocks": msg.blocks, "metadata": msg.metadata}}

    def _delete(self, params: dict) -> dict:
        channel = self._channel(params, user_ok=False)
        ts = str(params.get("ts") or "")
        msg = self._find(channel, ts)
        if msg is None:
            raise SlackError("message_not_found")
        self._messages.remove(msg)
        self._print(msg, f"deleted {msg.ts}")
        return {"channel": channel, "ts": ts}

    def _history(self, params: dict) -> dict:
        """conversations.history: top-level messages of a channel, newest first, metadata
        only with include_all_metadata (as Slack does); cursor = an offset here."""
        channel = self._channel(params, user_ok=False)
        limit = max(1, min(int(params.get("limit") or 100), 999))
        start = int(params.get("cursor") or 0)
        with_meta = str(params.get("include_all_metadata")).lower() in ("1", "true")
        found = [m for m in reversed(self._messages)
                 if m.channel == channel and not m.ephemeral and (m.thread_ts is None or m.thread_ts == m.ts)]
        page = found[start:start + limit]
        messages = [{"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": m.ts, "text": m.text,
                     **({"metadata": m.metadata} if with_meta and m.metadata else {})} for m in page]
        more = start + limit < len(found)
        return {"messages": messages, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _replies(self, params: dict) -> dict:
        """conversations.replies: the thread of ``ts`` (the parent first, then its replies,
        oldest first), each message with its ``files`` ({"id", "name", "title"}) when it has
        some, as Slack shows shared files; metadata only with include_all_metadata; cursor =
        an offset here."""
        channel = self._channel(params, user_ok=False)
        ts = str(params.get("ts") or "")
        parent = self._find(channel, ts)
        if parent is None:
            raise SlackError("thread_not_found")
        limit = max(1, min(int(params.get("limit") or 1000), 1000))
        start = int(params.get("cursor") or 0)
        with_meta = str(params.get("include_all_metadata")).lower() in ("1", "true")
        found = [parent] + [m for m in self._messages
                            if m.channel == channel and not m.ephemeral and m.thread_ts == ts and m is not parent]
        page = found[start:start + limit]
        messages = [{"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": m.ts, "text": m.text,
                     **({"thread_ts": m.thread_ts} if m.thread_ts else {}),
                     **({"files": [dict(f) for f in m.files]} if m.files else {}),
                     **({"metadata": m.metadata} if with_meta and m.metadata else {})} for m in page]
        more = start + limit < len(found)
        return {"messages": messages, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _post_ephemeral(self, params: dict) -> dict:
        channel = self._channel(params)
        user = str(params.get("user") or "")
        if not user.startswith("U"):
            raise SlackError("user_not_found")
        content = self._content(params)
        msg = Message(channel=channel, ts=self._next_ts(), thread_ts=params.get("thread_ts") or None,
                      text=content.get("text", ""), blocks=content.get("blocks", []), user=user,
                      ephemeral=True, attachments=content.get("attachments", []))
        self._record(msg, f"ephemeral {msg.ts}")
        return {"message_ts": msg.ts}

    def _conversations_open(self, params: dict) -> dict:
        users = [u for u in str(params.get("users") or "").split(",") if u]
        if len(users) != 1 or not users[0].startswith("U"):
            raise SlackError("user_not_found" if len(users) <= 1 else "not_supported")
        return {"channel": {"id": dm_channel(users[0]), "is_im": True, "user": users[0]}}

    def _get_permalink(self, params: dict) -> dict:
        channel = self._channel(params, user_ok=False)
        ts = str(params.get("message_ts") or "")
        if self._find(channel, ts) is None:
            raise SlackError("message_not_found")
        return {"channel": channel,
                "permalink": f"https://standin.slack.com/archives/{channel}/p{ts.replace('.', '')}"}

    #: Slack's limit on blocks in a modal or Home tab view
    MAX_VIEW_BLOCKS = 100

    @staticmethod
    def _view_param(params: dict, kind: str, invalid: Callable[[str], "SlackError"]) -> dict:
        """The ``view`` argument of views.publish / views.open (a JSON string in a form body,
        an object in a JSON body), which must be an object of type ``kind``."""
        view = params.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                raise invalid("must provide an object [json-pointer:/view]")
        if not isinstance(view, dict):
            raise invalid("must provide an object [json-pointer:/view]")
        if view.get("type") != kind:
            raise invalid(f"view type must be `{kind}` [json-pointer:/view/type]")
        return view

    def _views_publish(self, params: dict) -> dict:
        """views.publish: ``user_id`` and a ``home`` view (a JSON string in a form body)."""
        invalid = _invalid_arguments
        user = str(params.get("user_id") or "")
        if not re.fullmatch(r"[UW][A-Z0-9]{2,}", user):
            raise invalid("invalid `user_id`")
        view = self._view_param(params, "home", invalid)
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or not all(isinstance(b, dict) and b.get("type") for b in blocks):
            raise invalid("must provide an array of blocks [json-pointer:/view/blocks]")
        if len(blocks) > self.MAX_VIEW_BLOCKS:
            raise invalid(f"no more than {self.MAX_VIEW_BLOCKS} items allowed [json-pointer:/view/blocks]")
        if not self.home_tab:
            raise SlackError("not_enabled")
        published = {**copy.deepcopy(view), "id": f"V{len(self._homes) + 1:08d}", "team_id": TEAM_ID,
                     "app_id": "A0DRAWBRDG", "bot_id": BOT_ID, "state": {"values": {}}}
        self._homes[user] = published
        if self.printer is not None:
            lines = render_blocks(blocks, self.channel_names)
            self.printer("\n".join([f"┌─ App Home of {self._name(user)}  (views.publish)",
                                    *(f"│ {line}" for chunk in lines for line in str(chunk).splitlines() or [""]),
                                    "└─"]))
        return {"view": copy.deepcopy(published)}

    #: how long a trigger id may be used (Slack: 3 seconds), plus the second a trigger id's
    #: whole-second timestamp may have lost
    TRIGGER_SECONDS = 3
    _TRIGGER = re.compile(r"([0-9]{9,12})\.[0-9]+\.[0-9a-f]{8,}")

    def _views_open(self, params: dict) -> dict:
        """views.open: a ``trigger_id`` (``<seconds>.<digits>.<hex>``, as Slack shapes them)
        and a ``modal`` view (a JSON string in a form body). Like Slack: a trigger id opens
        one view (``exchanged_trigger_id`` when used again) within 3 seconds of when it was
        made (``expired_trigger_id``); one not shaped like Slack's is ``invalid_trigger_id``.
        The view is checked as Slack checks it (``invalid_arguments`` with
        ``response_metadata.messages``): title and submit/close texts of at most 24
        characters, at most 100 blocks, a submit button when it has inputs, a
        ``callback_id`` / ``private_metadata`` of at most 255 / 3000 characters, unique block ids,
        at most 100 options a select. ``opened_views()`` lists what opened."""
        invalid = _invalid_arguments
        view = self._view_param(params, "modal", invalid)
        for key in ("title", "submit", "close"):
            text = view.get(key)
            if text is None and key != "title":
                continue
            if not isinstance(text, dict) or text.get("type") != "plain_text" or not text.get("text"):
                raise invalid(f"must provide a plain_text object [json-pointer:/view/{key}]")
            if len(text["text"]) > 24:
                raise invalid(f"must be less than 25 characters [json-pointer:/view/{key}/text]")
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or not all(isinstance(b, dict) and b.get("type") for b in blocks):
            raise invalid("must provide an array of blocks [json-pointer:/view/blocks]")
        if len(blocks) > self.MAX_VIEW_BLOCKS:
            raise invalid(f"no more than {self.MAX_VIEW_BLOCKS} items allowed [json-pointer:/view/blocks]")
        if any(b["type"] == "input" for b in blocks) and view.get("submit") is None:
            raise invalid("must provide a submit button with input blocks [json-pointer:/view/submit]")
        if len(str(view.get("callback_id") or "")) > 255:
            raise invalid("must be less than 256 characters [json-pointer:/view/callback_id]")
        if len(str(view.get("private_metadata") or "")) > 3000:
            raise invalid("must be less than 3001 characters [json-pointer:/view/private_metadata]")
        ids = [b["block_id"] for b in blocks if b.get("block_id")]
        if len(ids) != len(set(ids)):
            raise invalid("block_id must be unique [json-pointer:/view/blocks]")
        for i, b in enumerate(blocks):
            element = b.get("element") or b.get("accessory") or {}
            if len(element.get("options") or []) > 100:
                raise invalid(f"no more than 100 items allowed [json-pointer:/view/blocks/{i}/element/options]")
        trigger = str(params.get("trigger_id") or "")
        shaped = self._TRIGGER.fullmatch(trigger)
        if not shaped:
            raise SlackError("invalid_trigger_id")
        if trigger in self._triggers:
            raise SlackError("exchanged_trigger_id")
        if time.time() - int(shaped.group(1)) > self.TRIGGER_SECONDS + 1:
            raise SlackError("expired_trigger_id")
        self._triggers.add(trigger)
        opened = {**copy.deepcopy(view), "id": f"V{len(self._views) + 1:08d}", "team_id": TEAM_ID,
                  "app_id": "A0DRAWBRDG", "bot_id": BOT_ID, "state": {"values": {}},
                  "hash": f"{int(time.time())}.{len(self._views) + 1:08d}", "trigger_id": trigger}
        self._views.append(opened)
        if self.printer is not None:
            lines = render_blocks(blocks, self.channel_names)
            title = (view.get("title") or {}).get("text", "")
            self.printer("\n".join([f"┌─ Modal \"{title}\" ({opened['id']}, views.open)",
                                    *(f"│ {line}" for chunk in lines for line in str(chunk).splitlines() or [""]),
                                    "└─"]))
        return {"view": {k: v for k, v in copy.deepcopy(opened).items() if k != "trigger_id"}}

    def opened_views(self) -> list[dict]:
        """Every view views.open opened, oldest first (each with the ``trigger_id`` that opened it)."""
        with self._lock:
            return copy.deepcopy(self._views)

    def opened_view(self, trigger_id: Optional[str] = None) -> Optional[dict]:
        """The view the trigger id opened (default: the last view opened), or None."""
        with self._lock:
            found = [v for v in self._views if trigger_id is None or v["trigger_id"] == trigger_id]
            return copy.deepcopy(found[-1]) if found else None

    def _auth_test(self, params: dict) -> dict:
        return {"url": "https://standin.slack.com/", "team": "Standin", "user": "drawbridge",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID}

    @staticmethod
    def _flag(params: dict, name: str) -> bool:
        return str(params.get(name, "")).lower() in ("1", "true")

    def _usergroups_list(self, params: dict) -> dict:
        """usergroups.list: the workspace's groups (disabled ones only with include_disabled),
        their members only with include_users."""
        with_users, disabled = self._flag(params, "include_users"), self._flag(params, "include_disabled")
        return {"usergroups": [self._usergroup(g, with_users) for g in self._usergroups.values()
                               if disabled or not g["disabled"]]}

    def _usergroups_users_list(self, params: dict) -> dict:
        """usergroups.users.list: ``usergroup`` (an id, like S0123) required; its member ids."""
        ident = str(params.get("usergroup") or "")
        if not ident:
            raise SlackError("invalid_arguments")
        group = next((g for g in self._usergroups.values() if g["id"] == ident), None)
        if group is None:
            raise SlackError("no_such_subteam")
        if group["disabled"] and not self._flag(params, "include_disabled"):
            return {"users": []}  # a disabled group has nobody unless asked for (include_disabled)
        return {"users": list(group["users"])}

    def _get_upload_url(self, params: dict) -> dict:
        """files.getUploadURLExternal: ``filename`` and ``length`` (bytes) required."""
        name = str(params.get("filename") or "")
        try:
            length = int(params.get("length"))
        except (TypeError, ValueError):
            raise _invalid_arguments("must provide an integer [json-pointer:/length]")
        if not name or length < 0:
            raise _invalid_arguments("must provide a filename and a length")
        ident = f"F{len(self._files) + 1:09d}"
        self._files[ident] = {"id": ident, "name": name, "length": length, "data": None, "channel": None,
                              "thread_ts": None, "title": name}
        base = self.url.rsplit("/api/", 1)[0]
        return {"file_id": ident, "upload_url": f"{base}/_upload/{ident}"}

    def _complete_upload(self, params: dict) -> dict:
        """files.completeUploadExternal: share uploaded files into ``channel_id`` (and its
        ``thread_ts``), as one message with the files (``initial_comment`` its text)."""
        try:
            listed = json.loads(params.get("files") or "")
        except (TypeError, ValueError):
            raise _invalid_arguments("must provide a JSON array [json-pointer:/files]")
        if not isinstance(listed, list) or not listed or not all(isinstance(f, dict) and f.get("id") for f in listed):
            raise _invalid_arguments("must provide an array of files with an id [json-pointer:/files]")
        found = [self._files.get(str(f["id"])) for f in listed]
        if any(f is None or f["data"] is None for f in found):
            raise SlackError("file_not_found")
        if any(f["channel"] is not None for f in found):
            raise SlackError("already_shared")
        if any(f["length"] != len(f["data"]) for f in found):
            raise SlackError("file_upload_size_mismatch")
        channel = str(params.get("channel_id") or "")
        thread_ts = params.get("thread_ts") or None
        out = []
        if channel:
            if channel[0] not in "CGD":
                raise SlackError("channel_not_found")
            if thread_ts and self._find(channel, str(thread_ts)) is None:
                raise SlackError("invalid_thread_ts")
            for f, given in zip(found, listed):
                f.update(channel=channel, thread_ts=thread_ts, title=given.get("title") or f["name"])
            msg = Message(channel=channel, ts=self._next_ts(), thread_ts=thread_ts,
                          text=str(params.get("initial_comment") or ""),
                          files=[{"id": f["id"], "name": f["name"], "title": f["title"]} for f in found])
            self._record(msg, f"files in thread {thread_ts}: {', '.join(f['name'] for f in found)}"
                         if thread_ts else f"files: {', '.join(f['name'] for f in found)}")
        for f in found:
            out.append({"id": f["id"], "name": f["name"], "title": f["title"], "size": f["length"],
                        "mimetype": "text/plain"})
        return {"files": out}

    def _conversations_members(self, params: dict) -> dict:
        """conversations.members: ``channel`` required; every member in one page."""
        channel = str(params.get("channel") or "")
        if not channel:
            raise SlackError("invalid_arguments")
        if channel not in self._channel_members:
            raise SlackError("channel_not_found")
        return {"members": list(self._channel_members[channel]), "response_metadata": {"next_cursor": ""}}

    _METHODS: dict[str, Callable[["SlackStandin", dict], dict]] = {
        "usergroups.list": _usergroups_list,
        "usergroups.users.list": _usergroups_users_list,
        "conversations.members": _conversations_members,
        "auth.test": _auth_test,
        "chat.postMessage": _post_message,
        "chat.update": _update,
        "chat.delete": _delete,
        "conversations.history": _history,
        "conversations.replies": _replies,
        "chat.postEphemeral": _post_ephemeral,
        "conversations.open": _conversations_open,
        "chat.getPermalink": _get_permalink,
        "views.publish": _views_publish,
        "views.open": _views_open,
        "files.getUploadURLExternal": _get_upload_url,
        "files.completeUploadExternal": _complete_upload,
    }

    # ---- readable printing -----------------------------------------------------------
    def _name(self, ident: str) -> str:
        return self.channel_names.get(ident) or (("@" if ident[:1] == "U" else "#") + ident)

    def _print(self, msg: Message, what: str) -> None:
        if self.printer is None:
            return
        if msg.ephemeral:
            where = f"{self._name(msg.channel)} → only {self._name(msg.user or '')}"
        elif msg.dm_user:
            where = f"DM {self._name(msg.dm_user)}"
        else:
            where = self._name(msg.channel)
        tag = f"  [{msg.event_type}]" if msg.event_type else ""
        names = self.channel_names
        lines = render_blocks(msg.blocks, names) or [display_mrkdwn(msg.text, names, show_urls=True)]
        for att in msg.attachments:
            lines += render_blocks(att.get("blocks") or [], names) + (
                [display_mrkdwn(att["text"], names, show_urls=True)] if att.get("text") else [])
        body = [f"│ {line}" for chunk in lines for line in str(chunk).splitlines() or [""]]
        self.printer("\n".join([f"┌─ {where}  ({what}){tag}", *body, "└─"]))


class _Handler(BaseHTTPRequestHandler):
    server_version = "SlackStandin/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    @property
    def standin(self) -> SlackStandin:
        return self.server.standin  # type: ignore[attr-defined]

    def _reply(self, status: int, body: Any, headers: Optional[dict] = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _params(self) -> dict:
        params: dict = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if raw and ctype == "application/json":
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("JSON body must be an object")
            params.update(body)
        elif raw:
            params.update(parse_qsl(raw.decode(), keep_blank_values=True))
        return params

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/_standin/messages":
            with self.standin._lock:
                body = {"ok": True, "messages": [m.to_dict() for m in self.standin._messages],
                        "calls": [c._asdict() for c in self.standin._calls],
                        "views": self.standin._views, "files": self.standin.files()}
            return self._reply(200, body)
        if path == "/_standin/home":  # the App Home a user would see (``make dev``'s ``home``)
            user = dict(parse_qsl(urlsplit(self.path).query)).get("user", "")
            return self._reply(200, {"ok": True, "user": user, "view": self.standin.home(user)})
        self.do_POST()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/_upload/"):  # the upload URL files.getUploadURLExternal handed out
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.standin.upload(path[len("/_upload/"):], raw):
                return self._reply(404, {"ok": False, "error": "not_found"})
            data = f"OK - {len(raw)}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if path == "/_standin/reset":
            self.standin.reset()
            return self._reply(200, {"ok": True})
        if not path.startswith("/api/"):
            return self._reply(404, {"ok": False, "error": "not_found"})
        try:
            params = self._params()
        except ValueError:
            return self._reply(200, {"ok": False, "error": "invalid_json"})
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.startswith("Bearer ") else params.get("token")
        params.pop("token", None)
        status, headers, body = self.standin.handle(path[len("/api/"):], params, token)
        self._reply(status, body, headers)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.slack_standin", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=os.environ.get("SLACK_BOT_TOKEN", "xoxb-test-token"))
    parser.add_argument("--ready-file", help="write the API URL here once listening")
    parser.add_argument("--rate-limits", action="store_true",
                        help="answer 429 + Retry-After beyond ~1 message a second per channel (short bursts allowed)")
    parser.add_argument("--name", action="append", default=[], metavar="ID=NAME",
                        help="display name, e.g. C0APPROVE1=#aws-access-approvals (repeatable)")
    parser.add_argument("--usergroup", action="append", default=[], metavar="HANDLE=U1,U2",
                        help="a user group and its members, e.g. sre-leads=U0BOB00001,U0CAROL001 (repeatable)")
    args = parser.parse_args(argv)
    names = dict(item.split("=", 1) for item in args.name)
    standin = SlackStandin(args.token, port=args.port, channel_names=names, rate_limits=args.rate_limits,
                           printer=lambda text: print(text, flush=True)).start()
    for item in args.usergroup:
        handle, _, members = item.partition("=")
        standin.add_usergroup(handle.removeprefix("@"), [m for m in members.split(",") if m])
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"READY {standin.url}", flush=True)
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp"
        with open(tmp, "w") as fh:
            fh.write(standin.url + "\n")
        os.replace(tmp, args.ready_file)
    try:
        while not done.wait(0.2):
            pass
    finally:
        standin.stop()
    print("slack stand-in stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
