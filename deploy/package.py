"""`make package STAGE=dev|prod`: build build/<stage>/ (sam.json + deployment.zip) for one stage.

Steps, each printed as it runs:

1. validate policies/access.toml (the same loader the service uses);
2. render .chalice/policy-<stage>*.json (deploy/render.py) and build/merge-<stage>.json;
3. copy the catalog into chalicelib/access.toml (so it ships in the zip), run
   ``chalice package --stage <stage> --merge-template build/merge-<stage>.json build/<stage>``,
   then remove the copy again (it is git-ignored either way);
4. slim the zip (``slim``): drop the trees the code never imports (``DROP``) and add
   unchecked-hash bytecode for everything kept, so a cold start compiles nothing
   (docs/decisions/0006-lambda-package.md);
5. check the result: every resource the merge template touched exists in Chalice's
   template (a renamed logical id would otherwise leave a half resource behind), the
   AssumeRole* rule carries its state and dead-letter queue, boto3/botocore are not in
   the zip, the zip is within ``ZIP_GOAL_BYTES``, and every chalicelib module imports
   from the unpacked, read-only zip with nothing but the standard library and what the
   Lambda runtime provides (boto3 and its dependencies), from the zip's bytecode.

Needs a Region (``--region``, from AWS_REGION / AWS_DEFAULT_REGION in the Makefile) and,
the first time, PyPI to fetch the Lambda wheels; nothing else, and no AWS credentials.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fnmatch
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from deploy import botocore_models, render

ROOT = render.ROOT
PACKAGED_CATALOG = ROOT / "chalicelib" / "access.toml"
#: what the Lambda runtime provides; shipping it would add ~17 MB and shadow the runtime's copy
FORBIDDEN_IN_ZIP = ("boto3/", "botocore/", "s3transfer/")
#: the deployed zip, bytecode included, in bytes (issue 14: 1.5 MB); `make package` fails above it
ZIP_GOAL_BYTES = 1_500_000
#: a zip this big means something that does not belong there got in (boto3 alone is ~17 MB)
ZIP_LIMIT_BYTES = 8 * 1024 * 1024


class PackageError(Exception):
    pass


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def zip_report(zip_path: Path) -> tuple[int, list[str]]:
    """(size in bytes, forbidden top-level packages found)."""
    with zipfile.ZipFile(zip_path) as z:
        bad = sorted({n.split("/")[0] for n in z.namelist() if n.startswith(FORBIDDEN_IN_ZIP)})
    return zip_path.stat().st_size, bad


def part_of(name: str) -> str:
    """The part of the zip a path belongs to: its top-level package or module (bytecode
    included); a distribution's metadata (``*.dist-info``, ``*.data``) is ``<name> (metadata)``."""
    head, _, rest = name.partition("/")
    if head.endswith((".dist-info", ".data")):
        return head.split("-", 1)[0] + " (metadata)"
    if head == "__pycache__":  # a top-level module's bytecode: __pycache__/app.cpython-311.pyc
        head = rest.split(".", 1)[0]
    return head.removesuffix(".pyc").removesuffix(".py")


def largest_parts(zip_path: Path, n: int = 5) -> list[tuple[str, int]]:
    """The ``n`` biggest parts of the zip (``part_of``), compressed bytes, biggest first."""
    sizes: Counter = Counter()
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            sizes[part_of(info.filename)] += info.compress_size
    return sizes.most_common(n)


def describe_parts(parts: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in parts)


