"""Whether a person could ever collect the approvals a role needs (pure, stdlib only).

The catalog validator uses it for warnings, ``help`` to leave out roles, and the
request decision to refuse a request nobody could approve before anything is stored.
"""

from __future__ import annotations

from typing import Protocol, Sequence


class RoleRules(Protocol):
    """What these rules need from a catalog role."""

    label: str
    approvers: Sequence[str]
    approvals_required: int
    self_approval: bool


def _shortfall(
    approvers: Sequence[str], needed: int, self_approval: bool, person: str
) -> tuple[list[str], list[str]] | None:
    """None if ``person`` could collect ``needed`` approvals; else (who could approve them, fixes).

    Everyone in ``approvers`` may approve, except ``person`` themself unless
    ``self_approval`` (the rule chalicelib.domain.decide enforces on each click).
    """
    eligible = [a for a in dict.fromkeys(approvers) if a != person or self_approval]
    missing = needed - len(eligible)
    if missing <= 0:
        return None
    if approvers:
        add = "add another approver" if missing == 1 else f"add {missing} more approvers"
    else:
        add = "add an approver" if missing == 1 else f"add {missing} approvers"
    fixes = [add]
    if needed > 1:
        fixes.append("lower approvals_required")
    if person in approvers and not self_approval:
        fixes.append("set self_approval = true")
    return eligible, fixes


def _either(options: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}"


def _approvals(n: int) -> str:
    return f"{n} approval{'' if n == 1 else 's'}"


def approval_blocker(role: RoleRules, person_key: str) -> str | None:
    """Why ``person_key`` could never collect the approvals ``role`` needs; None if they could.

    Only approvals are judged, not whether they may request it (``role.requesters``).
    A person may be approved by every approver of the role except themself (unless
    ``role.self_approval``), and needs ``role.approvals_required`` of them. The
    reason is addressed to that person, fit for an ephemeral Slack reply, and says
    what to ask for, e.g.::

        prod/readonly needs 1 approval and you are its only approver, so nobody can
        approve your request; ask an admin to add another approver or set
        self_approval = true for prod/readonly in the access catalog

    Pure: the service calls it to refuse such a request before recording anything.
    A role whose approvers still name a Slack user group (``@handle``, not resolved into
    people) is never blocked here: the group's size is unknown until Slack is asked.
    """
    if any(a.startswith("@") for a in role.approvers):
        return None
    short = _shortfall(role.approvers, role.approvals_required, role.self_approval, person_key)
    if short is None:
        return None
    eligible, fixes = short
    needed = _approvals(role.approvals_required)
    names = ", ".join(f"@{a}" for a in eligible)
    own = person_key in role.approvers and not role.self_approval  # they count themselves out
    if own and not eligible:
        why = f"needs {needed} and you are its only approver, so nobody can approve your request"
    elif own:
        why = f"needs {needed} and only {len(eligible)} of its approvers ({names}) can approve your request"
    elif eligible:
        count = len(eligible)
        why = f"needs {needed} but has only {count} approver{'' if count == 1 else 's'} ({names})"
    else:
        why = f"needs {needed} but has no approvers"
    return f"{role.label} {why}; ask an admin to {_either(fixes)} for {role.label} in the access catalog"
