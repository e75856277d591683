"""Access to the shared, read-only fixtures (``<workspace>/shared/fixtures``).

``load_cloudtrail("assume_role_denied")`` -> a fresh dict (safe to mutate);
``load_slack("block_actions_approve")`` -> dict; ``load_slack("slash_command.txt")``
-> the raw form body as str. See ``shared/fixtures/README.md`` for what each file is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# tests/fixtures.py -> tests -> repo -> workspace
SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
CLOUDTRAIL_DIR = SHARED_FIXTURES / "cloudtrail"
SLACK_DIR = SHARED_FIXTURES / "slack"


def _path(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.suffix:
        path = path.with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"no fixture {name!r} in {directory}")
    return path


def load_cloudtrail(name: str) -> dict[str, Any]:
    """A whole EventBridge event from ``cloudtrail/`` (``.json`` optional in ``name``)."""
    return json.loads(_path(CLOUDTRAIL_DIR, name).read_text(encoding="utf-8"))


def load_slack(name: str) -> Any:
    """A Slack fixture: parsed JSON for ``.json`` (the default), raw text for ``.txt``."""
    path = _path(SLACK_DIR, name)
    text = path.read_text(encoding="utf-8")
    return text if path.suffix == ".txt" else json.loads(text)


def cloudtrail_names() -> list[str]:
    """Every CloudTrail fixture name (without ``.json``), sorted."""
    return sorted(p.stem for p in CLOUDTRAIL_DIR.glob("*.json"))