# --- slim: what the code never imports out, bytecode in -----------------------------------
#
# What slim() drops from Chalice's zip: whole trees the code never imports. Measured, not
# guessed (docs/decisions/0006-lambda-package.md): none of these modules is in sys.modules
# of any process of the test suite (chalice local, the benchmarks' cold requests, the chaos
# runs), and the whole suite passes with them gone. fnmatch patterns over zip paths (``*``
# also matches ``/``); KEEP wins over DROP. What is not named stays: a new version of a
# dependency can make the zip bigger (ZIP_GOAL_BYTES catches that), not break an import.
DROP = (
    # Powertools: we use Logger, metrics.single_metric and utilities.parameters
    "aws_lambda_powertools/event_handler/*",    # API Gateway/ALB/AppSync routers, OpenAPI, Swagger UI: Chalice routes
    "aws_lambda_powertools/utilities/*",        # batch, idempotency, parser, data_classes... (KEEP: what we use)
    "aws_lambda_powertools/middleware_factory/*",         # handler decorators
    "aws_lambda_powertools/metrics/provider/datadog/*",   # Datadog metrics; ours are CloudWatch EMF
    # slack-sdk: we use the synchronous WebClient, models.blocks, signature, errors, http_retry
    "slack/*",                                  # the deprecated `slack` package its wheel still ships
    "slack_sdk/socket_mode/*", "slack_sdk/rtm/*", "slack_sdk/rtm_v2/*",     # websocket clients
    "slack_sdk/oauth/*", "slack_sdk/audit_logs/*", "slack_sdk/scim/*",      # other Slack APIs
    "slack_sdk/*async_*", "slack_sdk/aiohttp_version_checker.py",           # asyncio/aiohttp variants
    "slack_sdk/web/legacy_*",                   # the pre-3.0 `slack.WebClient` compatibility layer
    "slack_sdk/models/dialo*",                  # legacy dialogs (dialoags.py: the old misspelt alias)
    # wheel bookkeeping (RECORD would list files dropped here); METADATA and licenses stay
    "*.dist-info/RECORD", "*.dist-info/WHEEL", "*.dist-info/INSTALLER", "*.dist-info/REQUESTED",
    "*.dist-info/top_level.txt", "*.dist-info/direct_url.json",
    "*.data/*",                                 # scripts (jmespath's jp.py): nothing runs them in Lambda
    # jmespath (Powertools' Logger needs it): the runtime has it, as botocore's own dependency
    # (RUNTIME_PROVIDED), like boto3 itself; the zip's copy was 0.05 MB of the 1.5 MB goal
    "jmespath/*", "jmespath-*.dist-info/*",
    "*/py.typed", "*.pyi",                      # for type checkers only
)
KEEP = (
    "aws_lambda_powertools/utilities/__init__.py",
    "aws_lambda_powertools/utilities/parameters/*",      # chalicelib/wiring.py: Slack secrets from SSM
    "aws_lambda_powertools/utilities/jmespath_utils/*",  # imported by Powertools' Logger itself
)
#: Imports of a dropped module left in kept code (found by reading every kept module, lazy
#: imports in functions included), each with why it cannot run here. slim() refuses any
#: other: a lazy import into a dropped tree would fail in Lambda only, on the path reaching it.
DANGLING_OK = {
    ("aws_lambda_powertools.shared.functions", "aws_lambda_powertools.event_handler.openapi.compat"):
        "pydantic_to_dict(): pydantic models only; the code has none, and pydantic is not in the zip",
}


def dropped(name: str) -> bool:
    """Whether slim() leaves this zip path out. Bytecode always goes (a zip slimmed before, or
    a stray pyc): slim() compiles its own for everything kept."""
    if name.endswith(".pyc"):
        return True
    return (any(fnmatch.fnmatchcase(name, p) for p in DROP)
            and not any(fnmatch.fnmatchcase(name, p) for p in KEEP))


