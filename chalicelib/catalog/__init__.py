"""The access catalog: ``policies/access.toml`` loaded and validated into frozen models.

Who may request which role, who approves it, for how long. The file format and
every rule are documented in docs/CATALOG.md; ``python -m chalicelib.catalog
[path]`` checks a file. Nothing here reads the environment: callers pass the path.
Standard library only (docs/decisions/0005-model-library.md).

Loading happens in two passes, so one run reports every problem at once:

1. shape (:mod:`.shape`): each table is checked on its own against its spec
   (unknown keys, missing keys, types, id formats, durations);
2. references (:mod:`.check`): approvers/requesters exist, ids are unique,
   approvals_required fits the approvers. A table that fails its shape check is
   still cross-checked on the keys that passed it, so one run shows everything.

Problems are errors (the catalog is refused, :class:`CatalogError`) or warnings
(the catalog loads, :attr:`Catalog.warnings`). Only a catalog without errors
becomes a :class:`Catalog` (:mod:`.model`: frozen dataclasses and their lookups).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from chalicelib.domain.eligibility import _approvals, _either, _shortfall, approval_blocker

from .check import build
from .model import Account, Catalog, CatalogError, Person, Role
from .shape import MAX_ROLE_DURATION, RESERVED_ACCOUNT_KEYS

DEFAULT_PATH = "policies/access.toml"

__all__ = [
    "DEFAULT_PATH",
    "MAX_ROLE_DURATION",
    "RESERVED_ACCOUNT_KEYS",
    "Account",
    "Catalog",
    "CatalogError",
    "Person",
    "Role",
    "_approvals",
    "_either",
    "_shortfall",
    "approval_blocker",
    "load_catalog",
    "main",
    "parse_catalog",
]


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    """Validate catalog TOML text; ``CatalogError`` lists every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError([f"{source}: TOML syntax error: {exc}"]) from None
    return build(data)


_cache: dict[str, tuple[tuple[int, int], Catalog]] = {}


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    """Load a catalog file; parsed again only when its mtime or size changes."""
    resolved = str(Path(path).resolve())
    try:
        stat = os.stat(resolved)
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _cache.get(resolved)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        raw = Path(resolved).read_bytes()
    except OSError as exc:
        raise CatalogError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError([f"{path}: not UTF-8 text"]) from None
    catalog = parse_catalog(text, source=str(path))
    _cache[resolved] = (stamp, catalog)
    return catalog


def main(argv: list[str] | None = None) -> int:
    """``python -m chalicelib.catalog [path]`` (see :mod:`.__main__`)."""
    from .__main__ import main as cli  # not at import: the service never needs argparse

    return cli(argv)
