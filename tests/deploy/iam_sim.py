"""A deliberately small evaluator of IAM policy documents, for tests of the documents.

moto does not evaluate what these documents are for (conditions, permission boundaries,
trust-policy conditions, SCPs), so the tests in tests/deploy check the documents
themselves, and this module lets them say so as rules ("keys without MFA cannot enable a
device") instead of as dictionary shapes. It knows exactly the operators our documents
use and IAM's documented semantics for them:

* a statement applies when its Action and Resource match (``*``/``?`` wildcards, actions
  case-insensitive; ``${aws:username}``-style policy variables are filled from the
  request context) and every condition operator is true (AND across operators and keys,
  OR across a key's values);
* a missing context key makes a positive operator false and a negated one
  (``StringNotEquals``, ``ArnNotLike``...) true; ``ForAnyValue:`` is true when any of a
  multivalued key's values matches (none, or no key: false); dates are ISO 8601;
* an explicit Deny wins, then an Allow, else the request is implicitly denied.

It is no substitute for IAM's policy simulator: anything else it meets raises, so a new
operator in a document fails the test rather than being ignored.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime

ALLOW, DENY, IMPLICIT_DENY = "Allow", "Deny", "ImplicitDeny"


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _fill(text: str, context: dict) -> str:
    """Replace ${key} policy variables with context values (a missing one stays, matching nothing)."""
    return re.sub(r"\$\{([^}]+)\}", lambda m: str(context.get(m.group(1), "\0missing\0")), text)


def _like(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def _date(value: str) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


_POSITIVE = {
    "StringEquals": lambda v, p: v == p,
    "StringLike": _like,
    "ArnEquals": lambda v, p: v == p,
    "ArnLike": _like,
    "Bool": lambda v, p: str(v).lower() == str(p).lower(),
    "DateLessThan": lambda v, p: _date(v) < _date(p),
    "DateGreaterThan": lambda v, p: _date(v) > _date(p),
}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike",
            "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def _condition_holds(operator: str, key: str, wanted, context: dict) -> bool:
    values = [_fill(str(w), context) for w in as_list(wanted)]
    if operator.startswith("ForAnyValue:"):
        # a multivalued key (aws:TagKeys): true when any of the request's values matches
        base = operator.split(":", 1)[1]
        if base not in _POSITIVE:
            raise NotImplementedError(f"iam_sim does not know the condition operator {operator}")
        return any(_POSITIVE[base](str(v), p) for v in as_list(context.get(key, [])) for p in values)
    if operator in _NEGATED:
        if key not in context:
            return True
        match = _POSITIVE[_NEGATED[operator]]
        return not any(match(str(context[key]), p) for p in values)
    if operator not in _POSITIVE:
        raise NotImplementedError(f"iam_sim does not know the condition operator {operator}")
    if key not in context:
        return False
    return any(_POSITIVE[operator](str(context[key]), p) for p in values)


def statement_applies(st: dict, action: str, resource: str, context: dict) -> bool:
    if "NotAction" in st or "NotResource" in st or "NotPrincipal" in st:
        raise NotImplementedError("iam_sim does not evaluate NotAction/NotResource/NotPrincipal")
    if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(st["Action"])):
        return False
    if not any(_like(resource, _fill(r, context)) for r in as_list(st.get("Resource", "*"))):
        return False
    return all(_condition_holds(op, key, wanted, context)
               for op, keys in st.get("Condition", {}).items() for key, wanted in keys.items())


def decide(doc: dict, action: str, resource: str, context: dict | None = None) -> str:
    """ALLOW, DENY (an explicit Deny applies) or IMPLICIT_DENY for one request."""
    context = context or {}
    applying = [st["Effect"] for st in doc["Statement"] if statement_applies(st, action, resource, context)]
    if DENY in applying:
        return DENY
    return ALLOW if ALLOW in applying else IMPLICIT_DENY


def allowed(doc: dict, action: str, resource: str, context: dict | None = None) -> bool:
    return decide(doc, action, resource, context) == ALLOW
