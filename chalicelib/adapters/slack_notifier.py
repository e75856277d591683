"""Slack Web API adapter: posts, in-place updates, ephemerals and DMs.

The WebClient is handed in (built in chalicelib/wiring.py with slack-sdk's
retry handlers for 429 / 5xx / connection errors). Every post and update
carries Slack message metadata as the contract requires.
"""

from __future__ import annotations


def metadata(event_type: str, payload: dict) -> dict:
    return {"event_type": event_type, "event_payload": payload}


class SlackNotifier:
    def __init__(self, client):
        self._web = client

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

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        self._web.chat_postEphemeral(channel=channel, user=user, text=text)

    def dm(self, user: str, text: str, blocks: list[dict] | None, event_type: str,
           payload: dict) -> None:
        # A bot with chat:write may post to a user id: Slack delivers it in the app's DM.
        self.post(user, text, blocks, event_type, payload)
