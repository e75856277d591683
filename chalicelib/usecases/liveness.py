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
    sweep's *batch*, and one "silent since" message names them all;
  - while no path at all has beaten for an interval and the grace (:data:`HOLD_AFTER`),
    the bastion's side is suspected (its heartbeat rule, ``on_heartbeat``, its bus): paths
    going silent are held, at most one interval, until a heartbeat comes or every path is
    silent, which is then told in one message that says to look there first. Schedules
    fire at their own minutes, so without this an outage there would read as one alert
    per account and Region;
  - the paths whose heartbeat came back are given a batch of returns and told the same way;
  - once any path beats, a catalog account none of whose paths has ever beaten is waited
    for (:data:`UNHEARD_AFTER`), then told once ("no heartbeat has ever arrived from …"): a
    path that was never known cannot fall silent, yet it may never have worked.

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
from datetime import datetime, timedelta

from ..alerts.heartbeat import GRACE, HEARTBEAT_INTERVAL, Heartbeat, is_heartbeat, parse_heartbeat, silent
from ..domain.model import iso_z, parse_iso
from ..slack.alert_views import liveness as views
from .delivery import deliver_once
from .deps import Deps

#: a path's fields while it is silent (path_items.py)
_SILENCE = ("silent_since", "silent_batch", "silent_posted", "restored_at", "restore_batch")
#: the suffix of a silence batch told as "every path is silent" (the bastion's side)
EVERY = "-every"
#: no path at all has beaten for this long: hold single silences, the bastion may be the fault
HOLD_AFTER = HEARTBEAT_INTERVAL + GRACE
#: the "region" of a catalog account's marker while none of its paths has sent a heartbeat
UNHEARD_REGION = "*"
#: how long a catalog account may go without its first heartbeat before #security is told
#: (a StackSet rollout over many accounts and Regions takes minutes, its first heartbeat 5 more)
UNHEARD_AFTER = timedelta(minutes=30)


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


def _batch(now: datetime, every: bool = False) -> str:
    return f"{iso_z(now)}-{secrets.token_hex(3)}{EVERY if every else ''}"


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
    unheard: dict[str, dict] = {}  # catalog account -> its "no heartbeat yet" marker
    for path in deps.store.paths():
        if path["region"] == UNHEARD_REGION:
            unheard[path["account"]] = path
            continue
        is_known, key = _known(deps, path["account"])
        if is_known and path["last_seen"] is not None:
            known[(path["account"], path["region"])] = (path, key)
    _unheard_accounts(deps, known, unheard, now, failed)

    # 1. newly silent paths join this sweep's silence batch (one conditional write each:
    #    a heartbeat that lands meanwhile moves last_seen and the write loses). When no path
    #    at all has beaten for an interval and the grace, the bastion's side is suspected:
    #    the paths going silent meanwhile are held until a heartbeat comes (they are then
    #    told as usual) or every path is silent (told together, as the bastion's fault): up
    #    to one interval later than alone.
    newest = max((parse_iso(p["last_seen"]) for p, _ in known.values()), default=None)
    several = len(known) > 1
    every = several and newest is not None and silent(newest, now)
    held = several and not every and newest is not None and now - newest > HOLD_AFTER
    batch = _batch(now, every)
    went_silent = 0
    for path, _ in ([] if held else known.values()):
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
    for name, members in sorted(unshown.items()):
        try:
            _tell(deps, name, "silent", views.silent_message(
                [_view(p, k) for p, k in members], now, every=len(known) if name.endswith(EVERY) else None))
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


