"""``make dev``: the local stack left running, and a small CLI to drive it by hand.

    python -m local.dev up                                   # = make dev; Ctrl-C stops everything
    python -m local.dev send --as alice "/aws-access prod admin 2h fix"
    python -m local.dev send --as-slack-id U0STRANGER "/aws-access help"  # someone not in the catalog
    python -m local.dev click --as bob approve <request-id>  # approve | deny | any action_id
    python -m local.dev home --as bob                        # open the App Home; prints the published view
    python -m local.dev form --as alice                      # a bare /aws-access: prints the form it opens
    python -m local.dev submit --as alice role=prod/admin duration=2h reason="fixing incident 4521"
    python -m local.dev assume --as alice [role-arn]         # the person's own sts:AssumeRole
    python -m local.dev cloudtrail <fixture-name-or-path> [--now] [--as alice]
    python -m local.dev sweep [--at 2026-11-21T12:00:00Z]
    python -m local.dev messages [--channel C0APPROVE1] [--all] [--json]

``up`` writes the running stack's URLs, keys and signing secret to ``.drawbridge-dev.json``
(in the repository root, git-ignored; ``--state`` to choose another file) and removes it
when it stops; the other commands read it. ``cloudtrail`` and ``sweep`` run the handler in
the CLI's own process with the app's environment, as Lambda would (``chalice local`` serves
HTTP only); ``sweep --at`` moves only that process's clock (time-machine).

Who acts: ``--as`` takes a catalog person (``alice``); ``send`` and ``click`` also take a
raw Slack user id there, or explicitly ``--as-slack-id U0STRANGER``, to act as a Slack
user who is not in the catalog. A name that is neither is refused with one line that
lists the known people (exit code 2). ``send`` sends the text as Slack does (``&``, ``<``
and ``>`` escaped) and prints the private reply as Slack would show it; ``click`` prints
the private (ephemeral) answer the clicker got, or, when there is none (the click
counted), the card as it now stands. ``form`` prints the request form the app opened (its
fields and every option); ``submit`` fills in the last form opened (``--view`` names
another) with ``block=value`` pairs and prints the errors shown on its fields, or, when it
closed, the private answer the person got.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from local.handle import SLACK_USER_ID
from local.stack import (
    CATALOG,
    ROOT,
    LocalStack,
    StackError,
    StackHandle,
    iso_z,
    load_cloudtrail,
    parse_time,
    port_open,
    refresh_cloudtrail,
)

STATE = ROOT / ".drawbridge-dev.json"
ACTIONS = {"approve": "approve_request", "deny": "deny_request"}
DEFAULT_ROLE = "arn:aws:iam::222222222222:role/admin"


def _say(text: str = "") -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- up


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=2)
    os.replace(tmp, path)


def up(state_path: Path) -> int:
    if state_path.is_file():
        try:
            old = json.loads(state_path.read_text())
        except ValueError:
            old = {}
        if old.get("driver_pid") and _alive(old["driver_pid"]):
            _say(f"a dev stack is already running (pid {old['driver_pid']}, {old.get('app_url')}); "
                 f"stop it with Ctrl-C in its terminal or `kill {old['driver_pid']}`")
            return 1
        state_path.unlink()  # left over from a stack that was killed
    # Ctrl-C must work even when the shell started us with SIGINT ignored (e.g. `make dev &`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _say("Starting the local Drawbridge stack (everything on 127.0.0.1) ...")
    try:
        with LocalStack(echo=lambda text: _say("  " + text)) as stack:
            for note in stack.notes:
                _say(f"  note: {note}")
            _write_state(state_path, stack.to_state())
            try:
                _banner(stack, state_path)
                while True:
                    dead = [c for c in stack.children if not c.alive()]
                    if dead:
                        c = dead[0]
                        _say(f"\n{c.name} exited (code {c.popen.returncode}); stopping. Its log ({c.log}):")
                        _say(c.log_tail())
                        stack.keep_logs = True
                        return 1
                    time.sleep(0.5)
            finally:
                _say("\nstopping the local stack ...")
                if state_path.is_file():
                    state_path.unlink()
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        _say(f"the local stack did not start: {exc}")
        return 2
    _say("stopped; every local process is gone")
    return 0


def _banner(stack: LocalStack, state_path: Path) -> None:
    me = "python -m local.dev"
    people = ", ".join(f"{k} ({p.slack_user})" for k, p in stack.catalog.people.items())
    lines = [
        "",
        "Drawbridge is running locally.",
        f"  app (Slack routes)  {stack.app_url}/slack/commands   {stack.app_url}/slack/interactions",
        f"  Slack stand-in      {stack.slack_api_url}   (recorded messages: {stack.slack_base}/_standin/messages)",
        f"  moto (AWS)          {stack.moto_url}   (IAM enforcement on)",
        f"  state file          {state_path}",
        f"  logs                {stack.log_dir}",
        "",
        "The app's environment (e.g. to run other tools against the same stack):",
        *(f"  export {k}={shlex.quote(v)}" for k, v in stack.env.items()),
        "",
        f"People: {people}. In another terminal, from {ROOT} with the virtualenv active:",
        f"  {me} send --as alice \"/aws-access prod admin 2h fixing incident 4521\"",
        f"  {me} click --as bob approve <request-id>        (then carol; prints what bob is told privately)",
        f"  {me} form --as alice                            (a bare /aws-access: the request form it opens)",
        f"  {me} submit --as alice role=dev/admin duration=1h reason=\"deploying\"",
        f"  {me} send --as-slack-id U0STRANGER \"/aws-access help\"   (a Slack user not in the catalog)",
        f"  {me} assume --as alice {DEFAULT_ROLE}",
        f"  {me} cloudtrail assume_role_bastion_copy --now --as alice",
        f"  {me} sweep --at <expires_at + 1 min, e.g. 2026-11-21T12:00:00Z>",
        f"  {me} messages",
        "",
        "Slack messages appear below as the app posts them. Ctrl-C stops everything.",
    ]
    _say("\n".join(lines))


# --------------------------------------------------------------------------- client commands


def _handle(state_path: Path) -> StackHandle:
    if not state_path.is_file():
        raise SystemExit(f"no running dev stack ({state_path} is missing): start one with `make dev`")
    state = json.loads(state_path.read_text())
    pid = state.get("driver_pid")
    if pid and not _alive(pid):
        raise SystemExit(f"the dev stack that wrote {state_path} (pid {pid}) is gone: start one with `make dev`")
    app_port = next((c["port"] for c in state.get("children", []) if c["name"] == "app"), None)
    if app_port and not port_open(app_port):
        raise SystemExit(f"the dev stack's app ({state['app_url']}) does not answer")
    return StackHandle.from_state(state)


# --------------------------------------------------------------------------- who acts


class CliError(Exception):
    """A mistake on the command line: one line on stderr, exit code 2, no traceback."""


def _catalog_path(state_path: Path) -> Path:
    """The catalog of the running stack (from its state file), else the project's."""
    try:
        return Path(json.loads(state_path.read_text())["catalog"])
    except (OSError, ValueError, KeyError, TypeError):
        return CATALOG


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def resolve_actor(args, catalog, catalog_path: Path = CATALOG) -> str | None:
    """Who ``args`` says acts: a catalog person key, or (``send``/``click`` only) a raw Slack
    user id from ``--as-slack-id`` or ``--as``. None when the command names nobody."""
    slack_id = getattr(args, "as_slack_id", None)
    if slack_id is not None:
        if not SLACK_USER_ID.fullmatch(slack_id):
            raise CliError(f"--as-slack-id {slack_id!r} is not a Slack user id "
                           "(U or W, then capital letters and digits, e.g. U0STRANGER)")
        return slack_id
    person = getattr(args, "as_", None)
    if person is None or person in catalog.people:
        return person
    stranger_ok = args.cmd in ("send", "click", "form", "submit")
    if stranger_ok and SLACK_USER_ID.fullmatch(person):
        return person
    known = ", ".join(catalog.people)
    hint = ("; to act as someone not in the catalog: --as-slack-id U0STRANGER" if stranger_ok
            else f"; {args.cmd} needs a catalog person (their IAM user)")
    raise CliError(f"{person!r} is not a person in {_shown(catalog_path)} (known: {known}){hint}")


