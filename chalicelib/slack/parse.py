"""Slack payloads -> typed commands and clicks (pure: stdlib only).

Anything malformed raises ``BadPayload`` (a signed one is answered with an ephemeral
refusal and has no effect);
a well-formed command the grammar does not accept raises ``CommandError``
whose message is shown to the user as an ephemeral reply.

Text boundary: Slack sends what a person typed with exactly three characters
escaped (``&`` -> ``&amp;``, ``<`` -> ``&lt;``, ``>`` -> ``&gt;``). The slash
command's ``text`` is decoded here, once (:func:`decode_entities`), so every
``SlashCommand`` and everything parsed from it carries what the person typed; the
table and message metadata keep that raw text, and rendering escapes it exactly
once (``escape.escape_mrkdwn``). ``CommandError`` messages are mrkdwn: a typed word
quoted in one is escaped there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from .escape import escape_mrkdwn

MAX_REASON = 300  # characters of the reason as typed (decoded), not as Slack sent it
USAGE = (
    "Usage:\n"
    "• `/aws-access` a form to request access (pick the account, role and duration)\n"
    "• `/aws-access &lt;account&gt; &lt;role&gt; &lt;duration&gt; [reason ...]` request access, e.g. "
    "`/aws-access prod admin 2h fixing incident 4521`\n"
    "• `/aws-access help` what you may request\n"
    "• `/aws-access list` your pending and active requests\n"
    "• `/aws-access revoke &lt;request-id&gt;` end a grant early (requester or approver)\n"
    "• `/aws-access activity &lt;request-id&gt;` what was done with a grant (requester or approver)\n"
    "• `/aws-access review [7d|30d|&lt;n&gt;d]` the access review of the last n days, by DM "
    "(security channel members; at most 90d)\n"
    "• `/aws-access extend &lt;request-id&gt; &lt;duration&gt; [reason ...]` lengthen your active grant "
    "(approvers decide; it stays in force meanwhile)\n"
    "• `/aws-access breakglass &lt;account&gt; &lt;role&gt; &lt;duration&gt; &lt;reason ...&gt;` emergency "
    "access without approvals, if the catalog lets you (asks you to confirm; everyone is told)\n"
    "Durations: `30m`, `2h`, `1h30m`, `1d`. A reason may be up to 300 characters."
)
_MARKUP = frozenset("&<>")  # never part of an account, role (catalog keys) or duration
_REQUEST_ID = re.compile(r"req-[0-9]{8}-[0-9a-f]{6}", re.ASCII)
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}", re.ASCII)


class BadPayload(ValueError):
    """Not a Slack payload we understand: refused (ephemerally, when signed), nothing happens."""


class CommandError(ValueError):
    """A user mistake in a slash command; the message is shown to them."""


@dataclass(frozen=True)
class SlashCommand:
    user_id: str
    channel_id: str
    text: str
    command: str
    response_url: str
    trigger_id: str = ""  # unique per invocation; a retried delivery repeats it
    team_id: str = ""
    api_app_id: str = ""


@dataclass(frozen=True)
class RequestCmd:
    account: str
    role: str
    duration: str
    reason: str


@dataclass(frozen=True)
class HelpCmd:
    pass


@dataclass(frozen=True)
class ListCmd:
    pass


@dataclass(frozen=True)
class RevokeCmd:
    request_id: str


@dataclass(frozen=True)
class ExtendCmd:
    request_id: str
    duration: str
    reason: str


@dataclass(frozen=True)
class BreakGlassCmd:
    account: str
    role: str
    duration: str
    reason: str


@dataclass(frozen=True)
class ActivityCmd:
    """``activity <request-id>``: what was done with a grant (its tally, so far)."""

    request_id: str


@dataclass(frozen=True)
class ReviewCmd:
    """``review [<n>d]``: the access review of the last ``days`` days (1 to 90; 7 if not said)."""

    days: int = 7


#: the longest window ``review`` takes, in days
MAX_REVIEW_DAYS = 90
_REVIEW_DAYS = re.compile(r"([0-9]{1,4})d", re.ASCII)

Command = RequestCmd | HelpCmd | ListCmd | RevokeCmd | ExtendCmd | BreakGlassCmd | ActivityCmd | ReviewCmd


@dataclass(frozen=True)
class Click:
    action_id: str
    request_id: str
    user_id: str
    channel_id: str
    message_ts: str
    trigger_id: str = ""
    team_id: str = ""
    api_app_id: str = ""
    #: which extension request of ``request_id`` an extension button belongs to (0: not one)
    extension: int = 0
    block_id: str = ""  # a text input's block (``flag:<request-id>``); empty for buttons
    #: where the button was: "message" (a card, a DM) or "view" (the App Home); a click in a
    #: view has no channel, so its private answer is a DM (service.click)
    container: str = "message"

    @property
    def from_home(self) -> bool:
        return self.container == "view"


@dataclass(frozen=True)
class ViewSubmission:
    """A modal's Submit button (``view_submission``): who sent which view, with what in it.

    ``values`` flattens the view's state to block id -> what was entered: a select's chosen
    option value, a text input's text, "" when left empty. View state is *not* escaped by
    Slack (unlike a slash command's ``text``), so a text is what the person typed. Nothing
    in it is trusted beyond that: ``private_metadata`` is only what Drawbridge put in the
    view, and every decision is taken again from the catalog and the table."""

    user_id: str
    callback_id: str
    view_id: str
    values: dict[str, str]
    private_metadata: str = ""
    view_hash: str = ""
    team_id: str = ""
    api_app_id: str = ""
    trigger_id: str = ""

    def value(self, block_id: str) -> str:
        return self.values.get(block_id, "")

    @property
    def delivery(self) -> str:
        """One submission of this view with these values: a double click or a redelivery
        repeats it; a changed value after a refusal is a new one."""
        import hashlib

        digest = hashlib.sha256(json.dumps(self.values, sort_keys=True).encode()).hexdigest()[:24]
        return f"{self.view_id}#{digest}"


class FieldError(CommandError):
    """A user mistake in one field of a form; ``block_id`` says which."""

    def __init__(self, message: str, block_id: str) -> None:
        super().__init__(message)
        self.block_id = block_id


def request_from_form(role: str, duration: str, reason: str) -> RequestCmd:
    """The request a request form's fields make: ``role`` is ``<account>/<role>`` (the
    option's value), ``duration`` as typed in the one-liner (``2h``), ``reason`` any text.
    The one-liner's checks and words: markup in a name, a reason over ``MAX_REASON``
    (whitespace is collapsed as the one-liner's words are). ``FieldError`` names the
    block (``role``, ``duration``, ``reason``) it is about."""
    account, _, role_key = role.strip().partition("/")
    if not account or not role_key:
        raise FieldError("choose an account and role", "role")
    if not duration.strip():
        raise FieldError("choose a duration", "duration")
    for block, words in (("role", [("account", account), ("role", role_key)]),
                         ("duration", [("duration", duration.strip())])):
        try:
            _no_markup(words)
        except CommandError as exc:
            raise FieldError(str(exc), block) from None
    try:
        text = _reason(reason.split())
    except CommandError as exc:
        raise FieldError(str(exc), "reason") from None
    return RequestCmd(account=account.lower(), role=role_key.lower(), duration=duration.strip(), reason=text)


def decode_entities(text: str) -> str:
    """What the person typed, from the text Slack sent: ``&lt;`` -> ``<``, ``&gt;`` -> ``>``,
    then ``&amp;`` -> ``&`` (last, so a typed ``&lt;`` -- sent as ``&amp;lt;`` -- stays ``&lt;``).

    Apply once, where the payload is parsed; the inverse of what Slack's client does.
    """
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload("body is not a UTF-8 form") from exc
    return {k: v[0] for k, v in fields.items()}


def parse_slash_command(body: bytes) -> SlashCommand:
    form = _form(body)
    user_id = form.get("user_id", "")
    if not _USER_ID.fullmatch(user_id):
        raise BadPayload("slash command without a valid user_id")
    return SlashCommand(
        user_id=user_id,
        channel_id=form.get("channel_id", ""),
        text=decode_entities(form.get("text", "")),
        command=form.get("command", "/aws-access") or "/aws-access",
        response_url=form.get("response_url", ""),
        trigger_id=form.get("trigger_id", "")[:128],
        team_id=form.get("team_id", "")[:32],
        api_app_id=form.get("api_app_id", "")[:32],
    )


def parse_command_text(text: str) -> Command:
    """Parse what the person typed (already decoded, see :func:`decode_entities`)."""
    words = text.split()
    if not words or words[0].lower() in ("help", "-h", "--help"):
        return HelpCmd()
    verb = words[0].lower()
    if verb == "list":
        if len(words) > 1:
            raise CommandError("`list` takes no arguments")
        return ListCmd()
    if verb in ("revoke", "activity"):
        if len(words) != 2:
            raise CommandError(f"usage: `/aws-access {verb} &lt;request-id&gt;` (see `/aws-access list`)")
        rid = words[1].strip("`").lower()
        if not _REQUEST_ID.fullmatch(rid):
            raise CommandError(f"'{escape_mrkdwn(words[1][:40])}' is not a request id "
                               "(they look like req-20261112-3fa9c1)")
        return RevokeCmd(rid) if verb == "revoke" else ActivityCmd(rid)
    if verb == "review":
        return _review(words[1:])
    if verb == "extend":
        return _extend(words)
    if verb == "breakglass":
        return _break_glass(words[1:])
    if len(words) < 3:
        raise CommandError("a request needs an account, a role and a duration.\n" + USAGE)
    _no_markup(zip(("account", "role", "duration"), words[:3]))
    reason = _reason(words[3:])
    return RequestCmd(account=words[0].lower(), role=words[1].lower(), duration=words[2], reason=reason)


def _review(args: list[str]) -> ReviewCmd:
    usage = "usage: `/aws-access review [7d|30d|&lt;n&gt;d]` (the last n days, at most 90d)"
    if not args:
        return ReviewCmd()
    if len(args) > 1:
        raise CommandError(usage)
    match = _REVIEW_DAYS.fullmatch(args[0].lower())
    if not match:
        raise CommandError(f"'{escape_mrkdwn(args[0][:40])}' is not a number of days; {usage}")
    days = int(match.group(1))
    if not 1 <= days <= MAX_REVIEW_DAYS:
        raise CommandError(f"the review covers 1 to {MAX_REVIEW_DAYS} days, not {days}; {usage}")
    return ReviewCmd(days)


def _no_markup(words) -> None:
    """Account, role and duration words are echoed in later replies (unknown account 'x',
    'x' is not a duration) that do not escape them: refuse markup here, where it is escaped."""
    for what, word in words:
        if _MARKUP & set(word):
            raise CommandError(f"'{escape_mrkdwn(word[:40])}' is not a{'n' if what == 'account' else ''} "
                               f"{what}: accounts, roles and durations never contain "
                               "`&amp;`, `&lt;` or `&gt;`")


def _reason(words: list[str]) -> str:
    reason = " ".join(words)
    if len(reason) > MAX_REASON:
        raise CommandError(f"the reason is {len(reason)} characters; keep it to {MAX_REASON} or fewer")
    return reason


EXTEND_USAGE = ("usage: `/aws-access extend &lt;request-id&gt; &lt;duration&gt; [reason ...]`, e.g. "
                "`/aws-access extend req-20261112-3fa9c1 1h still fixing incident 4521` (see `/aws-access list`)")


def _extend(words: list[str]) -> ExtendCmd:
    if len(words) < 3:
        raise CommandError(EXTEND_USAGE)
    rid = words[1].strip("`").lower()
    if not _REQUEST_ID.fullmatch(rid):
        raise CommandError(f"'{escape_mrkdwn(words[1][:40])}' is not a request id "
                           f"(they look like req-20261112-3fa9c1); {EXTEND_USAGE}")
    _no_markup([("duration", words[2])])
    return ExtendCmd(request_id=rid, duration=words[2], reason=_reason(words[3:]))


_EXTENSION_BLOCK = re.compile(r"extend:(req-[0-9]{8}-[0-9a-f]{6}):([1-9][0-9]{0,3})", re.ASCII)
BREAK_GLASS_USAGE = ("usage: `/aws-access breakglass &lt;account&gt; &lt;role&gt; &lt;duration&gt; &lt;reason&gt;`, "
                     "e.g. `/aws-access breakglass prod admin 1h database down, on-call cannot reach approvers`")


def _break_glass(words: list[str]) -> BreakGlassCmd:
    """``breakglass <account> <role> <duration> <reason ...>``: the reason is mandatory and
    at least a sentence (:func:`~chalicelib.domain.decide.break_glass_reason_problem`)."""
    from ..domain.decide import break_glass_reason_problem

    if len(words) < 3:
        raise CommandError("break-glass needs an account, a role, a duration and a reason.\n" + BREAK_GLASS_USAGE)
    _no_markup(zip(("account", "role", "duration"), words[:3]))
    reason = _reason(words[3:])
    if (problem := break_glass_reason_problem(reason)) is not None:
        raise CommandError(problem[:1].upper() + problem[1:])
    return BreakGlassCmd(account=words[0].lower(), role=words[1].lower(), duration=words[2], reason=reason)


def parse_interaction(body: bytes) -> Click | ViewSubmission | None:
    """A button click (a card, a DM, the App Home) or a modal's Submit; None for
    interactions we do not handle (a modal closed, a shortcut...)."""
    form = _form(body)
    if "payload" not in form:
        raise BadPayload("interaction without a payload field")
    try:
        payload = json.loads(form["payload"])
    except (ValueError, RecursionError) as exc:
        raise BadPayload("payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise BadPayload("payload is not an object")
    if payload.get("type") == "view_submission":
        return _view_submission(payload)
    if payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    user = payload.get("user")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict) \
            or not isinstance(user, dict) or not _USER_ID.fullmatch(str(user.get("id", ""))):
        raise BadPayload("block_actions payload without exactly one action and a user")
    action = actions[0]
    channel = payload.get("channel") if isinstance(payload.get("channel"), dict) else {}
    container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
    value = action.get("value")
    block = _EXTENSION_BLOCK.fullmatch(str(action.get("block_id") or ""))
    return Click(
        action_id=str(action.get("action_id", "")),
        request_id=value if isinstance(value, str) else "",
        user_id=user["id"],
        channel_id=str(channel.get("id") or container.get("channel_id") or ""),
        message_ts=str(container.get("message_ts") or ""),
        trigger_id=str(payload.get("trigger_id") or "")[:128],
        team_id=str((payload.get("team") if isinstance(payload.get("team"), dict) else {}).get("id")
                    or (user.get("team_id") or ""))[:32],
        api_app_id=str(payload.get("api_app_id") or "")[:32],
        extension=int(block.group(2)) if block and block.group(1) == value else 0,
        # a text input's value is what was typed: its block says which request it is about
        block_id=str(action.get("block_id") or "")[:64] if action.get("type") == "plain_text_input" else "",
        container="view" if container.get("type") == "view" else "message",
    )


_MAX_VALUE = 3000  # a plain_text_input holds at most 3000 characters


def _state_value(action: dict) -> str:
    """What one input element holds, as a string ("" when empty)."""
    if not isinstance(action, dict):
        return ""
    option = action.get("selected_option")
    if isinstance(option, dict):
        return str(option.get("value") or "")[:_MAX_VALUE]
    options = action.get("selected_options")
    if isinstance(options, list):
        return ",".join(str(o.get("value") or "") for o in options if isinstance(o, dict))[:_MAX_VALUE]
    for key in ("value", "selected_date", "selected_time", "selected_user", "selected_channel",
                "selected_conversation"):
        if isinstance(action.get(key), str):
            return action[key][:_MAX_VALUE]
    return ""


def _view_submission(payload: dict) -> ViewSubmission:
    user = payload.get("user")
    view = payload.get("view")
    if not isinstance(user, dict) or not _USER_ID.fullmatch(str(user.get("id", ""))) \
            or not isinstance(view, dict) or not view.get("id"):
        raise BadPayload("view_submission without a user and a view")
    state = view.get("state") if isinstance(view.get("state"), dict) else {}
    blocks = state.get("values") if isinstance(state.get("values"), dict) else {}
    values: dict[str, str] = {}
    for block_id, actions in blocks.items():
        if isinstance(actions, dict) and actions:  # one input element per input block
            values[str(block_id)[:255]] = _state_value(next(iter(actions.values())))
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    return ViewSubmission(
        user_id=user["id"], callback_id=str(view.get("callback_id") or "")[:255],
        view_id=str(view["id"])[:64], values=values,
        private_metadata=str(view.get("private_metadata") or "")[:3000],
        view_hash=str(view.get("hash") or "")[:64],
        team_id=str(team.get("id") or user.get("team_id") or "")[:32],
        api_app_id=str(payload.get("api_app_id") or view.get("app_id") or "")[:32],
        trigger_id=str(payload.get("trigger_id") or "")[:128],
    )


def is_request_id(value: str) -> bool:
    return bool(_REQUEST_ID.fullmatch(value))


# --------------------------------------------------------------------------- Events API

@dataclass(frozen=True)
class UrlVerification:
    """Slack checking the Events request URL: answer ``{"challenge": ...}`` (when signed)."""

    challenge: str


@dataclass(frozen=True)
class HomeOpened:
    """``app_home_opened`` on the Home tab: publish this person's App Home."""

    user_id: str
    team_id: str = ""
    api_app_id: str = ""
    event_id: str = ""


def parse_event(body: bytes) -> UrlVerification | HomeOpened | None:
    """An Events API request (JSON). None for an event Drawbridge does not handle (another
    event type, or ``app_home_opened`` on the Messages tab); ``BadPayload`` when the body is
    not a JSON object or the event lacks what it needs."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadPayload("event body is not JSON") from exc
    if not isinstance(payload, dict):
        raise BadPayload("event body is not an object")
    kind = payload.get("type")
    if kind == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str) or not challenge or len(challenge) > 200:
            raise BadPayload("url_verification without a challenge")
        return UrlVerification(challenge)
    if kind != "event_callback":
        return None
    event = payload.get("event")
    if not isinstance(event, dict):
        raise BadPayload("event_callback without an event")
    if event.get("type") != "app_home_opened" or event.get("tab", "home") != "home":
        return None
    user = str(event.get("user") or "")
    if not _USER_ID.fullmatch(user):
        raise BadPayload("app_home_opened without a valid user")
    return HomeOpened(user_id=user, team_id=str(payload.get("team_id") or "")[:32],
                      api_app_id=str(payload.get("api_app_id") or "")[:32],
                      event_id=str(payload.get("event_id") or "")[:64])
