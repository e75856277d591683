"""deploy/package.py's slim step and its smoke import, offline.

``chalice package`` needs PyPI, so the zips here are built in the test: a small fake one
(every DROP/KEEP rule, a dangling import, modes and dates) and one laid out as ``chalice
package`` lays it out - app.py, chalicelib, the catalog, Chalice's runtime, and the files
of every distribution requirements.txt pulls in, taken from this virtualenv's installed
copies - which slim() and the real smoke import (``python -S``, read-only tree, only what
Lambda provides) must get through.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import marshal
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy import package as pkg
from deploy.package import PackageError, slim

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
TAG = sys.implementation.cache_tag
CHALICE_DATE = (1980, 1, 1, 0, 0, 0)

FAKE = {
    "app.py": "import chalicelib.thing\n",
    "chalicelib/__init__.py": "",
    "chalicelib/access.toml": "[bastion]\n",
    "chalicelib/thing.py": 'WHERE = "source"\n\n\ndef fail():\n    raise RuntimeError("boom")\n',
    "aws_lambda_powertools/__init__.py": "from aws_lambda_powertools.logging import Logger\n",
    "aws_lambda_powertools/logging/__init__.py": "Logger = 'logger'\n",
    "aws_lambda_powertools/shared/functions.py":
        "def pydantic_to_dict(data):\n"
        "    from aws_lambda_powertools.event_handler.openapi.compat import _model_dump\n"
        "    return _model_dump(data)\n",
    "aws_lambda_powertools/event_handler/__init__.py": "",
    "aws_lambda_powertools/event_handler/openapi/__init__.py": "",
    "aws_lambda_powertools/event_handler/openapi/compat.py": "def _model_dump(d):\n    return d\n",
    "aws_lambda_powertools/event_handler/openapi/swagger_ui/swagger-ui.min.css": "body{}\n",
    "aws_lambda_powertools/utilities/__init__.py": "",
    "aws_lambda_powertools/utilities/parameters/__init__.py": "def get_parameter(name):\n    return name\n",
    "aws_lambda_powertools/utilities/batch/__init__.py": "",
    "aws_lambda_powertools/metrics/provider/datadog/__init__.py": "",
    "aws_lambda_powertools/py.typed": "",
    "aws_lambda_powertools-3.37.0.dist-info/METADATA": "Name: aws-lambda-powertools\nVersion: 3.37.0\n",
    "aws_lambda_powertools-3.37.0.dist-info/RECORD": "aws_lambda_powertools/__init__.py,,\n",
    "aws_lambda_powertools-3.37.0.dist-info/licenses/LICENSE": "MIT No Attribution\n",
    "slack/__init__.py": "",
    "slack_sdk/__init__.py": "from slack_sdk.web.client import WebClient\n",
    "slack_sdk/web/__init__.py": "",
    "slack_sdk/web/client.py": "from typing import TYPE_CHECKING\n"
                               "if TYPE_CHECKING:\n    from slack_sdk.web.async_client import AsyncWebClient\n"
                               "class WebClient:\n    pass\n",
    "slack_sdk/web/async_client.py": "class AsyncWebClient:\n    pass\n",
    "slack_sdk/web/legacy_client.py": "",
    "slack_sdk/http_retry/builtin_async_handlers.py": "",
    "slack_sdk/socket_mode/__init__.py": "",
    "slack_sdk/oauth/__init__.py": "",
    "slack_sdk/models/dialogs/__init__.py": "",
    "aws_lambda_powertools/utilities/jmespath_utils/__init__.py": "import jmespath\n",
    "jmespath/__init__.py": "def search(expression, data):\n    return data\n",
    "jmespath-1.1.0.dist-info/METADATA": "Name: jmespath\nVersion: 1.1.0\n",
    "jmespath-1.1.0.data/scripts/jp.py": "print('jp')\n",
    "jmespath-1.1.0.dist-info/WHEEL": "Wheel-Version: 1.0\n",
    "typing_extensions.py": "X = 1\n",
}
FAKE_KEPT = {
    "app.py", "chalicelib/__init__.py", "chalicelib/access.toml", "chalicelib/thing.py",
    "aws_lambda_powertools/__init__.py", "aws_lambda_powertools/logging/__init__.py",
    "aws_lambda_powertools/shared/functions.py", "aws_lambda_powertools/utilities/__init__.py",
    "aws_lambda_powertools/utilities/parameters/__init__.py",
    "aws_lambda_powertools/utilities/jmespath_utils/__init__.py",  # imports jmespath: the runtime's
    "aws_lambda_powertools-3.37.0.dist-info/METADATA", "aws_lambda_powertools-3.37.0.dist-info/licenses/LICENSE",
    "slack_sdk/__init__.py", "slack_sdk/web/__init__.py", "slack_sdk/web/client.py", "typing_extensions.py",
}


def make_zip(path: Path, files: dict[str, str | bytes], mode: int = 0o644) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():  # dict order, not sorted: slim() must sort
            info = zipfile.ZipInfo(name, date_time=CHALICE_DATE)
            info.external_attr = ((0o755 if name == "app.py" else mode) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
    return path


@pytest.fixture
def fake_zip(tmp_path):
    return make_zip(tmp_path / "deployment.zip", FAKE)


def test_slim_drops_what_is_never_imported_and_keeps_the_rest(fake_zip):
    result = slim(fake_zip, RUNTIME)
    with zipfile.ZipFile(fake_zip) as z:
        names = z.namelist()
        infos = {i.filename: i for i in z.infolist()}
    py = {n for n in FAKE_KEPT if n.endswith(".py")}
    own = {n for n in py if pkg.is_own(n)}
    models = {"botocore_models/lambda/2015-03-31/service-2.json", "botocore_models/ssm/2014-11-06/service-2.json",
              "botocore_models/dynamodb/2012-08-10/service-2.json"}
    # our code: source and __pycache__ bytecode; the dependencies: bytecode in the source's place
    assert set(names) == (FAKE_KEPT - (py - own)) | {pkg.pyc_path(n) for n in own} \
        | {pkg.sourceless_path(n) for n in py - own} | models  # + the trimmed models (0007)
    assert own == {"app.py", "chalicelib/__init__.py", "chalicelib/thing.py"}
    assert names == sorted(names)
    assert result.pyc == len(py) == 13 and result.files == len(names)
    assert result.dropped_files == len(FAKE) - len(FAKE_KEPT)
    for name, info in infos.items():  # Chalice's dates and modes, on the pyc too
        assert info.date_time == CHALICE_DATE, name
        want = 0o755 if name in ("app.py", f"__pycache__/app.{TAG}.pyc") else 0o644
        assert info.external_attr >> 16 == 0o100000 | want, name


def test_pyc_sit_where_the_importer_looks_and_are_unchecked_hash(fake_zip):
    slim(fake_zip, RUNTIME)
    with zipfile.ZipFile(fake_zip) as z:
        names = set(z.namelist())
        for name in (n for n in FAKE_KEPT if n.endswith(".py")):
            own = pkg.is_own(name)
            if own:
                expected = importlib.util.cache_from_source(name) if sys.pycache_prefix is None \
                    else pkg.pyc_path(name)
                assert pkg.pyc_path(name) == expected
            else:  # a dependency: its bytecode where its source was, and no source
                expected = pkg.sourceless_path(name)
                assert name not in names and pkg.pyc_path(name) not in names, name
            data, source = z.read(expected), FAKE[name].encode()
            assert data[:4] == importlib.util.MAGIC_NUMBER, name
            # PEP 552: flags 0b01 = hash-based, source not checked; then the source's hash
            assert int.from_bytes(data[4:8], "little") == 0b01, name
            assert data[8:16] == importlib.util.source_hash(source), name


def test_a_dependency_imports_from_its_bytecode_alone(fake_zip, tmp_path):
    """Python imports a sourceless module (``x.pyc`` where ``x.py`` would be), the way the
    dependencies ship; its traceback still names the file and line."""
    slim(fake_zip, RUNTIME)
    task = tmp_path / "task"
    zipfile.ZipFile(fake_zip).extractall(task)
    assert not (task / "typing_extensions.py").exists()
    out = subprocess.run([sys.executable, "-S", "-B", "-c",
                          "import typing_extensions, slack_sdk; print(typing_extensions.X, typing_extensions.__file__)"],
                         cwd=task, env={"PYTHONPATH": str(task), "PATH": os.environ.get("PATH", "")},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", str(task / "typing_extensions.pyc")]


def test_python_runs_the_bytecode_without_looking_at_the_source(fake_zip, tmp_path):
    """An unchecked pyc is used as is: change the unpacked source after slimming and the
    module still says what the zip's bytecode says. A traceback still names the real file
    and line (the source stays in the zip for that)."""
    slim(fake_zip, RUNTIME)
    task = tmp_path / "task"
    zipfile.ZipFile(fake_zip).extractall(task)
    thing = task / "chalicelib" / "thing.py"
    thing.write_text(thing.read_text().replace('"source"', '"edited source"'))
    os.utime(thing, (2_000_000_000, 2_000_000_000))  # a timestamp pyc would now be stale
    before = sorted(task.rglob("*"))
    for p in [task, *before]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        code = ("import sys, traceback, chalicelib.thing as t\n"
                "print(t.WHERE, t.__cached__.startswith(sys.argv[1]))\n"
                "try:\n    t.fail()\nexcept RuntimeError:\n    traceback.print_exc()\n")
        out = subprocess.run([sys.executable, "-S", "-c", code, str(task)], cwd=task, capture_output=True,
                             text=True, env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(task)},
                             timeout=60)
    finally:
        for p in [task, *task.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["source", "True"]
    assert f'File "{thing}", line 5, in fail' in out.stderr
    assert sorted(task.rglob("*")) == before  # nothing compiled, nothing written


def test_slim_refuses_bytecode_for_another_python(fake_zip):
    before = fake_zip.read_bytes()
    other = f"python{sys.version_info.major}.{sys.version_info.minor + 1}"
    with pytest.raises(PackageError, match=rf"runtime is {re.escape(other)} but this is cpython {RUNTIME}"):
        slim(fake_zip, other)
    assert fake_zip.read_bytes() == before


def test_slim_refuses_kept_code_that_imports_a_dropped_tree(tmp_path):
    files = {**FAKE, "slack_sdk/web/client.py": (
        "class WebClient:\n    def socket(self):\n        from ..socket_mode import SocketModeClient\n"
        "        return SocketModeClient\n")}
    zpath = make_zip(tmp_path / "deployment.zip", files)
    before = zpath.read_bytes()
    with pytest.raises(PackageError) as exc:
        slim(zpath, RUNTIME)
    assert "slack_sdk.web.client line 3 imports slack_sdk.socket_mode" in str(exc.value)
    assert "event_handler" not in str(exc.value)  # the explained one (DANGLING_OK) is not reported
    assert zpath.read_bytes() == before


def _contents(zpath: Path) -> list[tuple[str, int, bytes | object]]:
    """(name, mode, content) per entry; a pyc's content is its header and its code object
    (marshal may flag a string as interned in one process and not in another)."""
    with zipfile.ZipFile(zpath) as z:
        return [(i.filename, i.external_attr, (data[:16], marshal.loads(data[16:])) if i.filename.endswith(".pyc")
                 else data) for i in z.infolist() for data in [z.read(i)]]


def test_slim_again_changes_nothing(fake_zip):
    slim(fake_zip, RUNTIME)
    once = _contents(fake_zip)
    result = slim(fake_zip, RUNTIME)
    assert _contents(fake_zip) == once
    assert result.pyc == 13  # the old pyc were replaced, not kept beside new ones


@pytest.mark.parametrize("sam, want", [
    ({"Resources": {"A": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": "python3.11"}},
                    "T": {"Type": "AWS::DynamoDB::Table", "Properties": {}}}}, "python3.11"),
    ({"Globals": {"Function": {"Runtime": "python3.12"}},
      "Resources": {"A": {"Type": "AWS::Serverless::Function", "Properties": {}}}}, "python3.12"),
    ({"Resources": {"A": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": "python3.11"}},
                    "B": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": "python3.12"}}}}, None),
])
def test_the_runtime_comes_from_sam_json(sam, want):
    if want is None:
        with pytest.raises(PackageError, match="one Lambda runtime"):
            pkg.lambda_runtime(sam)
    else:
        assert pkg.lambda_runtime(sam) == want


def test_over_the_goal_names_the_size_and_the_biggest_parts(fake_zip):
    slim(fake_zip, RUNTIME)
    size = fake_zip.stat().st_size
    assert pkg.size_problems(fake_zip, goal=size) == []
    [problem] = pkg.size_problems(fake_zip, goal=size - 1)
    assert f"{size:,} bytes" in problem and "goal" in problem
    parts = dict(pkg.largest_parts(fake_zip, 50))
    assert set(parts) == {"app", "chalicelib", "aws_lambda_powertools", "aws_lambda_powertools (metadata)",
                          "slack_sdk", "typing_extensions", "botocore_models"}
    assert f"{pkg.largest_parts(fake_zip, 1)[0][0]} " in problem
    assert pkg.ZIP_GOAL_BYTES == 1_500_000


# --- a zip laid out as `chalice package` lays it out, from this virtualenv ----------------

def _distributions() -> list[str]:
    """requirements.txt and what it requires (no extras), less what Lambda provides."""
    names = [line.split("==")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    seen: list[str] = []
    while names:
        name = names.pop()
        if name.lower() in seen or name.lower().replace("-", "_") in pkg.RUNTIME_PROVIDED:
            continue
        seen.append(name.lower())
        for req in importlib.metadata.requires(name) or []:
            if "extra ==" not in req:
                names.append(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0])
    return seen


@pytest.fixture(scope="module")
def chalice_like_zip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chalice-like")
    files: dict[str, bytes] = {"app.py": (ROOT / "app.py").read_bytes(),
                               "chalicelib/access.toml": (ROOT / "policies" / "access.toml").read_bytes()}
    for path in sorted((ROOT / "chalicelib").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[str(path.relative_to(ROOT))] = path.read_bytes()
    chalice = Path(importlib.util.find_spec("chalice").origin).parent
    for name in ("__init__.py", "app.py"):  # Chalice's runtime: what `chalice package` adds
        files[f"chalice/{name}"] = (chalice / name).read_bytes()
    dists = _distributions()
    assert {"aws-lambda-powertools", "slack-sdk"} <= set(dists)
    for dist in dists:
        for f in importlib.metadata.files(dist):
            if not str(f).startswith("..") and "__pycache__" not in f.parts and f.suffix != ".pyc":
                files[str(f)] = f.locate().read_bytes()
    unslimmed = make_zip(tmp / "chalice.zip", files)
    slimmed = tmp / "deployment.zip"
    slimmed.write_bytes(unslimmed.read_bytes())
    return unslimmed, slimmed, slim(slimmed, RUNTIME)


def test_the_slimmed_zip_imports_from_its_bytecode_with_only_what_lambda_provides(chalice_like_zip, capsys):
    unslimmed, slimmed, result = chalice_like_zip
    assert result.pyc > 100 and result.after_bytes < result.before_bytes
    with zipfile.ZipFile(slimmed) as z:
        names = set(z.namelist())
    assert not any(n.startswith(("aws_lambda_powertools/event_handler/", "slack_sdk/socket_mode/", "slack/"))
                   for n in names)
    assert "aws_lambda_powertools/utilities/parameters/ssm.pyc" in names  # a dependency: bytecode alone
    assert "chalicelib/handlers.py" in names and pkg.pyc_path("chalicelib/handlers.py") in names

    report = pkg.smoke_import(slimmed)
    loaded = {m["module"] for m in report["loaded"]}
    assert {"app", "chalicelib.handlers", "chalicelib.wiring", *pkg.LAZY_IMPORTS} <= loaded
    assert report["compiled"] == []
    assert all(m["cached"] in names for m in report["loaded"])
    files = {m["module"]: m["file"] for m in report["loaded"]}
    assert files["slack_sdk"] == "slack_sdk/__init__.pyc" and files["app"] == "app.py"
    assert "smoke import ok" in capsys.readouterr().out


def test_the_smoke_import_fails_a_zip_without_bytecode(chalice_like_zip):
    unslimmed, _, _ = chalice_like_zip
    with pytest.raises(PackageError) as exc:
        pkg.smoke_import(unslimmed)
    problems = str(exc.value)
    assert "compiled at import (no usable bytecode in the zip): app.py" in problems
    assert "have no __cached__ pyc in it: app" in problems
    assert "does not read the zip's trimmed models for dynamodb, ssm, lambda" in problems  # nor the models (0007)


def test_the_smoke_import_fails_when_slim_drops_too_much(chalice_like_zip, tmp_path):
    """A DROP that took what a handler imports lazily (here slack_sdk.signature, which only
    chalicelib/slack/verify.py imports, inside is_valid) fails the package, not Lambda."""
    _, slimmed, _ = chalice_like_zip
    broken = tmp_path / "deployment.zip"
    with zipfile.ZipFile(slimmed) as src, zipfile.ZipFile(broken, "w") as out:
        for info in src.infolist():
            if not info.filename.startswith("slack_sdk/signature/"):
                out.writestr(info, src.read(info))
    with pytest.raises(PackageError, match="No module named 'slack_sdk.signature'"):
        pkg.smoke_import(broken)
