"""CloudTrail event -> alert decision. PURE: stdlib only (plus the stdlib-only
constants of ``chalicelib.event_pattern``).

The handler (``on_role_assumed``) does the I/O: it checks the envelope
(:func:`envelope_problem`), calls :func:`parse_assumption` (or
:func:`parse_identity_change` for IAM changes), looks the account up in the catalog,
looks for a grant that :func:`covers` the event, asks :func:`decide_alert` what to do
and renders the result with ``chalicelib.slack.alert_views``. Everything that can be
decided without I/O is here.

What counts as "a way in" (:attr:`Assumption.access`): a role assumption
(``AssumeRole*``, the only kind a grant can cover), a root session on a member account
(``AssumeRoot``), a federation token (``GetFederationToken``) and a console sign-in of
the root user or an IAM user (``ConsoleLogin``).

Facts this relies on (tests/fixtures/README.md, with the fixture for each):

* A cross-account ``AssumeRole`` is logged twice with one ``sharedEventID``: the
  caller's copy (bastion account, ``userIdentity.type`` ``IAMUser``) and the role
  owner's copy (``userIdentity.type`` ``AWSAccount``). Both can reach the handler
  (the second one forwarded from the member account); dedupe on
  :attr:`Assumption.dedupe_key`.
* A denied cross-account call is logged in the caller's account only, sometimes with
  ``requestParameters: null``; the role ARN is then recovered from ``errorMessage``.
* The time that matters is ``detail.eventTime`` (when STS issued the credentials),
  never the EventBridge ``time``/arrival time: delivery can lag by minutes, and a
  grant that expired in between must still count as covering the event.
* The envelope's ``account`` is set by EventBridge (a member account that puts an event
  on the bastion bus cannot choose it); ``detail`` is whatever the sender wrote. Only
  events whose ``account`` is ``detail.recipientAccountId`` and an account Drawbridge
  knows are believed (:func:`envelope_problem`).

The package, by concern (this module re-exports the public API; import from here):

* ``cloudtrail``: reading a CloudTrail record (typed field access, timestamps, MFA);
* ``assumption``: the :class:`Assumption` value and its caller fields;
* ``parse``: event -> :class:`Assumption` (:func:`parse_assumption`);
* ``envelope``: whether an event may be believed (:func:`envelope_problem`);
* ``identity``: IAM changes to a person (:func:`parse_identity_change`);
* ``tamper``: calls that blind the alert path (:func:`parse_tamper`);
* ``decide``: :class:`AlertKind`, :func:`decide_alert`, :func:`covers`,
  :func:`client_label` and the grouping of failed attempts.
"""

from __future__ import annotations

# Public names outside __all__ (Access, Copy, the source constants, IAM_CHANGES) stay
# importable from here too, as they were before the split.
from chalicelib.alerts.assumption import Access, Assumption, Copy
from chalicelib.alerts.cloudtrail import (
    AWS_INTERNAL,
    CLOUDTRAIL_DETAIL_TYPE,
    IAM_SOURCE,
    SIGNIN_SOURCE,
    STS_SOURCE,
    parse_utc,
)
from chalicelib.alerts.decide import (
    FAILURE_WINDOW,
    AlertKind,
    client_label,
    covers,
    decide_alert,
    failure_group_key,
    failure_window_start,
)
from chalicelib.alerts.envelope import envelope_problem
from chalicelib.alerts.identity import IAM_CHANGES, IdentityChange, identity_change_loud, parse_identity_change
from chalicelib.alerts.parse import ASSUME_ROLE_EVENT_NAMES, parse_assumption
from chalicelib.alerts.tamper import PathTamper, parse_tamper

__all__ = [
    "ASSUME_ROLE_EVENT_NAMES",
    "FAILURE_WINDOW",
    "AlertKind",
    "Assumption",
    "IdentityChange",
    "PathTamper",
    "client_label",
    "covers",
    "decide_alert",
    "envelope_problem",
    "failure_group_key",
    "failure_window_start",
    "identity_change_loud",
    "parse_assumption",
    "parse_identity_change",
    "parse_tamper",
    "parse_utc",
]
