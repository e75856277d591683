"""Trimmed botocore service models for the Lambda zip (``make package`` writes them).

A cold ack builds three botocore clients: DynamoDB, SSM (the signing secret) and Lambda
(the async hand-off to the worker). Building a client parses its whole service model, and
these are large (DynamoDB's is half a megabyte of JSON; SSM's and Lambda's about 1,350 and
600 shapes) for the handful of operations Drawbridge calls. The zip therefore carries, under
``botocore_models/``, copies of those models cut down to the operations in :data:`TRIMMED`
and the shapes they reach (their modelled errors included),
made from the botocore this build runs; ``chalicelib/wiring.py`` puts that directory first
on botocore's data path (its documented ``data_path`` setting), so botocore still does
everything else - endpoints, signing, retries, errors - from its own data.

Only services whose every call is listed here are trimmed: tests/deploy/test_botocore_models.py
fails if the code calls an operation of a trimmed service that is not in :data:`TRIMMED` (the
same source scan that checks the Lambda's IAM policy), and runs the table's adapter - a
cancelled transaction's reasons included - and each other listed operation through clients
built on the trimmed models, against moto; ``make package``'s smoke import checks that the
zip's clients read them.
"""

from __future__ import annotations

import json
from pathlib import Path

#: service -> the operations Drawbridge calls on it (all of them)
TRIMMED: dict[str, tuple[str, ...]] = {
    # chalicelib/adapters (store, alert items, alert calls): the table's every operation
    "dynamodb": ("DeleteItem", "GetItem", "PutItem", "Query", "TransactWriteItems", "UpdateItem"),
    "ssm": ("GetParameter",),  # wiring._secret (Powertools' SSMProvider.get)
    "lambda": ("Invoke",),  # handlers.defer: the async hand-off to the worker
}
DIRNAME = "botocore_models"


def _reachable(shapes: dict, roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        stack += [shape[k]["shape"] for k in ("member", "key", "value") if k in shape]
        stack += [m["shape"] for m in shape.get("members", {}).values()]
    return seen


def _undocumented(node: dict) -> dict:
    """A shape, operation or member reference without its ``documentation`` text (botocore
    never reads it at run time; it is most of the bytes). Member *names* are left alone."""
    out = {k: v for k, v in node.items() if k != "documentation"}
    if "members" in out:
        out["members"] = {name: _undocumented(ref) for name, ref in out["members"].items()}
    for k in ("member", "key", "value", "input", "output"):
        if isinstance(out.get(k), dict):
            out[k] = _undocumented(out[k])
    if "errors" in out:
        out["errors"] = [_undocumented(e) for e in out["errors"]]
    return out


def trimmed_model(service: str, operations: tuple[str, ...]) -> tuple[str, dict]:
    """(api version, the service model with only ``operations`` and the shapes they use)."""
    from botocore.loaders import Loader

    loader = Loader()
    version = loader.determine_latest_version(service, "service-2")
    model = loader.load_service_model(service, "service-2", version)
    missing = [op for op in operations if op not in model["operations"]]
    if missing:
        raise ValueError(f"{service} has no operation {', '.join(missing)}")
    ops = {op: model["operations"][op] for op in operations}
    roots = [o[k]["shape"] for o in ops.values() for k in ("input", "output") if k in o]
    roots += [e["shape"] for o in ops.values() for e in o.get("errors", [])]
    keep = _reachable(model["shapes"], roots)
    out = {k: v for k, v in model.items() if k not in ("operations", "shapes", "documentation")}
    out["operations"] = {name: _undocumented(op) for name, op in ops.items()}
    out["shapes"] = {name: _undocumented(model["shapes"][name]) for name in sorted(keep)}
    return version, out


def write(root: Path) -> list[Path]:
    """Write every trimmed model under ``root/botocore_models``; the files written."""
    written = []
    for service, operations in TRIMMED.items():
        version, model = trimmed_model(service, operations)
        path = root / DIRNAME / service / version / "service-2.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(model, separators=(",", ":"), sort_keys=True))
        written.append(path)
    return written
