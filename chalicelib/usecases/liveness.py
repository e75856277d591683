"""Use case: the alert path proves it is alive (issue 18, item 5).

A schedule in every member account and Region (and the bastion's other Regions) puts a
``drawbridge.heartbeat`` event on its own default bus every 5 minutes; the forwarding
rule carries it to the bastion like the CloudTrail events it watches
(docs/decisions/0009-alert-path-heartbeat.md).

* :func:`heartbeat` (``on_role_assumed``, the same entry point): the path's ``last_seen``
  moves to the arrival time. The first heartbeat of a path registers it. If the path was
  silent, this heartbeat (the one whose conditional write sets ``restored_at``) posts its
  return, once.
* :func:`check` (the minute sweep): a known path whose last heartbeat is older than two
  intervals (:data:`~chalicelib.alerts.heartbeat.SILENT_AFTER`) is marked silent (one
  conditional write wins) and "silent since" is posted once; a return the heartbeat could
  not finish posting is finished here.

Every post goes through :func:`~chalicelib.usecases.delivery.deliver_once` keyed by the
path and the start of its silence, so two sweeps, a redelivered heartbeat or a retry
after a lost Slack answer never show one twice. A path's "silent" alert is always shown
before its "back". Paths of accounts no longer in the catalog are left alone.
"""

from __future__ import annotations

from ..alerts.heartbeat import Heartbeat, silent
from ..domain.model import iso_z, parse_iso
from ..slack.alert_views import liveness as views
from .delivery import deliver_once
from .deps import Deps


def _known(deps: Deps, account: str) -> tuple[bool, str | None]:
    catalog = deps.catalog
    if account == catalog.bastion_account_id:
        return True, "bastion"
    found = catalog.account_by_id(account)
    return found is not None, found.key if found else None


def _scope(path: dict) -> str:
    return f"PATH#{path['account']}#{path['region']}#{path['silent_since']}"


def _show_silent(deps: Deps, path: dict, key: str | None) -> None:
    text, blocks, meta = views.silent_message(path["account"], key, path["region"],
                                              parse_iso(path["silent_since"]), deps.now())
    deliver_once(deps, _scope(path), "silent", channel=deps.catalog.security_channel, text=text, blocks=blocks,
                 event_type=meta["event_type"], payload=meta["event_payload"],
                 match={k: meta["event_payload"][k] for k in ("account", "region", "silent_since")})
    deps.store.path_update(path["account"], path["region"], set_={"silent_posted": "1"},
                           expect={"silent_since": path["silent_since"]})


def _show_restored(deps: Deps, path: dict, key: str | None) -> None:
    """The path's silence is over: its "silent" alert first (if a sweep has not shown it
    yet), then "back", then the silence is forgotten."""
    if not path.get("silent_posted"):
        _show_silent(deps, path, key)
    text, blocks, meta = views.restored_message(path["account"], key, path["region"],
                                                parse_iso(path["silent_since"]), parse_iso(path["restored_at"]))
    deliver_once(deps, _scope(path), "restored", channel=deps.catalog.security_channel, text=text, blocks=blocks,
                 event_type=meta["event_type"], payload=meta["event_payload"],
                 match={k: meta["event_payload"][k] for k in ("account", "region", "silent_since")})
    deps.store.path_update(path["account"], path["region"], remove=("silent_since", "silent_posted", "restored_at"),
                           expect={"silent_since": path["silent_since"], "restored_at": path["restored_at"]})


def heartbeat(deps: Deps, hb: Heartbeat, log=None) -> dict:
    """A heartbeat arrived. Returns the fields of an :class:`~chalicelib.usecases.alert.AlertOutcome`."""
    now = iso_z(deps.now())
    path = deps.store.path_beat(hb.account_id, hb.region, deps.now())
    if path["silent_since"] is None or path["restored_at"] is not None:
        return {"kind": "heartbeat"}
    if not deps.store.path_update(hb.account_id, hb.region, set_={"restored_at": now},
                                  expect={"silent_since": path["silent_since"], "restored_at": None}):
        return {"kind": "heartbeat"}  # another heartbeat is telling the return
    path["restored_at"] = now
    if log is not None:
        log.info("alert path back", extra={"account": hb.account_id, "region": hb.region,
                                           "silent_since": path["silent_since"]})
    _show_restored(deps, path, _known(deps, hb.account_id)[1])  # raises: Lambda retries, or the sweep finishes it
    return {"kind": "heartbeat", "posted": True}


def check(deps: Deps) -> tuple[int, int]:
    """The sweep's look at every path: (paths that went silent now, returns finished).
    A path that fails (Slack down) does not stop the others; the first error is raised
    after all were looked at, and the next sweep tries that path again."""
    went_silent = finished = 0
    failed: list[Exception] = []
    now = deps.now()
    for path in deps.store.paths():
        known, key = _known(deps, path["account"])
        if not known or path["last_seen"] is None:
            continue
        try:
            if path["restored_at"] is not None:  # the heartbeat that came back did not finish telling it
                _show_restored(deps, path, key)
                finished += 1
            elif path["silent_since"] is not None:
                if not path["silent_posted"]:
                    _show_silent(deps, path, key)
            elif silent(parse_iso(path["last_seen"]), now):
                if deps.store.path_update(path["account"], path["region"], set_={"silent_since": path["last_seen"]},
                                          expect={"last_seen": path["last_seen"], "silent_since": None}):
                    path["silent_since"] = path["last_seen"]
                    went_silent += 1
                    _show_silent(deps, path, key)
        except Exception as exc:  # noqa: BLE001 - the others still get their look
            failed.append(exc)
    if failed:
        raise failed[0]
    return went_silent, finished