def module_name(path: str) -> str | None:
    """``a/b/c.py`` -> ``a.b.c``, ``a/b/__init__.py`` -> ``a.b``; None if not importable."""
    if not path.endswith(".py"):
        return None
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imported_names(source: bytes, module: str, is_package: bool) -> list[tuple[str, int]]:
    """Every module name ``source`` may import, anywhere in it (functions included, ``if
    TYPE_CHECKING:`` blocks excluded), with its line; ``from a import b`` gives ``a`` and ``a.b``."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")[: None if is_package else -1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append((target, child.lineno))
                found.extend((f"{target}.{alias.name}", child.lineno) for alias in child.names)
            visit(child)

    visit(ast.parse(source))
    return found


def dangling_imports(sources: dict[str, bytes], gone: set[str]) -> list[tuple[str, str, int]]:
    """(importer, dropped module, line) for each import of a module in ``gone`` by a module
    in ``sources`` (zip path -> source), less the explained ones in DANGLING_OK."""
    found = []
    for path, source in sorted(sources.items()):
        module = module_name(path)
        if module is None:
            continue
        for target, line in imported_names(source, module, path.endswith("/__init__.py")):
            if target in gone and (module, target) not in DANGLING_OK:
                found.append((module, target, line))
    return sorted(set(found))


def lambda_runtime(sam: dict) -> str:
    """The one Lambda runtime the functions in a SAM template use (e.g. ``python3.11``)."""
    default = sam.get("Globals", {}).get("Function", {}).get("Runtime")
    runtimes = {r.get("Properties", {}).get("Runtime", default) for r in sam.get("Resources", {}).values()
                if r.get("Type") == "AWS::Serverless::Function"}
    runtimes.discard(None)
    if len(runtimes) != 1:
        raise PackageError(f"sam.json should name one Lambda runtime for all functions, not {sorted(runtimes)}")
    return runtimes.pop()


def check_interpreter(runtime: str) -> None:
    """Bytecode is only good for the Python that wrote it: refuse to compile for another."""
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if runtime != here or sys.implementation.name != "cpython":
        raise PackageError(
            f"the Lambda runtime is {runtime} but this is {sys.implementation.name} {here}: bytecode "
            f"compiled here would not match Lambda's (Python ignores it and compiles every module at "
            f"each cold start). Package from a {runtime} virtualenv (`chalice package` targets the "
            "Python it runs on).")


#: the zip's own code: its sources stay beside their bytecode (tracebacks show our lines);
#: everything else (the dependencies) is shipped as bytecode alone (``sourceless_path``)
OWN_CODE = ("app.py", "chalicelib/")


def is_own(path: str) -> bool:
    return path == OWN_CODE[0] or path.startswith(OWN_CODE[1:])


def sourceless_path(source_path: str) -> str:
    """Where a dependency's bytecode goes when its source does not ship: in the source's
    place (``a/b.py`` -> ``a/b.pyc``), which Python imports with no source beside it."""
    return source_path[:-3] + ".pyc"


def pyc_path(source_path: str) -> str:
    """Where Lambda's Python looks for a source's bytecode: ``a/__pycache__/b.cpython-311.pyc``
    (importlib.util.cache_from_source without this machine's PYTHONPYCACHEPREFIX)."""
    head, _, name = source_path.rpartition("/")
    return f"{head + '/' if head else ''}__pycache__/{name[:-3]}.{sys.implementation.cache_tag}.pyc"


@dataclass(frozen=True)
class Slimmed:
    before_bytes: int
    after_bytes: int
    dropped_files: int
    dropped_bytes: int  # compressed, as they were in Chalice's zip
    files: int
    pyc: int


def slim(zip_path: Path, runtime: str) -> Slimmed:
    """Rewrite the zip ``chalice package`` built: without what DROP names, and with
    bytecode for every kept module, so Lambda's read-only /var/task needs no compiling at
    cold start. Our own code (``OWN_CODE``) keeps its sources, for tracebacks, with
    unchecked-hash bytecode beside them (``__pycache__/<name>.cpython-3XX.pyc``): unchecked
    hash because the loader then never compares the source's mtime (zip times have 2-second
    resolution and Lambda does not promise to keep them) nor hashes the source: it just
    loads the pyc. The dependencies ship as bytecode alone, in their sources' place
    (``sourceless_path``: about 0.3 MB less; their tracebacks name file and line without
    the line's text). Entries are written sorted, with Chalice's dates and modes."""
    check_interpreter(runtime)
    before = zip_path.stat().st_size
    with zipfile.ZipFile(zip_path) as z:
        infos = z.infolist()
        data = {info.filename: z.read(info) for info in infos}
    # a dependency's bytecode a slim() before put in its source's place stays as it is
    done = {n for n in data if n.endswith(".pyc") and "__pycache__/" not in n and n[:-1] not in data
            and not is_own(n) and not dropped(n[:-1])}
    kept = [i for i in infos if (i.filename in done or not dropped(i.filename))
            and not i.filename.startswith(botocore_models.DIRNAME + "/")]  # (re)made below
    gone = [i for i in infos if dropped(i.filename) and i.filename not in done]
    # a runtime-provided package dropped from the zip is still importable in Lambda
    gone_modules = {m for m in map(module_name, (i.filename for i in gone))
                    if m and m.split(".")[0] not in RUNTIME_PROVIDED}
    dangling = dangling_imports({i.filename: data[i.filename] for i in kept if i.filename.endswith(".py")},
                                gone_modules)
    if dangling:
        raise PackageError("kept code imports what slim() drops (keep it: deploy/package.py KEEP, or explain "
                           "in DANGLING_OK why that line can never run):\n" + "\n".join(
                               f"    {importer} line {line} imports {target}" for importer, target, line in dangling))

    entries: list[tuple[zipfile.ZipInfo, bytes]] = []
    with tempfile.TemporaryDirectory(prefix="drawbridge-slim-") as tmp:
        for info in kept:
            if info.filename in done:
                entries.append((_entry(info.filename, info), data[info.filename]))
                continue
            module = module_name(info.filename) is not None
            own = is_own(info.filename)
            if own or not module:
                entries.append((_entry(info.filename, info), data[info.filename]))
            if not module:
                continue
            pyc = pyc_path(info.filename) if own else sourceless_path(info.filename)
            source, target = Path(tmp, info.filename), Path(tmp, pyc)
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_bytes(data[info.filename])
            try:
                py_compile.compile(str(source), cfile=str(target), dfile=info.filename, doraise=True, optimize=0,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            except py_compile.PyCompileError as exc:
                raise PackageError(f"{info.filename} does not compile on {runtime}: {exc.msg}") from exc
            entries.append((_entry(pyc, info), target.read_bytes()))
        # SSM's and Lambda's service models cut to the calls the code makes (decision 0007)
        like = next(i for i in kept if i.filename == "app.py")
        for path in botocore_models.write(Path(tmp, "models")):
            info = _entry(path.relative_to(Path(tmp, "models")).as_posix(), like)
            info.external_attr = (0o100644 & 0xFFFF) << 16  # data, not executable
            entries.append((info, path.read_bytes()))

    partial = zip_path.with_name(zip_path.name + ".slim")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for info, payload in sorted(entries, key=lambda e: e[0].filename):
            out.writestr(info, payload)
    os.replace(partial, zip_path)
    return Slimmed(before_bytes=before, after_bytes=zip_path.stat().st_size, dropped_files=len(gone),
                   dropped_bytes=sum(i.compress_size for i in gone), files=len(entries),
                   pyc=sum(1 for info, _ in entries if info.filename.endswith(".pyc")))


def _entry(name: str, like: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """A fresh entry named ``name`` with ``like``'s date and file mode (Chalice's)."""
    info = zipfile.ZipInfo(name, date_time=like.date_time)
    info.external_attr, info.create_system = like.external_attr, like.create_system
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


# --- smoke import: the unpacked zip, as Lambda runs it ---------------------------------------

#: what the Lambda Python runtime provides besides the standard library
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
#: what the handlers import on first use besides chalicelib (wiring.py, log.py, slack/verify.py,
#: slack/views.py, adapters/slack_notifier.py): what a too-eager DROP would break in Lambda only
LAZY_IMPORTS = (
    "chalice", "slack_sdk", "slack_sdk.models.blocks", "slack_sdk.signature", "slack_sdk.errors",
    "slack_sdk.http_retry.builtin_handlers", "aws_lambda_powertools", "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics", "aws_lambda_powertools.utilities.parameters",
)
#: the environment of a smoke import: local settings, and AWS pointed at a closed loopback
#: port with dummy keys, so nothing could ever reach AWS
SMOKE_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "smoke", "AWS_SECRET_ACCESS_KEY": "smoke",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_EC2_METADATA_DISABLED": "true",
    "DRAWBRIDGE_TABLE": "drawbridge-smoke", "SLACK_SIGNING_SECRET": "smoke-signing-secret",
    "SLACK_BOT_TOKEN": "xoxb-smoke", "SLACK_API_URL": "http://127.0.0.1:9/api/",
    "POWERTOOLS_SERVICE_NAME": "drawbridge", "POWERTOOLS_METRICS_NAMESPACE": "Drawbridge",
}

SMOKE = r"""
import importlib.machinery
COMPILED = []
_source_to_code = importlib.machinery.SourceFileLoader.source_to_code
def _compiling(self, data, path, *, _optimize=-1):
    COMPILED.append(path)  # the loader only gets here when it has no usable bytecode
    return _source_to_code(self, data, path, _optimize=_optimize)
importlib.machinery.SourceFileLoader.source_to_code = _compiling

import hashlib, hmac, importlib, json, os, pkgutil, sys, time
import app
import chalicelib
for m in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    importlib.import_module(m.name)
for name in sys.argv[1:]:
    importlib.import_module(name)
from chalicelib import handlers, wiring
from chalicelib.catalog import load_catalog
from chalicelib.log import logger, metric
assert wiring.PACKAGED_CATALOG.exists(), "the catalog is not in the zip"
load_catalog(wiring.PACKAGED_CATALOG)
metric("PackageSmoke")
wiring.slack_client("xoxb-smoke", "http://127.0.0.1:9/api/")
# which service models botocore reads: the zip's trimmed ones, if any (decision 0007)
TRIMMED = {name: wiring.aws_client(name).meta.service_model.operation_names for name in ("dynamodb", "ssm", "lambda")}

def event(body, secret):
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": sig}
    return {"resource": "/slack/commands", "path": "/slack/commands", "httpMethod": "POST", "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()}, "queryStringParameters": None,
            "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
            "body": body, "isBase64Encoded": False,
            "requestContext": {"resourcePath": "/slack/commands", "httpMethod": "POST", "stage": "api",
                               "path": "/api/slack/commands", "requestId": "smoke",
                               "identity": {"sourceIp": "127.0.0.1"}}}

class Context:
    function_name, aws_request_id, memory_limit_in_mb = "drawbridge-smoke", "smoke", 256
    def get_remaining_time_in_millis(self):
        return 10_000

# the API handler as Lambda calls it; neither request gets as far as AWS
bad = app.app(event("command=%2Faws-access&text=help", "not-the-secret"), Context())
assert bad["statusCode"] == 401, bad
unreadable = app.app(event("command=%2Faws-access&text=help", os.environ["SLACK_SIGNING_SECRET"]), Context())
assert unreadable["statusCode"] == 200 and "could not read" in unreadable["body"], unreadable
assert handlers.worker({"jobs": []}) == {"jobs": 0, "failed": []}

task = os.getcwd() + os.sep
# from source with its bytecode (our code), or from bytecode alone (a dependency: __file__
# and __cached__ are the .pyc)
loaded = [{"module": n, "file": m.__file__[len(task):], "cached": (m.__cached__ or "")[len(task):]}
          for n, m in sorted(sys.modules.items())
          if (getattr(m, "__file__", None) or "").startswith(task) and m.__file__.endswith((".py", ".pyc"))]
print("SMOKE_REPORT " + json.dumps({"modules": len(sys.modules), "loaded": loaded, "trimmed": TRIMMED,
                                    "compiled": [p[len(task):] for p in COMPILED if p.startswith(task)]}))
"""


@contextlib.contextmanager
def lambda_tree(zip_path: Path, *, bytecode: bool = True, read_only: bool = True):
    """The zip unpacked as Lambda runs it: yields (task directory, environment for a
    ``python -S`` child started there). Its sys.path is the task directory, then what the
    runtime provides (symlinked from this interpreter's site-packages), then the standard
    library; nothing else. ``bytecode=False`` removes every ``__pycache__``; ``read_only``
    makes the tree read-only, as /var/task is (though root may still write)."""
    import importlib.util

    with tempfile.TemporaryDirectory(prefix="drawbridge-lambda-") as tmp:
        code_dir, runtime_dir = Path(tmp, "task"), Path(tmp, "runtime")
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(code_dir)
        if not bytecode:
            for cache in sorted(code_dir.rglob("__pycache__")):
                shutil.rmtree(cache)
        runtime_dir.mkdir()
        for name in RUNTIME_PROVIDED:
            spec = importlib.util.find_spec(name)
            if spec and spec.origin:
                src = Path(spec.origin)
                src = src.parent if src.name == "__init__.py" else src
                (runtime_dir / src.name).symlink_to(src)
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{code_dir}:{runtime_dir}", "HOME": tmp,
               **SMOKE_ENV}
        if read_only:
            _set_writable(code_dir, False)
        try:
            yield code_dir, env
        finally:
            _set_writable(code_dir, True)


def _set_writable(top: Path, writable: bool) -> None:
    for path in [top, *top.rglob("*")]:
        if not path.is_symlink():
            mode = 0o755 if path.is_dir() else 0o644
            path.chmod(mode if writable else mode & 0o555)


def _tree(top: Path) -> set[str]:
    return {str(p.relative_to(top)) for p in top.rglob("*")}


def smoke_import(zip_path: Path) -> dict:
    """Import every chalicelib module and what the handlers import lazily from the unpacked,
    read-only zip, as the Lambda runtime would (standard library + the zip + only what the
    runtime provides), and hand ``app.app`` two API Gateway events that need no AWS. Then
    check that nothing was compiled: no module went through the source compiler, every
    module loaded from the zip has its ``__cached__`` pyc in the zip, and no file appeared
    in the tree. Returns the child's report."""
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
    with lambda_tree(zip_path) as (code_dir, env):
        before = _tree(code_dir)
        # -S: no site-packages (not even this virtualenv's); the environment is only `env`,
        # so PYTHONDONTWRITEBYTECODE is unset: a module compiled here would also be written
        result = subprocess.run([sys.executable, "-S", "-c", SMOKE, *LAZY_IMPORTS], cwd=code_dir, env=env,
                                capture_output=True, text=True, timeout=300)
        appeared = sorted(_tree(code_dir) - before)
    if result.returncode != 0:
        raise PackageError("the packaged code does not import with only what Lambda provides:\n"
                           + result.stderr[-2000:])
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("SMOKE_REPORT ")), None)
    if line is None:
        raise PackageError("the smoke import printed no report:\n" + result.stdout[-2000:])
    report = json.loads(line.split(" ", 1)[1])
    problems = []
    if report["compiled"]:
        problems.append(f"{len(report['compiled'])} modules were compiled at import (no usable bytecode in "
                        f"the zip): {', '.join(report['compiled'][:5])}")
    no_pyc = [m["module"] for m in report["loaded"] if m["cached"] not in names]
    if no_pyc:
        problems.append(f"{len(no_pyc)} modules imported from the zip have no __cached__ pyc in it: "
                        f"{', '.join(no_pyc[:5])}")
    if appeared:
        problems.append(f"importing wrote into the task directory: {', '.join(appeared[:5])}")
    from deploy.botocore_models import TRIMMED

    untrimmed = [s for s, ops in TRIMMED.items() if sorted(report["trimmed"].get(s, [])) != sorted(ops)]
    if untrimmed:
        problems.append(f"botocore does not read the zip's trimmed models for {', '.join(untrimmed)} "
                        "(no botocore_models/ in the zip?)")
    if not any(m["module"] == "app" for m in report["loaded"]):
        problems.append("app was not imported from the zip")
    if problems:
        raise PackageError("\n".join(problems))
    print(f"    smoke import ok: {report['modules']} modules, {len(report['loaded'])} of them from the zip, "
          "each from its bytecode; a bad signature gets 401, a signed unreadable command 200, "
          "the worker runs an empty batch")
    return report


