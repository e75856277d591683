#!/usr/bin/env bash
# `make lint-deploy`: lint everything that is deployed, offline except for the first
# `chalice package` (which fetches the Lambda wheels from PyPI once, then caches them).
#
#   1. package every stage (deploy/package.py: renders policies + merge template, slims the
#      zip and adds its bytecode, checks it has no boto3/botocore, is within 1.5 MB and
#      imports from its bytecode with only what Lambda provides, and prints its size)
#   2. cfn-lint every CloudFormation template in policies/ and every build/<stage>/sam.json
#   3. parliament (core + community auditors, deploy/iam_lint.py) on every IAM policy
#      document: policies/permission-boundary.json (the human boundary rendered for the
#      catalog, `make boundary`), the sample SCP policies/scp-protect-drawbridge.json, the
#      rendered Lambda policies of every stage (with the statements the merge template
#      adds to one function's role, policy-<stage>-extra-<fn>.json), a rendered grant
#      (chalicelib.policy) and every identity policy of the member template
#      (deploy/member_docs.py: cut-off, no-chaining, revoker, forwarding), with
#      deploy/parliament.yaml's narrow, explained exceptions
#
# Needs no AWS credentials. The Region only fills in ARNs: LINT_REGION (default us-east-1).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
REGION=${LINT_REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}}
STAGES=$("$BIN/python" -c 'from deploy.render import stages; print(" ".join(stages()))')
LINT_DIR=build/lint
rm -rf "$LINT_DIR" && mkdir -p "$LINT_DIR"

echo "== package (${STAGES}) in ${REGION}"
for stage in $STAGES; do
  "$BIN/python" -m deploy.package --stage "$stage" --region "$REGION"
done

echo "== cfn-lint"
templates=()
for f in policies/*.yaml policies/*.yml policies/*.json; do
  [ -e "$f" ] || continue
  if grep -q '"Resources"\|^Resources:' "$f"; then templates+=("$f"); fi
done
# the merge template is a fragment: it is linted as part of the sam.json it was merged into
for stage in $STAGES; do templates+=("build/$stage/sam.json"); done
for t in "${templates[@]}"; do
  "$BIN/cfn-lint" -- "$t"
  echo "   ok  $t"
done

echo "== parliament"
docs=(policies/permission-boundary.json policies/scp-protect-drawbridge.json)
for stage in $STAGES; do
  "$BIN/python" -m deploy.render policies --stage "$stage" --region "$REGION" --out-dir "$LINT_DIR" >/dev/null
done
docs+=("$LINT_DIR"/policy-*.json)
"$BIN/python" -c '
from datetime import datetime, timezone
from chalicelib.catalog import load_catalog
from chalicelib.policy import grant_policy, render
role = load_catalog("policies/access.toml").roles()[0]
print(render(grant_policy(role.role_arn, datetime(2030, 1, 1, tzinfo=timezone.utc), "r-lint0001")))
' > "$LINT_DIR/grant-example.json"
docs+=("$LINT_DIR/grant-example.json")
"$BIN/python" -m deploy.member_docs --out-dir "$LINT_DIR" >/dev/null
docs+=("$LINT_DIR"/member-*.json)
# every other IAM document in policies/ (a JSON file with a "Statement") is linted too
for f in policies/*.json; do
  case "$f" in *.template.json|policies/permission-boundary.json|policies/scp-protect-drawbridge.json) continue ;; esac
  if grep -q '"Statement"' "$f" && ! grep -q '"Resources"' "$f"; then docs+=("$f"); fi
done
"$BIN/python" -m deploy.iam_lint --config deploy/parliament.yaml "${docs[@]}"

echo "== lint-deploy passed"