def _print_reply(reply, names: dict[str, str] | None = None, actor: str = "") -> None:
    import shlex

    from local.slack_standin import display_mrkdwn

    _say(f"HTTP {reply.status}")
    if reply.text:
        _say(display_mrkdwn(reply.text, names, show_urls=True))  # as Slack shows the private reply
    body = reply.body if isinstance(reply.body, dict) else {}
    for block in body.get("blocks") or []:  # the private reply's buttons (break-glass's Confirm)
        for e in block.get("elements") or [] if block.get("type") == "actions" else []:
            label = (e.get("text") or {}).get("text", e.get("action_id"))
            _say(f"[{label}] -> python -m local.dev click --as {actor or '<you>'} {e.get('action_id')} "
                 f"{shlex.quote(str(e.get('value', '')))}")


def render(message: dict, names: dict[str, str]) -> str:
    from local.slack_standin import display_mrkdwn, render_blocks

    channel = message.get("channel", "")
    if message.get("ephemeral"):
        where = f"{names.get(channel, channel)} -> only {names.get(message.get('user') or '', message.get('user'))}"
    elif channel.startswith("D"):
        user = "U" + channel[1:]
        where = f"DM {names.get(user, user)}"
    else:
        where = names.get(channel, "#" + channel)
    thread = f", in thread {message['thread_ts']}" if message.get("thread_ts") else ""
    tag = f"  [{message['event_type']}]" if message.get("event_type") else ""
    lines = (render_blocks(message.get("blocks") or [], names)
             or [display_mrkdwn(message.get("text", ""), names, show_urls=True)])
    body = [f"│ {line}" for chunk in lines for line in str(chunk).splitlines() or [""]]
    return "\n".join([f"┌─ {where}  ({message.get('ts')}{thread}){tag}", *body, "└─"])


