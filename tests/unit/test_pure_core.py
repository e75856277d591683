"""The pure core stays pure: no boto3, chalice, slack_sdk client or environment in it.

The import graph is read from the source with ``ast`` (nothing is imported), following
relative and absolute imports inside chalicelib, including imports inside functions
and the ``__init__.py`` of every package on the way.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "chalicelib"
ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
HEAVY = {"boto3", "botocore", "chalice", "slack_sdk"}


@dataclass
class ModuleFacts:
    imports: list[tuple[str, int]] = field(default_factory=list)  # (absolute module name, line)
    env_reads: list[tuple[str, int]] = field(default_factory=list)  # (what, line)


def module_file(root: Path, name: str) -> Path | None:
    parts = name.split(".")
    as_module = root.joinpath(*parts).with_suffix(".py")
    as_package = root.joinpath(*parts, "__init__.py")
    return as_module if as_module.is_file() else as_package if as_package.is_file() else None


def _const_str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def scan(root: Path, name: str) -> ModuleFacts:
    """Every import and environment access in module ``name`` (anywhere in the file)."""
    path = module_file(root, name)
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    facts = ModuleFacts()
    os_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                facts.imports.append((alias.name, node.lineno))
                if alias.name == "os" or (alias.name.startswith("os.") and alias.asname is None):
                    os_aliases.add(alias.asname or "os")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            facts.imports.append((base, node.lineno))
            for alias in node.names:
                facts.imports.append((f"{base}.{alias.name}", node.lineno))  # maybe a submodule
                if base == "os" and alias.name in ENV_NAMES:
                    facts.env_reads.append((f"from os import {alias.name}", node.lineno))
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in os_aliases and node.attr in ENV_NAMES:
                facts.env_reads.append((f"{node.value.id}.{node.attr}", node.lineno))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            target = _const_str(node.args[0])
            if callee in ("import_module", "__import__") and target:
                facts.imports.append((target, node.lineno))
    return facts


def internal_module(root: Path, name: str, package: str) -> str | None:
    """The chalicelib module an import name refers to (``a.b.Thing`` -> ``a.b``), if any."""
    parts = name.split(".")
    if parts[0] != package:
        return None
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if module_file(root, candidate) is not None:
            return candidate
    return None


def walk(root: Path, start: list[str], package: str = PACKAGE) -> dict[str, tuple[ModuleFacts, str | None]]:
    """Every chalicelib module reachable from ``start``: name -> (facts, who imported it first)."""
    seen: dict[str, tuple[ModuleFacts, str | None]] = {}
    queue: deque[tuple[str, str | None]] = deque((s, None) for s in start)
    while queue:
        name, parent = queue.popleft()
        # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        parts = name.split(".")
        for n in range(1, len(parts)):
            pkg = ".".join(parts[:n])
            if pkg not in seen and module_file(root, pkg) is not None:
                queue.append((pkg, name))
        if name in seen:
            continue
        facts = scan(root, name)
        seen[name] = (facts, parent)
        for imported, _ in facts.imports:
            target = internal_module(root, imported, package)
            if target is not None and target not in seen:
                queue.append((target, name))
    return seen


def chain(graph, name: str) -> str:
    links = [name]
    while (parent := graph[name][1]) is not None:
        links.append(parent)
        name = parent
    return " <- ".join(links)


def violations(root: Path, start: list[str], allowed=lambda module: False, package: str = PACKAGE) -> list[str]:
    graph = walk(root, start, package)
    found = []
    for name, (facts, _) in sorted(graph.items()):
        for imported, line in facts.imports:
            if imported.split(".")[0] in HEAVY and not allowed(imported):
                found.append(f"{chain(graph, name)}: line {line} imports {imported}")
        for what, line in facts.env_reads:
            found.append(f"{chain(graph, name)}: line {line} reads the environment ({what})")
    return sorted(set(found))


def dotted(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


PURE = sorted(
    [dotted(p) for p in (ROOT / PACKAGE / "domain").glob("*.py")]
    + [dotted(p) for p in (ROOT / PACKAGE / "alerts").glob("*.py")]  # chalicelib.alerts and each module
    + [f"{PACKAGE}.policy", f"{PACKAGE}.slack.parse", f"{PACKAGE}.slack.escape"]
)
VIEWS = sorted(
    [dotted(p) for p in (ROOT / PACKAGE / "slack" / "alert_views").glob("*.py")]  # the package and each module
    + [f"{PACKAGE}.slack.views", f"{PACKAGE}.slack.replies"]
)
#: the use cases sequence I/O only through the ports: they import no client library either
USE_CASES = sorted([dotted(p) for p in (ROOT / PACKAGE / "usecases").glob("*.py")] + [f"{PACKAGE}.ports"])


# ==== the checks =====================================================================
@pytest.mark.parametrize("module", PURE)
def test_pure_core_imports_nothing_heavy_and_reads_no_environment(module):
    assert violations(ROOT, [module]) == []


@pytest.mark.parametrize("module", USE_CASES)
def test_use_cases_reach_the_world_only_through_ports(module):
    """No boto3, chalice or WebClient in a use case (Block Kit models via the views only),
    and no environment: everything comes in through Deps."""
    assert violations(ROOT, [module], allowed=lambda m: m == "slack_sdk.models"
                      or m.startswith("slack_sdk.models.")) == []


@pytest.mark.parametrize("module", VIEWS)
def test_views_import_only_slack_sdk_models(module):
    assert violations(ROOT, [module], allowed=lambda m: m == "slack_sdk.models"
                      or m.startswith("slack_sdk.models.")) == []


def test_the_module_lists_are_real():
    assert {"chalicelib.domain.model", "chalicelib.domain.decide", "chalicelib.domain.duration",
            "chalicelib.domain.lifecycle"} <= set(PURE)
    assert {"chalicelib.alerts", "chalicelib.alerts.parse", "chalicelib.alerts.decide"} <= set(PURE)
    assert {"chalicelib.slack.alert_views", "chalicelib.slack.alert_views.ways_in"} <= set(VIEWS)
    assert {"chalicelib.usecases.request", "chalicelib.usecases.sweep", "chalicelib.ports"} <= set(USE_CASES)
    for name in PURE + VIEWS + USE_CASES:
        assert module_file(ROOT, name) is not None, name


def test_the_walk_follows_relative_imports_and_packages():
    graph = walk(ROOT, ["chalicelib.slack.views"])
    assert {"chalicelib", "chalicelib.slack", "chalicelib.domain", "chalicelib.domain.model",
            "chalicelib.domain.duration", "chalicelib.slack.escape"} <= set(graph)
    assert "chalicelib.event_pattern" in walk(ROOT, ["chalicelib.alerts"])
    assert "chalicelib.domain.model" in walk(ROOT, ["chalicelib.policy"])


def test_the_views_do_use_slack_sdk_models():
    # so the allowance above is needed, and the checker sees it
    imports = {m for m, _ in scan(ROOT, "chalicelib.slack.views").imports}
    assert "slack_sdk.models.blocks" in imports


def test_the_checker_catches_impure_code(tmp_path):
    """A fake package: the checker must find each kind of violation, transitively."""
    files = {
        "pkg/__init__.py": "",
        "pkg/core/__init__.py": "",
        "pkg/core/pure.py": "from ..helpers import fmt\nfrom . import other\n",
        "pkg/core/other.py": "import os as o\nX = o.getenv('X')\n",
        "pkg/helpers.py": textwrap.dedent("""\
            import json
            from os import environ

            def fmt():
                import boto3.session
                from chalice import Response
                return environ['A']
            """),
        "pkg/ui.py": textwrap.dedent("""\
            import importlib
            from slack_sdk.models.blocks import SectionBlock
            from slack_sdk.web import WebClient
            mod = importlib.import_module("botocore.stub")
            """),
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = violations(tmp_path, ["pkg.core.pure"], package="pkg")
    assert found == [
        "pkg.core.other <- pkg.core.pure: line 2 reads the environment (o.getenv)",
        "pkg.helpers <- pkg.core.pure: line 2 reads the environment (from os import environ)",
        "pkg.helpers <- pkg.core.pure: line 5 imports boto3.session",
        "pkg.helpers <- pkg.core.pure: line 6 imports chalice",
        "pkg.helpers <- pkg.core.pure: line 6 imports chalice.Response",
    ]
    assert set(walk(tmp_path, ["pkg.core.pure"], package="pkg")) == {
        "pkg", "pkg.core", "pkg.core.pure", "pkg.core.other", "pkg.helpers"}
    ui = violations(tmp_path, ["pkg.ui"], package="pkg",
                    allowed=lambda m: m.startswith("slack_sdk.models"))
    assert ui == [
        "pkg.ui: line 3 imports slack_sdk.web",
        "pkg.ui: line 3 imports slack_sdk.web.WebClient",
        "pkg.ui: line 4 imports botocore.stub",
    ]


# ==== nothing heavy at import time ====================================================
def test_importing_the_app_loads_nothing_heavy():
    code = ("import app, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'boto3','botocore','slack_sdk','pydantic','aws_lambda_powertools'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
