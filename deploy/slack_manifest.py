"""Print slack/manifest.yaml with the deployed API's URL filled in.

    python -m deploy.slack_manifest --url https://abc123.execute-api.eu-west-1.amazonaws.com/api/
    python -m deploy.slack_manifest --stack drawbridge-prod --region eu-west-1

With ``--stack`` the URL is the stack's ``EndpointURL`` output (what Chalice's template
exports; the same as ``aws cloudformation describe-stacks --stack-name drawbridge-prod
--query "Stacks[0].Outputs[?OutputKey=='EndpointURL'].OutputValue" --output text``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlparse

MANIFEST = Path(__file__).resolve().parents[1] / "slack" / "manifest.yaml"
PLACEHOLDER = "https://REPLACE-WITH-ENDPOINT-URL/"


class ManifestError(Exception):
    pass


def fill(url: str, template: str | None = None) -> str:
    """The manifest text with every placeholder URL replaced by ``url`` (the API base)."""
    parsed = urlparse(url)
    if parsed.scheme != "https" or not parsed.netloc:
        raise ManifestError(f"{url!r} is not an https URL (Slack only calls https)")
    if not url.endswith("/"):
        url += "/"
    text = MANIFEST.read_text() if template is None else template
    if PLACEHOLDER not in text:
        raise ManifestError(f"{MANIFEST} has no {PLACEHOLDER} placeholder")
    # the leading comment block is about the placeholders: leave it out of the filled copy
    lines = text.splitlines(keepends=True)
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "".join(lines).replace(PLACEHOLDER, url)


def endpoint_url(stack: str, region: str | None) -> str:
    import boto3

    cfn = boto3.client("cloudformation", region_name=region)
    outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    for out in outputs:
        if out["OutputKey"] == "EndpointURL":
            return out["OutputValue"]
    raise ManifestError(f"stack {stack} has no EndpointURL output (is it a Drawbridge stack?)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.slack_manifest", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="the API base URL (the stack's EndpointURL output)")
    source.add_argument("--stack", help="read EndpointURL from this CloudFormation stack")
    parser.add_argument("--region", help="the stack's Region (default: your AWS configuration)")
    args = parser.parse_args(argv)
    try:
        url = args.url or endpoint_url(args.stack, args.region)
        sys.stdout.write(fill(url))
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
