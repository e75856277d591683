"""Facts from the access catalog that deployment steps need (docs/DEPLOY.md).

    python -m deploy.catalog_info iam-users     one IAM user name per line (put the boundary on them)
    python -m deploy.catalog_info role-arns     the target role ARNs, comma-separated
                                                (policies/bastion-iam.yaml AssumableRoleArns;
                                                `make bastion-iam` passes them itself)
    python -m deploy.catalog_info account-ids   one member account id per line (StackSet targets)

``--catalog PATH`` reads another file (default policies/access.toml).
"""

from __future__ import annotations

import argparse
import sys

from deploy.render import CATALOG


def main(argv: list[str] | None = None) -> int:
    from chalicelib.catalog import CatalogError, load_catalog

    parser = argparse.ArgumentParser(prog="python -m deploy.catalog_info", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["iam-users", "role-arns", "account-ids"])
    parser.add_argument("--catalog", default=str(CATALOG))
    args = parser.parse_args(argv)
    try:
        catalog = load_catalog(args.catalog)
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.what == "iam-users":
        print("\n".join(sorted({p.iam_user for p in catalog.people.values()})))
    elif args.what == "role-arns":
        print(",".join(sorted({r.role_arn for r in catalog.roles()})))
    else:
        print("\n".join(sorted({a.id for a in catalog.accounts.values()})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
