"""Slack Web API adapter: posts, in-place updates, ephemerals, DMs, the App Home and modals.

The WebClient is handed in (built in chalicelib/wiring.py with slack-sdk's
retry handlers for 429 / 5xx / connection errors). Every post and update
carries Slack message metadata as the contract requires.

``try_post`` / ``try_update`` go through a second client that does not wait out a 429:
Slack's refusal comes back at once as :class:`~chalicelib.domain.errors.RateLimited`
with its ``Retry-After`` (the alert path groups events instead of waiting).
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable


def metadata(event_type: str, payload: dict) -> dict:
    return {"event_type": event_type, "event_payload": payload}


def _rate_limited(exc):
    """The :class:`RateLimited` a SlackApiError stands for, or None (not a 429)."""
    from ..domain.errors import RateLimited

    resp = exc.response
    status = getattr(resp, "status_code", None)
    if status != 429 and resp.get("error") != "ratelimited":
        return None
    headers = {str(k).lower(): v for k, v in (getattr(resp, "headers", None) or {}).items()}
    value = headers.get("retry-after")
    value = value[0] if isinstance(value, (list, tuple)) and value else value
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 1.0
    return RateLimited(seconds)


class SlackNotifier:
    def __init__(self, client, no_wait_client=None, ack_client=None):
        self._web = client
        self._now = no_wait_client or client
        #: for calls on Slack's 3-second ack path (views.open): one short try, no retries
        self._ack = ack_client or self._now

    def try_post(self, channel: str, text: str, blocks: list[dict] | None, event_type: str,
                 payload: dict) -> tuple[str, str]:
        """Post, or raise RateLimited at once if Slack answers 429 (nothing was posted)."""
        from slack_sdk.errors import SlackApiError

        try:
            resp = self._now.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                              metadata=metadata(event_type, payload),
                                              unfurl_links=False, unfurl_media=False)
        except SlackApiError as exc:
            limited = _rate_limited(exc)
            if limited is not None:
                raise limited from exc
            raise
        return resp["channel"], resp["ts"]

    def try_update(self, channel: str, ts: str, text: str, blocks: list[dict] | None,
                   event_type: str, payload: dict) -> None:
        """Update in place, or raise RateLimited at once on a 429 (nothing changed)."""
        from slack_sdk.errors import SlackApiError

        try:
            self._now.chat_update(channel=channel, ts=ts, text=text, blocks=blocks,
                                  metadata=metadata(event_type, payload))
        except SlackApiError as exc:
            limited = _rate_limited(exc)
            if limited is not None:
                raise limited from exc
            raise

    def post(self, channel: str, text: str, blocks: list[dict] | None, event_type: str,
             payload: dict, thread_ts: str | None = None) -> tuple[str, str]:
        resp = self._web.chat_postMessage(
            channel=channel, text=text, blocks=blocks, thread_ts=thread_ts,
            metadata=metadata(event_type, payload), unfurl_links=False, unfurl_media=False,
        )
        return resp["channel"], resp["ts"]

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None,
               event_type: str, payload: dict) -> None:
        self._web.chat_update(channel=channel, ts=ts, text=text, blocks=blocks,
                              metadata=metadata(event_type, payload))

    def delete(self, channel: str, ts: str) -> None:
        from slack_sdk.errors import SlackApiError

        try:
            self._web.chat_delete(channel=channel, ts=ts)
        except SlackApiError as exc:
            if exc.response.get("error") != "message_not_found":
                raise

    #: how far back a lost post is looked for (newest first; a retry comes within minutes)
    FIND_PAGES, FIND_PAGE_SIZE = 3, 200

    def find(self, channel: str, event_type: str | None, match: dict) -> tuple[str, str] | None:
        if channel[:1] in ("U", "W"):  # a DM: the conversation with that user
            channel = self._web.conversations_open(users=channel)["channel"]["id"]
        cursor = None
        for _ in range(self.FIND_PAGES):
            resp = self._web.conversations_history(channel=channel, limit=self.FIND_PAGE_SIZE,
                                                   include_all_metadata=True, cursor=cursor)
            for message in resp.get("messages", []):
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if (event_type is None or meta.get("event_type") == event_type) and meta \
                        and all(payload.get(k) == v for k, v in match.items()):
                    return channel, message["ts"]
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    #: Slack's refusals of chat.postEphemeral that a DM gets round (NotInChannel)
    NOT_THERE = frozenset({"channel_not_found", "not_in_channel", "user_not_in_channel", "is_archived"})

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        from slack_sdk.errors import SlackApiError

        from ..domain.errors import NotInChannel

        try:
            self._web.chat_postEphemeral(channel=channel, user=user, text=text)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in self.NOT_THERE:
                raise NotInChannel(error) from exc
            raise

    def dm(self, user: str, text: str, blocks: list[dict] | None, event_type: str,
           payload: dict) -> tuple[str, str]:
        # A bot with chat:write may post to a user id: Slack delivers it in the app's DM.
        return self.post(user, text, blocks, event_type, payload)

    def upload_files(self, channel: str, thread_ts: str, files) -> list[str]:
        """slack-sdk's ``files_upload_v2``: an upload URL per file, the uploads, then one
        files.completeUploadExternal that shares them in the thread (never repeated by
        slack-sdk when its answer is lost: ``wiring.slack_client``)."""
        resp = self._web.files_upload_v2(
            channel=channel, thread_ts=thread_ts,
            file_uploads=[{"content": content, "filename": name, "title": name} for name, content in files])
        return [f["id"] for f in resp.get("files") or []]

    def thread_file_names(self, channel: str, thread_ts: str) -> set[str]:
        """conversations.replies (scopes ``channels:history`` / ``groups:history`` /
        ``im:history``, which ``find`` needs too): the names of the files in the thread."""
        names: set[str] = set()
        cursor = None
        for _ in range(self.FIND_PAGES):
            resp = self._web.conversations_replies(channel=channel, ts=thread_ts, limit=200,
                                                   **({"cursor": cursor} if cursor else {}))
            for message in resp.get("messages") or []:
                names.update(str(f.get("name")) for f in message.get("files") or () if f.get("name"))
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return names

    def publish_home(self, user_id: str, view: dict) -> None:
        # views.publish needs no OAuth scope beyond the bot token (Slack's method docs)
        self._web.views_publish(user_id=user_id, view=view)

    def open_view(self, trigger_id: str, view: dict) -> None:
        # views.open needs no OAuth scope beyond the bot token (the trigger id comes from the
        # slash command, which the `commands` scope already allows); no waiting out a 429:
        # the trigger id is good for 3 seconds
        from slack_sdk.errors import SlackApiError, SlackClientError

        from ..domain.errors import ViewNotOpened

        try:
            self._ack.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            raise ViewNotOpened(str(exc.response.get("error") or "error")) from exc
        except (SlackClientError, OSError) as exc:  # no answer (connection, timeout): nothing to retry in time
            raise ViewNotOpened("no_answer_from_slack") from exc


class SlackUserGroups:
    """Who is in a Slack user group (the :class:`~chalicelib.ports.UserGroups` port):
    ``usergroups.list`` finds the enabled group by its handle, ``usergroups.users.list``
    its members (scope ``usergroups:read``). Answers are kept ``ttl_seconds`` in-process
    (``clock``: the service's), so a burst of clicks costs one pair of calls and a member
    removed in Slack stops counting within that time. A failure (Slack's error, a timeout)
    is kept ``failure_seconds``: while Slack's user group API is down or slow, one command
    or click waits for it at most once, not once per role it looks at. An unknown handle is
    an answer (None), kept as long as members."""

    #: the most one ``channel_members`` spends on its pages, all together: it runs on the
    #: ack path (``/aws-access review``, ``activity``), which has 3 seconds in all
    CHANNEL_DEADLINE = 1.5

    def __init__(self, client, clock: Callable[[], datetime], ttl_seconds: float = 60,
                 failure_seconds: float = 15, monotonic: Callable[[], float] | None = None) -> None:
        import time

        self._web = client
        self._clock = clock
        self._ttl = ttl_seconds
        self._failure_ttl = failure_seconds
        self._monotonic = monotonic or time.monotonic
        self._failed: datetime | None = None  # when Slack last failed to answer
        self._channel_failed: dict[str, datetime] = {}  # channel -> when Slack last failed on it
        self._ids: tuple[datetime, dict[str, str]] | None = None  # (when, handle -> group id)
        self._members: dict[str, tuple[datetime, frozenset[str] | None]] = {}

    def _fresh(self, at: datetime, now: datetime) -> bool:
        return 0 <= (now - at).total_seconds() < self._ttl

    def channel_members(self, channel: str) -> frozenset[str] | None:
        """The user ids in ``channel`` (``conversations.members``, paged; scopes
        ``channels:read`` / ``groups:read``), kept like a group's members under the key
        ``#<channel>``; None when Slack does not answer (fail closed): an error, a timeout,
        or its pages taking more than :attr:`CHANNEL_DEADLINE` seconds together. A failure is
        kept ``failure_seconds`` (as for ``members``): while Slack is slow, one command waits
        for it, not every command."""
        now = self._clock()
        kept = self._members.get(f"#{channel}")
        if kept is not None and self._fresh(kept[0], now):
            return kept[1]
        failed = self._channel_failed.get(channel)
        if failed is not None and 0 <= (now - failed).total_seconds() < self._failure_ttl:
            return None  # Slack failed moments ago: nobody, without asking again
        found: set[str] = set()
        cursor = None
        began = self._monotonic()
        try:
            for _ in range(20):  # 200 a page: 4,000 members at most
                if cursor and self._monotonic() - began >= self.CHANNEL_DEADLINE:
                    raise TimeoutError(f"conversations.members took over {self.CHANNEL_DEADLINE} s")
                page = self._web.conversations_members(channel=channel, limit=200, **({"cursor": cursor} if cursor else {}))
                found.update(page.get("members") or ())
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
            # (one slow page is bounded by the client's own timeout; a complete answer that
            # came late is still the answer)
        except Exception as exc:  # Slack's error, a timeout...: nobody, this time
            from ..log import logger

            logger().warning("channel members not resolved", extra={"channel": channel, "error": repr(exc)})
            self._channel_failed[channel] = now
            return None
        self._channel_failed.pop(channel, None)
        self._members[f"#{channel}"] = (now, frozenset(found))
        return frozenset(found)

    def members(self, handle: str) -> frozenset[str] | None:
        now = self._clock()
        kept = self._members.get(handle)
        if kept is not None and self._fresh(kept[0], now):
            return kept[1]
        if self._failed is not None and 0 <= (now - self._failed).total_seconds() < self._failure_ttl:
            return None  # Slack failed moments ago: nobody from the group, without asking again
        try:
            if self._ids is None or not self._fresh(self._ids[0], now):
                groups = self._web.usergroups_list(include_disabled=False).get("usergroups") or []
                self._ids = (now, {g["handle"]: g["id"] for g in groups if not g.get("date_delete")})
            ident = self._ids[1].get(handle)
            found = None if ident is None else \
                frozenset(self._web.usergroups_users_list(usergroup=ident).get("users") or ())
        except Exception as exc:  # Slack's error, a timeout...: nobody from the group, this time
            from ..log import logger

            logger().warning("user group not resolved", extra={"handle": handle, "error": repr(exc)})
            self._failed = now
            return None
        self._failed = None
        self._members[handle] = (now, found)
        return found