def _names(handle: StackHandle) -> dict[str, str]:
    c = handle.catalog
    return {c.approvals_channel: "#aws-access-approvals", c.security_channel: "#security-alerts",
            **{p.slack_user: f"@{k}" for k, p in c.people.items()}}


def cmd_send(handle: StackHandle, actor: str, text: str) -> int:
    _print_reply(handle.signed_command(actor, text), _names(handle), actor)
    return 0


def cmd_click(handle: StackHandle, actor: str, action: str, request_id: str) -> int:
    """Click, then show what the clicker was told privately (or the card, if nothing)."""
    user = handle.slack_id(actor)

    def private() -> list[dict]:
        return [m for m in handle.messages(include_ephemeral=True)
                if m.get("ephemeral") and m.get("user") == user]

    seen = {(m.get("channel"), m.get("ts")) for m in private()}
    views_before = len(handle.opened_views())
    reply = handle.signed_click(actor, ACTIONS.get(action, action), request_id)
    _say(f"HTTP {reply.status}" + (f" {reply.text}" if reply.text else ""))
    names = _names(handle)
    answers = [m for m in private() if (m.get("channel"), m.get("ts")) not in seen]
    for m in answers:
        _say(render(m, names))
    opened = handle.opened_views()[views_before:]
    for view in opened:  # a button that opens a form (Deny with reason…)
        _say(render_view(view, names))
        blocks = [b["block_id"] for b in view.get("blocks") or [] if b.get("type") == "input"]
        _say(f"submit it: python -m local.dev submit --as {actor} --view {view['id']} "
             + " ".join(f"{b}=..." for b in blocks))
    if not answers and not opened:
        card = handle.card(request_id)
        _say("(no private answer: the click counted)" + ("; the card now:" if card else ""))
        if card:
            _say(render(card, names))
    return 0


