"""The repository stands alone: no file reaches or cites anything outside it.

People clone this repository on its own. A test, the demo or the bench that reads a
folder beside the checkout fails for them, and a comment or doc that cites a file they
do not have sends them nowhere. The project's own fixtures are in ``tests/fixtures/``,
its own contract in ``docs/REFERENCE.md``.

Every tracked text file is scanned line by line. The needles are built by concatenation
so that this file does not match itself.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_SHARED = "sha" + "red"
_PROMISES = "CONT" + "RACT"
_QUOTE = chr(34)
NEEDLES = (
    "../" + _SHARED,                 # a folder beside the repository
    _SHARED + "/fixtures",           # the fixtures that used to live there
    _QUOTE + _SHARED + _QUOTE,       # the same folder as a pathlib part (parent / <it>)
    _PROMISES + ".md",               # documents that are not part of the repository
    _PROMISES + " §",
    "FACTS" + ".md",
    "STYLE" + ".md",
)

# Walked only when git cannot list the files (e.g. an exported tarball without .git).
_NOT_SOURCE = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist"}


def tracked_files(root: Path) -> list[Path]:
    """Every file git tracks under ``root``; without git, every file outside build/venv dirs."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in _NOT_SOURCE]
            found.extend(Path(dirpath) / f for f in filenames)
        return sorted(found)
    return [root / name for name in out.decode("utf-8", "surrogateescape").split("\0") if name]


def outside_references(root: Path, files: list[Path]) -> list[str]:
    """``path:line: needle | text`` for each line that names something outside the repository."""
    hits = []
    for path in files:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):  # deleted in the working tree, or a submodule
            continue
        if b"\0" in data:
            continue  # binary
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # not text
        for number, line in enumerate(text.splitlines(), start=1):
            for needle in NEEDLES:
                if needle in line:
                    hits.append(f"{path.relative_to(root).as_posix()}:{number}: {needle} | {line.strip()[:120]}")
    return hits


def test_no_file_reaches_or_cites_outside_the_repository():
    files = tracked_files(ROOT)
    assert len(files) > 50, f"expected the repository's files, found {len(files)}"
    hits = outside_references(ROOT, files)
    assert not hits, ("files reach or cite something outside the repository (use tests/fixtures/ "
                      "and docs/REFERENCE.md instead):\n" + "\n".join(hits))


@pytest.mark.parametrize("line", [
    "FIXTURES = ROOT.parent / " + _QUOTE + _SHARED + _QUOTE + ' / "fixtures"',
    "see ../" + _SHARED + "/fixtures/README.md",
    "(" + _PROMISES + " §4)",
    "the facts in FACTS" + ".md",
    "as STYLE" + ".md says",
])
def test_the_scan_finds_a_reference(tmp_path, line):
    (tmp_path / "clean.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "binary.bin").write_bytes(b"\0" + line.encode())
    (tmp_path / "dirty.md").write_text(f"# title\n\n{line}\n", encoding="utf-8")
    files = sorted(tmp_path.iterdir())
    hits = outside_references(tmp_path, files)
    assert len(hits) >= 1 and all(h.startswith("dirty.md:3: ") for h in hits), hits
