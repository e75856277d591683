"""`make package STAGE=dev|prod`: build build/<stage>/ (sam.json + deployment.zip) for one stage.

Steps, each printed as it runs:

1. validate policies/access.toml (the same loader the service uses);
2. render .chalice/policy-<stage>*.json (deploy/render.py) and build/merge-<stage>.json;
3. copy the catalog into chalicelib/access.toml (so it ships in the zip), run
   ``chalice package --stage <stage> --merge-template build/merge-<stage>.json build/<stage>``,
   then remove the copy again (it is git-ignored either way);
4. check the result: every resource the merge template touched exists in Chalice's
   template (a renamed logical id would otherwise leave a half resource behind), the
   AssumeRole* rule carries its state and dead-letter queue, boto3/botocore are not in
   the zip, and every chalicelib module imports from the unpacked zip with nothing but
   the standard library and what the Lambda runtime provides (boto3 and its dependencies).

Needs a Region (``--region``, from AWS_REGION / AWS_DEFAULT_REGION in the Makefile) and,
the first time, PyPI to fetch the Lambda wheels; nothing else, and no AWS credentials.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from deploy import render

ROOT = render.ROOT
PACKAGED_CATALOG = ROOT / "chalicelib" / "access.toml"
#: what the Lambda runtime provides; shipping it would add ~17 MB and shadow the runtime's copy
FORBIDDEN_IN_ZIP = ("boto3/", "botocore/", "s3transfer/")
ZIP_GOAL_BYTES = 3 * 1024 * 1024
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


#: what the Lambda Python runtime provides besides the standard library
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")

SMOKE = """
import importlib, pkgutil, sys
import app
import chalicelib
for m in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    importlib.import_module(m.name)
from chalicelib import wiring
from chalicelib.catalog import load_catalog
from chalicelib.log import logger
assert wiring.PACKAGED_CATALOG.exists(), "the catalog is not in the zip"
load_catalog(wiring.PACKAGED_CATALOG)
logger()
from aws_lambda_powertools.utilities import parameters
from slack_sdk import WebClient
print("    smoke import ok:", len(sys.modules), "modules")
"""


def smoke_import(zip_path: Path) -> None:
    """Import every chalicelib module from the unpacked zip, as the Lambda runtime would:
    standard library + the zip + only what the runtime provides (boto3 and its deps)."""
    import importlib.util
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        code_dir, runtime_dir = Path(tmp, "task"), Path(tmp, "runtime")
        zipfile.ZipFile(zip_path).extractall(code_dir)
        runtime_dir.mkdir()
        for name in RUNTIME_PROVIDED:
            spec = importlib.util.find_spec(name)
            if spec and spec.origin:
                src = Path(spec.origin)
                src = src.parent if src.name == "__init__.py" else src
                (runtime_dir / src.name).symlink_to(src)
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{code_dir}:{runtime_dir}",
               "AWS_DEFAULT_REGION": "us-east-1", "HOME": tmp}
        # -S: no site-packages (not even this virtualenv's), -E handled by passing env
        result = subprocess.run([sys.executable, "-S", "-c", SMOKE], cwd=code_dir, env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise PackageError("the packaged code does not import with only what Lambda provides:\n"
                               + result.stderr[-2000:])
        print(result.stdout.rstrip())


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

    step("check the package")
    sam = json.loads((out_dir / "sam.json").read_text())
    problems = check_template(sam, merge)
    size, bad = zip_report(out_dir / "deployment.zip")
    if bad:
        problems.append(f"deployment.zip contains {', '.join(bad)} (the Lambda runtime provides them; "
                        "keep them out of requirements.txt)")
    if size > ZIP_LIMIT_BYTES:
        problems.append(f"deployment.zip is {size / 1e6:.1f} MB, over the {ZIP_LIMIT_BYTES / 1e6:.0f} MB sanity limit")
    if problems:
        raise PackageError("\n".join(problems))
    smoke_import(out_dir / "deployment.zip")
    goal = "within" if size <= ZIP_GOAL_BYTES else "over"
    print(f"    deployment.zip {size / 1024 / 1024:.2f} MiB ({goal} the {ZIP_GOAL_BYTES // 1024 // 1024} MiB goal), "
          f"no boto3/botocore; {len(sam['Resources'])} resources in sam.json")
    print(f"==> {out_dir.relative_to(ROOT)} ready in {time.monotonic() - started:.1f} s")
    return out_dir


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