def cmd_home(handle: StackHandle, actor: str) -> int:
    """Open ``actor``'s App Home (a signed ``app_home_opened``) and show the view Drawbridge
    published, with a command for each of its buttons."""
    reply = handle.open_home(actor)
    _say(f"HTTP {reply.status} (app_home_opened)")
    view = handle.home(actor)
    if view is None:
        _say("(no App Home was published)")
        return 1
    from local.slack_standin import render_blocks

    _say(f"┌─ App Home of @{actor}  (views.publish)")
    for line in render_blocks(view.get("blocks") or [], _names(handle)):
        for part in str(line).splitlines() or [""]:
            _say(f"│ {part}")
    _say("└─")
    for block in view.get("blocks") or []:
        elements = block.get("elements") or [] if block.get("type") == "actions" else [block.get("accessory") or {}]
        for e in elements:
            if e.get("type") == "button":
                label = (e.get("text") or {}).get("text", e.get("action_id"))
                _say(f"[{label}] -> python -m local.dev click --as {actor} {e.get('action_id')} "
                     f"{shlex.quote(str(e.get('value', '')))}")
    return 0


def render_view(view: dict, names: dict[str, str]) -> str:
    """A modal as a person sees it: its title, blocks, and each input with its options."""
    from local.slack_standin import display_mrkdwn

    lines = [f"┌─ {(view.get('title') or {}).get('text', '')}  (view {view.get('id')}, "
             f"callback_id {view.get('callback_id')})"]
    for block in view.get("blocks") or []:
        if block.get("type") != "input":
            for t in [(block.get("text") or {}).get("text")] + [e.get("text") for e in block.get("elements") or []]:
                if t:
                    lines.append(f"│ {display_mrkdwn(t, names)}")
            continue
        element = block.get("element") or {}
        optional = " (optional)" if block.get("optional") else ""
        lines.append(f"│ {(block.get('label') or {}).get('text', '')}{optional}   [block {block.get('block_id')}]")
        for o in element.get("options") or []:
            about = f" — {o['description']['text']}" if o.get("description") else ""
            lines.append(f"│     {o['value']}{about}")
        if element.get("type") == "plain_text_input":
            lines.append(f"│     (text, at most {element.get('max_length', 3000)} characters)")
        if block.get("hint"):
            lines.append(f"│     {block['hint']['text']}")
    lines.append(f"└─ [{(view.get('submit') or {}).get('text', 'Submit')}]  [{(view.get('close') or {}).get('text', 'Close')}]")
    return "\n".join(lines)


def cmd_form(handle: StackHandle, actor: str) -> int:
    reply, view = handle.signed_form(actor)
    if view is None:  # refused, or Slack did not open it: the private answer says why
        _print_reply(reply, _names(handle), actor)
        return 1
    _say(f"HTTP {reply.status} (no answer: the form opened)")
    _say(render_view(view, _names(handle)))
    blocks = [b["block_id"] for b in view.get("blocks") or [] if b.get("type") == "input"]
    _say(f"submit it: python -m local.dev submit --as {actor} --view {view['id']} "
         + " ".join(f"{b}=..." for b in blocks))
    return 0


def parse_values(pairs: list[str]) -> dict[str, str]:
    """``block=value`` pairs (a value may hold ``=`` and spaces, when quoted for the shell)."""
    values: dict[str, str] = {}
    for pair in pairs:
        block, sep, value = pair.partition("=")
        if not sep or not block:
            raise CliError(f"{pair!r} is not block=value (e.g. role=prod/admin duration=2h reason=\"why\")")
        values[block] = value
    return values