def check_template(sam: dict, merge: dict) -> list[str]:
    """Problems with the packaged template (empty when all is well)."""
    from chalicelib.event_pattern import ASSUME_ROLE_PATTERN, RULE_STATE

    problems = []
    resources = sam.get("Resources", {})
    for logical_id, fragment in merge["Resources"].items():
        if "Type" not in fragment and "Type" not in resources.get(logical_id, {}):
            problems.append(f"merge template touches {logical_id}, which Chalice did not generate "
                            "(did a logical id change? see deploy/render.py FUNCTIONS)")
    function_id, event_id = render.ROLE_ASSUMED_EVENT
    event = resources.get(function_id, {}).get("Properties", {}).get("Events", {}).get(event_id, {})
    props = event.get("Properties", {})
    if props.get("Pattern") != ASSUME_ROLE_PATTERN or props.get("State") != RULE_STATE:
        problems.append(f"{function_id}.{event_id}: pattern or state is not chalicelib.event_pattern's")
    want_dlq = merge["Resources"][function_id]["Properties"]["Events"][event_id]["Properties"]["DeadLetterConfig"]
    if props.get("DeadLetterConfig") != want_dlq:
        problems.append(f"{function_id}.{event_id}: the rule's target has no dead-letter queue")
    if render.ROLE_ASSUMED_ROLE not in resources:
        problems.append(f"no {render.ROLE_ASSUMED_ROLE} in Chalice's template: the dead-letter policy "
                        "would attach to nothing (see deploy/render.py ROLE_ASSUMED_ROLE)")
    return problems


