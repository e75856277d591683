"""Every `tests/...py::test_name` a document cites as proof names a test that exists (a
`::name` right after one continues in the same file; `name_*` matches a family)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
CITE = re.compile(r"(tests/[\w/]+\.py)?::(\w+\*?)")


def missing_citations(text: str) -> list[str]:
    missing, last = [], None
    for m in CITE.finditer(text):
        last = m.group(1) or last
        if last is None:
            continue
        path = ROOT / last
        name = m.group(2)
        pattern = rf"def {re.escape(name.rstrip('*'))}" + ("" if name.endswith("*") else r"\b")
        if not path.is_file() or not re.search(pattern, path.read_text(encoding="utf-8")):
            missing.append(f"{last}::{name}")
    return missing


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_tests_exist(doc):
    assert missing_citations(doc.read_text(encoding="utf-8")) == []


def test_the_check_catches_a_wrong_citation():
    assert missing_citations("see `tests/unit/test_docs_cite_real_tests.py::test_nothing_like_this`") == [
        "tests/unit/test_docs_cite_real_tests.py::test_nothing_like_this"]
    assert missing_citations("`tests/unit/test_docs_cite_real_tests.py::test_cited_tests_exist`") == []