def cmd_submit(handle: StackHandle, actor: str, view_id: str | None, values: dict[str, str]) -> int:
    views = handle.opened_views()
    # without --view: the last request form (a deny form is submitted by its --view id)
    view = next((v for v in reversed(views)
                 if (v.get("id") == view_id if view_id else v.get("callback_id") == "request_access")), None)
    if view is None:
        _say(f"no form {view_id or ''} opened yet: open one with python -m local.dev form --as {actor}")
        return 1
    user = handle.slack_id(actor)

    def private() -> list[dict]:
        return [m for m in handle.messages(include_ephemeral=True)
                if (m.get("ephemeral") and m.get("user") == user) or m.get("channel") == "D" + user[1:]]

    seen = {(m.get("channel"), m.get("ts")) for m in private()}
    reply = handle.signed_submit(actor, view, values)
    body = reply.body if isinstance(reply.body, dict) else {}
    if body.get("response_action") == "errors":
        _say(f"HTTP {reply.status}: the form stays open, with:")
        for block, text in body.get("errors", {}).items():
            _say(f"  {block}: {text}")
        return 1
    _say(f"HTTP {reply.status}" + (f" {reply.text}" if reply.text else " (the form closed)"))
    names = _names(handle)
    for m in private():
        if (m.get("channel"), m.get("ts")) not in seen:
            _say(render(m, names))
    return 0


def cmd_messages(handle: StackHandle, args) -> int:
    found = handle.messages(channel=args.channel, include_ephemeral=args.all)
    if args.json:
        _say(json.dumps(found, indent=2))
        return 0
    names = _names(handle)
    for m in found:
        _say(render(m, names))
    _say(f"({len(found)} message{'s' if len(found) != 1 else ''})")
    return 0


def _rules_for(event: dict) -> list[str]:
    """The bastion's rules an event reaches, as EventBridge would match them (app.py's patterns)."""
    from moto.events.models import EventPattern  # a dev dependency, as local/ is

    from chalicelib.event_pattern import ACTIVITY_PATTERN_BASTION, ALERT_PATTERN, HEARTBEAT_PATTERN, pattern_json

    rules = (("on_role_assumed", ALERT_PATTERN), ("on_activity", ACTIVITY_PATTERN_BASTION),
             ("on_heartbeat", HEARTBEAT_PATTERN))
    return [name for name, pattern in rules if EventPattern.load(pattern_json(pattern)).matches_event(event)]


def cmd_cloudtrail(handle: StackHandle, args) -> int:
    event = load_cloudtrail(args.event)
    if args.now or args.as_:
        person = args.as_
        event = refresh_cloudtrail(
            event, at=datetime.now(timezone.utc) if args.now else None,
            iam_user=handle.catalog.people[person].iam_user if person else None,
            access_key_id=handle.world.people[person].access_key_id if person else None)
    detail = event.get("detail", {})
    targets = _rules_for(event)
    to = ", ".join(targets) or "no rule: nothing runs"
    if "eventName" in detail:
        _say(f"{detail.get('eventName')} by {(detail.get('userIdentity') or {}).get('arn')} "
             f"on {(detail.get('requestParameters') or {}).get('roleArn')} at {detail.get('eventTime')} "
             f"(eventID {detail.get('eventID')}) -> {to}")
    else:  # not CloudTrail: the alert path's heartbeat, say
        _say(f"{event.get('detail-type')} ({event.get('source')}) from account {event.get('account')} "
             f"({event.get('region')}) at {event.get('time')} -> {to}")
    before = {(m["channel"], m["ts"]) for m in handle.messages()}
    for name in targets:
        _say(f"{name} returned {handle.invoke(name, event)}")
    names = _names(handle)
    for m in handle.messages():
        if (m["channel"], m["ts"]) not in before:
            _say(render(m, names))
    return 0