def package(stage: str, region: str, out_root: Path = ROOT / "build") -> Path:
    from chalicelib.catalog import CatalogError, load_catalog

    started = time.monotonic()
    step(f"validate {render.CATALOG.relative_to(ROOT)}")
    try:
        catalog = load_catalog(render.CATALOG)
    except CatalogError as exc:
        raise PackageError(str(exc)) from exc
    account = render.account_id()
    if account != catalog.bastion_account_id:
        raise PackageError(f"BASTION_ACCOUNT_ID={account} but the catalog's bastion.account_id is "
                           f"{catalog.bastion_account_id}: grants would name the wrong account")

    step(f"render IAM policies for stage {stage} (account {account}, {region})")
    for path in render.write_policies(stage, account=account, region=region):
        print(f"    {path.relative_to(ROOT)}")
    merge_path = out_root / f"merge-{stage}.json"
    merge_path.parent.mkdir(parents=True, exist_ok=True)
    merge = render.merge_template(stage)
    merge_path.write_text(json.dumps(merge, indent=2) + "\n")
    print(f"    {merge_path.relative_to(ROOT)}")

    out_dir = out_root / stage
    if out_dir.exists():
        shutil.rmtree(out_dir)
    chalice = Path(sys.executable).with_name("chalice")
    cmd = [str(chalice), "package", "--stage", stage, "--merge-template", str(merge_path), str(out_dir)]
    step(" ".join([chalice.name, *cmd[1:]]).replace(str(ROOT) + "/", ""))
    shutil.copyfile(render.CATALOG, PACKAGED_CATALOG)
    try:
        subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "AWS_DEFAULT_REGION": region})
    except subprocess.CalledProcessError as exc:
        raise PackageError(f"chalice package failed (exit {exc.returncode})") from exc
    finally:
        PACKAGED_CATALOG.unlink(missing_ok=True)

    sam = json.loads((out_dir / "sam.json").read_text())
    zip_path = out_dir / "deployment.zip"
    runtime = lambda_runtime(sam)
    step(f"slim deployment.zip: drop what the code never imports, add {runtime} bytecode")
    slimmed = slim(zip_path, runtime)
    print(f"    dropped {slimmed.dropped_files} files ({slimmed.dropped_bytes / 1e6:.2f} MB compressed), "
          f"compiled {slimmed.pyc} modules (unchecked-hash pyc): {slimmed.before_bytes:,} -> "
          f"{slimmed.after_bytes:,} bytes")

    step("check the package")
    problems = check_template(sam, merge)
    size, bad = zip_report(zip_path)
    if bad:
        problems.append(f"deployment.zip contains {', '.join(bad)} (the Lambda runtime provides them; "
                        "keep them out of requirements.txt)")
    problems += size_problems(zip_path)
    if problems:
        raise PackageError("\n".join(problems))
    smoke_import(zip_path)
    print(f"    deployment.zip {size:,} bytes = {size / 1e6:.2f} MB = {size / 2**20:.2f} MiB (goal "
          f"{ZIP_GOAL_BYTES / 1e6:g} MB), {slimmed.files} files of which {slimmed.pyc} pyc, no boto3/botocore; "
          f"{len(sam['Resources'])} resources in sam.json")
    print(f"==> {out_dir.relative_to(ROOT)} ready in {time.monotonic() - started:.1f} s")
    return out_dir


def size_problems(zip_path: Path, goal: int | None = None) -> list[str]:
    """What is wrong with the zip's size: over the sanity limit, or over the goal
    (ZIP_GOAL_BYTES unless given)."""
    goal = ZIP_GOAL_BYTES if goal is None else goal
    size = zip_path.stat().st_size
    if size > ZIP_LIMIT_BYTES:
        return [f"deployment.zip is {size / 1e6:.1f} MB, over the {ZIP_LIMIT_BYTES / 1e6:.0f} MB sanity limit"]
    if size > goal:
        return [f"deployment.zip is {size:,} bytes ({size / 1e6:.2f} MB), over the {goal / 1e6:g} MB goal; "
                f"largest parts (compressed): {describe_parts(largest_parts(zip_path))}. Drop what the code "
                "never imports (DROP in deploy/package.py) or choose a lighter dependency "
                "(docs/decisions/0006-lambda-package.md)"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, choices=render.stages())
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    args = parser.parse_args(argv)
    if not args.region:
        print("error: no Region: set AWS_REGION (or pass REGION=... to make)", file=sys.stderr)
        return 2
    try:
        package(args.stage, args.region)
    except (PackageError, render.RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
