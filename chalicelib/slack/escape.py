"""Escaping untrusted text for Slack ``mrkdwn`` (pure, stdlib only).

Slack's message syntax is angle-bracket based: ``<!channel>``, ``<!here>``,
``<@U123>``, ``<#C123>``, ``<!subteam^S123>``, ``<https://evil|click me>``. Slack
documents exactly three characters to escape in text it should show literally:
``&`` -> ``&amp;``, ``<`` -> ``&lt;``, ``>`` -> ``&gt;``. With them escaped, no
mention, broadcast or disguised link can be formed from data.

Every string that comes from outside (CloudTrail fields, Slack user input, even
catalog values) goes through :func:`escape_mrkdwn` exactly once, right where it is
put into a message. Slack user input is raw by then: Slack sends typed text already
escaped, and ``parse.decode_entities`` decodes it once where the payload is parsed, so
the table holds what the person typed (``R&D``) and the card escapes it once
(``R&amp;D``, which Slack shows as ``R&D``). Bare ``@channel`` / ``@here`` words are only turned into
broadcasts when a message is posted with ``link_names=true``; this app never sets it.
"""

from __future__ import annotations

__all__ = ["escape_mrkdwn"]

_TABLE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape_mrkdwn(text: str) -> str:
    """Return ``text`` with ``&``, ``<`` and ``>`` escaped for Slack mrkdwn.

    Not idempotent by design (``&amp;`` becomes ``&amp;amp;``): escape raw values once.
    """
    return str(text).translate(_TABLE)