def cmd_sweep(handle: StackHandle, args) -> int:
    at = parse_time(args.at) if args.at else None
    if at is not None:
        _say(f"sweep with this process's clock at {iso_z(at)} (the app server and moto keep real time)")
    result = handle.sweep(at=at)
    _say(f"sweep report: {result}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.dev", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--state", type=Path, default=STATE, help=f"state file (default {STATE})")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start the stack and keep it running (Ctrl-C stops it)")
    as_help = "a catalog person (e.g. alice), or a raw Slack user id"
    slack_help = "act as this Slack user id (e.g. U0STRANGER), who need not be in the catalog"
    p = sub.add_parser("send", help="a signed slash command, as a catalog person or any Slack user")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--as", dest="as_", metavar="PERSON", help=as_help)
    who.add_argument("--as-slack-id", metavar="USER_ID", help=slack_help)
    p.add_argument("text", help='e.g. "/aws-access prod admin 2h fix" (the /aws-access is optional); '
                                "sent as Slack sends typed text (& < > escaped)")
    p = sub.add_parser("click", help="a signed button click on a request's card; prints the private answer")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--as", dest="as_", metavar="PERSON", help=as_help)
    who.add_argument("--as-slack-id", metavar="USER_ID", help=slack_help)
    p.add_argument("action", help="approve, deny, or a raw action_id")
    p.add_argument("request_id")
    p = sub.add_parser("home", help="open the person's App Home (app_home_opened) and show what was published")
    p.add_argument("--as", dest="as_", required=True, metavar="PERSON")
    p = sub.add_parser("form", help="a bare /aws-access: prints the request form the app opens")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--as", dest="as_", metavar="PERSON", help=as_help)
    who.add_argument("--as-slack-id", metavar="USER_ID", help=slack_help)
    p = sub.add_parser("submit", help="submit the last request form opened (or --view) with block=value pairs")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--as", dest="as_", metavar="PERSON", help=as_help)
    who.add_argument("--as-slack-id", metavar="USER_ID", help=slack_help)
    p.add_argument("--view", help="the view id `form` printed (default: the last form opened)")
    p.add_argument("values", nargs="*", metavar="BLOCK=VALUE",
                   help='e.g. role=prod/admin duration=2h reason="fixing incident 4521"')
    p = sub.add_parser("assume", help="the person's own sts:AssumeRole against moto")
    p.add_argument("--as", dest="as_", required=True, metavar="PERSON")
    p.add_argument("role_arn", nargs="?", default=DEFAULT_ROLE)
    p = sub.add_parser("cloudtrail", help="deliver an event (CloudTrail, or the alert path's heartbeat) to the "
                                          "handlers whose rules match it: on_role_assumed, on_activity, on_heartbeat")
    p.add_argument("event", help="a fixture name (tests/fixtures/cloudtrail) or a path to an event JSON")
    p.add_argument("--now", action="store_true", help="as a new call made now: eventTime = now, fresh ids")
    p.add_argument("--as", dest="as_", metavar="PERSON", help="the calling IAM user (fresh ids too)")
    p = sub.add_parser("sweep", help="run the sweep handler")
    p.add_argument("--at", help="ISO time to run it at (moves this process's clock only)")
    p = sub.add_parser("messages", help="what the Slack stand-in holds")
    p.add_argument("--channel", help="a channel id, or a user id for their DM")
    p.add_argument("--all", action="store_true", help="include ephemeral messages")
    p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    if args.cmd == "up":
        return up(args.state)
    actor = None
    if getattr(args, "as_", None) is not None or getattr(args, "as_slack_id", None) is not None:
        from chalicelib.catalog import load_catalog

        catalog_path = _catalog_path(args.state)
        try:  # before connecting: a wrong name is an error whether or not a stack runs
            actor = resolve_actor(args, load_catalog(catalog_path), catalog_path)
        except CliError as exc:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr, flush=True)
            return 2
    values: dict[str, str] = {}
    if args.cmd == "submit":
        try:  # before connecting too
            values = parse_values(args.values)
        except CliError as exc:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr, flush=True)
            return 2
    handle = _handle(args.state)
    if args.cmd == "send":
        return cmd_send(handle, actor, args.text)
    elif args.cmd == "click":
        return cmd_click(handle, actor, args.action, args.request_id)
    elif args.cmd == "home":
        return cmd_home(handle, actor)
    elif args.cmd == "form":
        return cmd_form(handle, actor)
    elif args.cmd == "submit":
        return cmd_submit(handle, actor, args.view, values)
    elif args.cmd == "assume":
        _say(handle.assume_role(args.as_, args.role_arn))
    elif args.cmd == "cloudtrail":
        return cmd_cloudtrail(handle, args)
    elif args.cmd == "sweep":
        return cmd_sweep(handle, args)
    elif args.cmd == "messages":
        return cmd_messages(handle, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
