"""Block Kit for the security channel's alerts (pure: no I/O): ways into an account
(role assumptions, root sessions, federation tokens, console sign-ins) and IAM changes
to a Drawbridge person's credentials.

What each :class:`~chalicelib.alerts.AlertKind` looks like is decided in
``chalicelib.alerts.AlertKind``'s docstring; this module only renders it.

Safety rule: every string derived from the CloudTrail event (and, to be safe, from
the catalog and the grant) goes through :func:`escape_mrkdwn` exactly once, so a
crafted session name, SAML subject or user agent can never form ``<!channel>``,
``<@U...>`` or a disguised link. The only mention in any output is our own literal
:data:`LOUD_MENTION` on the ``UNCOVERED`` alert. Post these with ``link_names``
unset.

The package (this module re-exports the public API; import from here): ``text``
(escaping and formatting values), ``ways_in`` (the alert for a way in and the usage
reply), ``digest`` (many calls of a burst in one message), ``identity`` (IAM changes to a
person), ``tamper`` (calls that blind the alert path) and ``metadata`` (the Slack message
metadata of each).
"""

from __future__ import annotations

from chalicelib.slack.alert_views.digest import digest_line, digest_message, digest_where
from chalicelib.slack.alert_views.identity import identity_change_blocks
from chalicelib.slack.alert_views.metadata import (
    alert_metadata,
    grant_used_metadata,
    identity_changed_metadata,
    production_access_metadata,
    role_assumed_metadata,
)
from chalicelib.slack.alert_views.tamper import tamper_blocks, tamper_metadata
from chalicelib.slack.alert_views.text import LOUD_MENTION, format_event_time
from chalicelib.slack.alert_views.ways_in import access_label, alert_blocks, usage_reply_text

__all__ = [
    "LOUD_MENTION",
    "access_label",
    "alert_blocks",
    "alert_metadata",
    "digest_line",
    "digest_message",
    "digest_where",
    "format_event_time",
    "grant_used_metadata",
    "identity_change_blocks",
    "identity_changed_metadata",
    "production_access_metadata",
    "role_assumed_metadata",
    "tamper_blocks",
    "tamper_metadata",
    "usage_reply_text",
]
