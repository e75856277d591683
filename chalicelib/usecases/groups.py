"""Slack user groups named as approvers (``approvers = ["@sre-leads", "bob"]``, issue 17).

The catalog keeps the handles as written; a use case that decides, reminds or shows who
may approve resolves them here, into the catalog people in each group *now*, and hands
the pure decisions (:mod:`chalicelib.domain.decide`) a role whose approvers are people
only (:meth:`~chalicelib.catalog.Role.with_members`). Members who are not catalog people
are ignored, and logged (once per change); a group Slack cannot resolve supplies nobody.
"""

from __future__ import annotations

from .deps import Deps


def people_in(deps: Deps, handle: str) -> frozenset[str] | None:
    """The person keys of the catalog people in user group ``handle`` (``@sre-leads``);
    None when it cannot be resolved (it supplies nobody: fail closed)."""
    from ..log import logger

    ids = deps.groups.members(handle.removeprefix("@")) if deps.groups is not None else None
    if ids is None:
        logger().warning("user group supplies no approvers: not resolved", extra={"handle": handle})
        return None
    people = {uid: deps.catalog.person_by_slack(uid) for uid in ids}
    strangers = frozenset(uid for uid, person in people.items() if person is None)
    if strangers and deps.strangers_reported.get(handle) != strangers:  # once per change
        logger().warning("user group members not in the catalog are ignored",
                         extra={"handle": handle, "ignored": len(strangers), "slack_users": sorted(strangers)})
    deps.strangers_reported[handle] = strangers
    return frozenset(person.key for person in people.values() if person is not None)


def resolved(deps: Deps, role):
    """``role`` with its user groups replaced by their catalog people now (None stays None;
    a role without groups comes back as is, without asking Slack)."""
    if role is None or not role.groups:
        return role
    found = {handle: people_in(deps, handle) for handle in role.groups}
    return role.with_members({handle: people for handle, people in found.items() if people is not None})
