"""Use case: the alert path proves it is alive (issue 18, item 5).

A schedule in every member account and Region (and the bastion's other Regions) puts a
``drawbridge.heartbeat`` event on its own default bus every 5 minutes; the forwarding
rule carries it to the bastion like the CloudTrail events it watches, and there its own
rule hands it to ``on_heartbeat`` (docs/decisions/0009-alert-path-heartbeat.md).

* :func:`heartbeat` (``on_heartbeat``): the path's ``last_seen`` moves to the arrival
  time (the first heartbeat of a path registers it). If the path was silent, this
  heartbeat marks its return (``restored_at``, one conditional write). It talks to the
  table only, never to Slack: a burst of heartbeats costs no message.
* :func:`check` (the minute sweep) tells #security, in one message per sweep for each kind:

  - the known paths whose last heartbeat is older than two intervals and a grace
    (:data:`~chalicelib.alerts.heartbeat.SILENT_AFTER`) are marked silent, each with this
    sweep's *batch*, and one "silent since" message names them all. When every known path
    went silent together, the message says so: the likely fault is the bastion's side
    (its heartbeat rule, ``on_heartbeat``, its bus), not every account at once;
  - the paths whose heartbeat came back are given a batch of returns and told the same way.

Each message is delivered through :func:`~chalicelib.usecases.delivery.deliver_once`
keyed by its batch, and a path is tied to its batch by a conditional write *before* the
post, so a sweep that dies after posting (its answer lost) is finished by the next one with
the same batch: each path's silence and return are shown once, however often the sweep
runs, and a path's silence is always shown before its return. Paths of accounts no longer
in the catalog are left alone.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from datetime import datetime

from ..alerts.heartbeat import Heartbeat, is_heartbeat, parse_heartbeat, silent
from ..domain.model import iso_z, parse_iso
from ..slack.alert_views import liveness as views
from .delivery import deliver_once
from .deps import Deps

#: a path's fields while it is silent (path_items.py)
_SILENCE = ("silent_since", "silent_batch", "silent_posted", "restored_at", "restore_batch")


def handle(deps: Deps, event: dict, home_region: str | None, log=None) -> dict:
    """``on_heartbeat``: a believed heartbeat is recorded; anything else is refused (logged)."""
    catalog = deps.catalog
    if not is_heartbeat(event):
        return {"kind": "ignored", "reason": "not a heartbeat"}
    hb, problem = parse_heartbeat(event, bastion_account_id=catalog.bastion_account_id,
                                  catalog_account_ids=[acc.id for acc in catalog.accounts.values()],
                                  home_region=home_region)
    if hb is None:
        if log is not None:
            log.warning("heartbeat refused: its envelope is not believed", extra={"problem": problem})
        return {"kind": "ignored", "reason": problem}
    return heartbeat(deps, hb, log=log)


def heartbeat(deps: Deps, hb: Heartbeat, log=None) -> dict:
    """A heartbeat arrived: (``kind``, and ``back`` when it ended a silence)."""
    now = deps.now()
    path = deps.store.path_beat(hb.account_id, hb.region, now)
    if path["silent_since"] is None or path["restored_at"] is not None:
        return {"kind": "heartbeat"}
    if not deps.store.path_update(hb.account_id, hb.region, set_={"restored_at": iso_z(now)},
                                  expect={"silent_since": path["silent_since"], "restored_at": None}):
        return {"kind": "heartbeat"}  # another heartbeat marked the return
    if log is not None:
        log.info("alert path back", extra={"account": hb.account_id, "region": hb.region,
                                           "silent_since": path["silent_since"]})
    return {"kind": "heartbeat", "back": True}


def _known(deps: Deps, account: str) -> tuple[bool, str | None]:
    catalog = deps.catalog
    if account == catalog.bastion_account_id:
        return True, "bastion"
    found = catalog.account_by_id(account)
    return found is not None, found.key if found else None


def _batch(now: datetime) -> str:
    return f"{iso_z(now)}-{secrets.token_hex(3)}"


def _view(path: dict, key: str | None) -> views.Path:
    return views.Path(path["account"], key, path["region"], parse_iso(path["silent_since"]),
                      parse_iso(path["restored_at"]) if path.get("restored_at") else None)


def check(deps: Deps) -> tuple[int, int]:
    """The sweep's look at every path: (paths newly found silent, paths whose return was
    told). A message Slack refuses does not stop the rest; the first error is raised after
    everything else was done, and the next sweep finishes it (same batch, same message)."""
    now = deps.now()
    failed: list[Exception] = []
    known: dict[tuple[str, str], tuple[dict, str | None]] = {}
    for path in deps.store.paths():
        is_known, key = _known(deps, path["account"])
        if is_known and path["last_seen"] is not None:
            known[(path["account"], path["region"])] = (path, key)

    # 1. newly silent paths join this sweep's silence batch (one conditional write each:
    #    a heartbeat that lands meanwhile moves last_seen and the write loses)
    batch = _batch(now)
    went_silent = 0
    for path, _ in known.values():
        if path["silent_since"] is None and silent(parse_iso(path["last_seen"]), now):
            if deps.store.path_update(path["account"], path["region"],
                                      set_={"silent_since": path["last_seen"], "silent_batch": batch},
                                      expect={"last_seen": path["last_seen"], "silent_since": None}):
                path.update(silent_since=path["last_seen"], silent_batch=batch)
                went_silent += 1

    # 2. every silence batch not yet shown (this sweep's, or one an earlier sweep did not finish)
    unshown: dict[str, list[tuple[dict, str | None]]] = defaultdict(list)
    for path, key in known.values():
        if path["silent_since"] is not None and path.get("silent_batch") and not path["silent_posted"]:
            unshown[path["silent_batch"]].append((path, key))
    # every known path silent at once: most likely the bastion's side, not every account
    every = len(known) > 1 and all(p["silent_since"] is not None and p["restored_at"] is None
                                   for p, _ in known.values())
    for name, members in sorted(unshown.items()):
        try:
            _tell(deps, name, "silent", views.silent_message(
                [_view(p, k) for p, k in members], now, every=every and name == batch))
            for path, _ in members:
                if deps.store.path_update(path["account"], path["region"], set_={"silent_posted": "1"},
                                          expect={"silent_batch": name}):
                    path["silent_posted"] = "1"
        except Exception as exc:  # noqa: BLE001 - the returns still get their turn
            failed.append(exc)

    # 3. returns: only of paths whose silence was shown (silence is told before its return)
    back = _batch(now)
    for path, _ in known.values():
        if path["restored_at"] is not None and path["silent_posted"] and not path.get("restore_batch"):
            if deps.store.path_update(path["account"], path["region"], set_={"restore_batch": back},
                                      expect={"restored_at": path["restored_at"], "restore_batch": None}):
                path["restore_batch"] = back
    returns: dict[str, list[tuple[dict, str | None]]] = defaultdict(list)
    for path, key in known.values():
        if path.get("restore_batch"):
            returns[path["restore_batch"]].append((path, key))
    told = 0
    for name, members in sorted(returns.items()):
        try:
            _tell(deps, name, "restored", views.restored_message([_view(p, k) for p, k in members]))
            for path, _ in members:
                if deps.store.path_update(path["account"], path["region"], remove=_SILENCE,
                                          expect={"restore_batch": name}):
                    told += 1
        except Exception as exc:  # noqa: BLE001 - the next sweep tells it
            failed.append(exc)
    if failed:
        raise failed[0]
    return went_silent, told


def _tell(deps: Deps, batch: str, kind: str, message: tuple[str, list[dict], dict]) -> None:
    text, blocks, meta = message
    payload = {**meta["event_payload"], "batch": batch}
    deliver_once(deps, f"PATHS#{batch}", kind, channel=deps.catalog.security_channel, text=text, blocks=blocks,
                 event_type=meta["event_type"], payload=payload, match={"batch": batch})
