"""Slack may deliver one command or click twice (a retry repeats its ``trigger_id``):
act on the first delivery only, and answer a repeat with what the first one answered."""

from __future__ import annotations

from typing import Callable, TypeVar

from .deps import Deps

T = TypeVar("T")


class Repeated(Exception):
    """This delivery was already handled; ``reply`` is what the first one answered (if kept)."""

    def __init__(self, reply: str | None) -> None:
        super().__init__("repeated delivery")
        self.reply = reply


def once(deps: Deps, key: str | None, act: Callable[[], T], remember: Callable[[T], str | None] = lambda _: None,
         on_remember_error: Callable[[Exception], None] = lambda _: None) -> T:
    """Run ``act`` for the first delivery of ``key`` (no key: always). A failure releases the
    claim so a redelivery can try again; the answer to remember is stored best effort."""
    if not key:
        return act()
    first, earlier = deps.store.first_delivery(key, deps.now())
    if not first:
        raise Repeated(earlier)
    try:
        result = act()
    except Exception:
        deps.store.forget_delivery(key)  # nothing was decided: let a redelivery try again
        raise
    text = remember(result)
    if text is not None:
        try:
            deps.store.remember_reply(key, text)
        except Exception as exc:  # noqa: BLE001 - the decision stands; a repeat gets a generic answer
            on_remember_error(exc)
    return result
