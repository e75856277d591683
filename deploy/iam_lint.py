"""parliament on IAM policy documents, with deploy/parliament.yaml's narrow exceptions.

Runs parliament's own auditors and its community auditors (privilege escalation,
credentials exposure, permissions management) as a library. The exceptions use
parliament's documented ``--config`` format (``<FINDING>: ignore_locations: [...]``,
each location a set of regexes that must all fullmatch, case-insensitively), but are
applied here: parliament 1.6.4's CLI never honours ``ignore_locations`` (its
``make_list`` turns plain YAML strings and lists into ``[]``, so nothing ever matches).

An exception that no longer matches any finding fails the run as well, so the list
cannot silently outlive what it was written for.

    python -m deploy.iam_lint [--config deploy/parliament.yaml] FILE...
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

DEFAULT_CONFIG = Path(__file__).resolve().parent / "parliament.yaml"
SEVERITIES = ["MUTE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]


def _matches(location: dict, ignore: dict) -> bool:
    for key, patterns in ignore.items():
        patterns = patterns if isinstance(patterns, list) else [patterns]
        value = str(location.get(key, "")).lower()
        if not any(re.fullmatch(str(p).lower(), value) for p in patterns):
            return False
    return True


def lint(paths: list[str], config_path: Path = DEFAULT_CONFIG) -> tuple[list, list[str]]:
    """(findings left after the exceptions, exceptions that matched nothing)."""
    import parliament

    community = Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"
    parliament.override_config(str(community))
    ignores = yaml.safe_load(config_path.read_text()) or {}
    used: set[tuple[str, int]] = set()
    left = []
    for path in paths:
        policy = parliament.analyze_policy_string(Path(path).read_text(), path, include_community_auditors=True,
                                                  config=parliament.config)
        for finding in policy.findings:
            finding = parliament.enhance_finding(finding)
            if SEVERITIES.index(finding.severity) < SEVERITIES.index("LOW"):
                continue
            hits = [i for i, ign in enumerate((ignores.get(finding.issue) or {}).get("ignore_locations") or [])
                    if _matches(finding.location, ign)]
            if hits:
                used.update((finding.issue, i) for i in hits)
                continue
            left.append(finding)
    stale = [f"{issue}.ignore_locations[{i}]: {ign}"
             for issue, settings in ignores.items()
             for i, ign in enumerate((settings or {}).get("ignore_locations") or [])
             if (issue, i) not in used]
    return left, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.iam_lint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    left, stale = lint(args.files, args.config)
    for f in left:
        print(f"{f.severity} {f.issue}: {f.title} {f.detail or ''} {f.location}")
    for s in stale:
        print(f"stale exception in {args.config}: {s}")
    if left or stale:
        return 1
    for path in args.files:
        print(f"   ok  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