def _unheard_accounts(deps: Deps, known: dict, unheard: dict[str, dict], now: datetime,
                      failed: list[Exception]) -> None:
    """A catalog account none of whose paths has ever sent a heartbeat is not "silent" (it
    was never known), yet its alerts may never have arrived: a stack instance that failed,
    a bus policy that refuses its forwarding role. The sweep marks it expected the first
    time it misses it, and :data:`UNHEARD_AFTER` later tells #security once ("no heartbeat
    has ever arrived from account …"), the accounts marked by one sweep in one message. Its
    first heartbeat ends it (told, if the alert was shown)."""
    heard = {account for account, _ in known}
    due: dict[str, list[tuple[dict, str]]] = defaultdict(list)
    # Only once the heartbeat is deployed somewhere (a path has beaten): before that, no
    # account is expected to beat (an installation whose StackSets predate the heartbeat,
    # a local stack). An installation none of whose paths has ever beaten is not told:
    # docs/DEPLOY.md's check after the rollout lists the paths.
    for account in (deps.catalog.accounts.values() if known else ()):
        marker = unheard.get(account.id)
        try:
            if account.id in heard:
                if marker is not None:
                    _heard(deps, account, marker, known)
            elif marker is None:
                deps.store.path_create(account.id, UNHEARD_REGION, {"expected_since": iso_z(now)})
            elif not marker["unheard_posted"] and now - parse_iso(marker["expected_since"]) > UNHEARD_AFTER:
                due[marker["expected_since"]].append((marker, account.key))
        except Exception as exc:  # noqa: BLE001 - the others still get their look
            failed.append(exc)
    for account_id, marker in unheard.items():  # accounts gone from the catalog: forget them
        if deps.catalog.account_by_id(account_id) is None:
            try:
                deps.store.path_delete(account_id, UNHEARD_REGION, expect={"expected_since": marker["expected_since"]})
            except Exception as exc:  # noqa: BLE001
                failed.append(exc)
    for since, members in sorted(due.items()):
        try:
            text, blocks, meta = views.unheard_message([(m["account"], key) for m, key in members], parse_iso(since))
            deliver_once(deps, f"UNHEARD#{since}", "unheard", channel=deps.catalog.security_channel, text=text,
                         blocks=blocks, event_type=meta["event_type"], payload=meta["event_payload"],
                         match={"expected_since": meta["event_payload"]["expected_since"]})
            for marker, _ in members:
                deps.store.path_update(marker["account"], UNHEARD_REGION, set_={"unheard_posted": "1"},
                                       expect={"expected_since": since})
        except Exception as exc:  # noqa: BLE001 - the next sweep tells it
            failed.append(exc)


def _heard(deps: Deps, account, marker: dict, known: dict) -> None:
    """An account waited for has a path now: if its "never heard" alert was shown (or begun:
    its answer may have been lost), tell its first heartbeat, then forget the marker. The
    time told is fixed on the marker first, so a retry tells (and finds) the same message."""
    since = marker["expected_since"]
    shown = marker["unheard_posted"] or deps.store.delivery(f"UNHEARD#{since}", "unheard") is not None
    if shown:
        heard_at = marker.get("heard_at")
        if heard_at is None:
            heard_at = min(p["last_seen"] for (a, _), (p, _) in known.items() if a == account.id)
            if not deps.store.path_update(account.id, UNHEARD_REGION, set_={"heard_at": heard_at},
                                          expect={"expected_since": since, "heard_at": None}):
                return  # another sweep fixed it: the next look tells it
        text, blocks, meta = views.heard_message(account.id, account.key, parse_iso(heard_at), parse_iso(since))
        deliver_once(deps, f"UNHEARD#{since}#{account.id}", "heard", channel=deps.catalog.security_channel,
                     text=text, blocks=blocks, event_type=meta["event_type"], payload=meta["event_payload"],
                     match={"account": account.id, "expected_since": meta["event_payload"]["expected_since"]})
    deps.store.path_delete(account.id, UNHEARD_REGION, expect={"expected_since": since})


def _tell(deps: Deps, batch: str, kind: str, message: tuple[str, list[dict], dict]) -> None:
    text, blocks, meta = message
    payload = {**meta["event_payload"], "batch": batch}
    deliver_once(deps, f"PATHS#{batch}", kind, channel=deps.catalog.security_channel, text=text, blocks=blocks,
                 event_type=meta["event_type"], payload=payload, match={"batch": batch})
