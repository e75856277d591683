"""The IAM documents of policies/member-account.yaml, rendered for review and for parliament.

cfn-lint checks the template, not the least privilege of the policies inside it; this
writes each identity policy the template creates (managed policies and roles' inline
policies; not trust policies, which parliament does not audit) as a plain JSON document,
with the parameters' defaults, a placeholder bastion and member account, and the
template's conditions evaluated, so `make lint-deploy` runs parliament on them like on
every other document.

    python -m deploy.member_docs --out-dir build/lint      # writes member-<Resource>[-<Policy>].json

It resolves exactly the intrinsics the template uses (Ref, Fn::Sub, Fn::GetAtt .Arn of a
role, Fn::If, Fn::Equals/Not/And/Or/Condition); anything else raises, so a new one cannot
slip through unrendered.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from deploy.render import cfn_yaml

ROOT = Path(__file__).resolve().parents[1]
MEMBER_TEMPLATE = ROOT / "policies" / "member-account.yaml"
#: placeholders: nothing in the documents depends on the real ids
BASTION_ACCOUNT = "111111111111"
MEMBER_ACCOUNT = "222222222222"

_NO_VALUE = object()


class Resolver:
    def __init__(self, template: dict, parameters: dict | None = None, region: str = "us-east-1"):
        self.template = template
        values = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
        values.setdefault("BastionAccountId", BASTION_ACCOUNT)
        values.update({"AWS::AccountId": MEMBER_ACCOUNT, "AWS::Partition": "aws", "AWS::Region": region,
                       **(parameters or {})})
        if not values["BastionAccountId"]:
            values["BastionAccountId"] = BASTION_ACCOUNT
        self.values = values

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def _ref(self, name: str):
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.values:
            return self.values[name]
        res = self.template["Resources"][name]
        props = self.resolve(res["Properties"])
        if res["Type"] == "AWS::IAM::ManagedPolicy":
            return f"arn:aws:iam::{MEMBER_ACCOUNT}:policy{props.get('Path', '/')}{props['ManagedPolicyName']}"
        if res["Type"] == "AWS::IAM::Role":
            return props["RoleName"]
        raise NotImplementedError(f"Ref to a {res['Type']}")

    def _get_att(self, name: str, attribute: str) -> str:
        if attribute != "Arn" or self.template["Resources"][name]["Type"] != "AWS::IAM::Role":
            raise NotImplementedError(f"GetAtt {name}.{attribute}")
        return f"arn:aws:iam::{MEMBER_ACCOUNT}:role/{self._ref(name)}"

    def _sub(self, text: str) -> str:
        def one(m: re.Match) -> str:
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if "." in key:
                return self._get_att(*key.split(".", 1))
            if key in self.values or key in self.template["Resources"]:
                return str(self._ref(key))
            return m.group(0)  # an IAM policy variable such as ${aws:username}
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value):
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::Sub":
                if not isinstance(arg, str):
                    raise NotImplementedError("Fn::Sub with a variable map")
                return self._sub(arg)
            if key == "Fn::GetAtt":
                return self._get_att(*(arg.split(".", 1) if isinstance(arg, str) else arg))
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return left == right
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key in ("Condition", "Fn::Condition"):  # cfn_yaml reads !Condition as Fn::Condition
                return self.condition(arg)
            if key.startswith("Fn::"):
                raise NotImplementedError(key)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not _NO_VALUE}


def documents(template_path: Path = MEMBER_TEMPLATE, parameters: dict | None = None) -> dict[str, dict]:
    """file stem -> identity policy document, for every one the template creates with these parameters."""
    template = cfn_yaml(template_path)
    resolver = Resolver(template, parameters)
    out: dict[str, dict] = {}
    for name, res in template["Resources"].items():
        if "Condition" in res and not resolver.condition(res["Condition"]):
            continue
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::ManagedPolicy":
            out[f"member-{name}"] = resolver.resolve(props["PolicyDocument"])
        elif res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                out[f"member-{name}-{policy['PolicyName']}"] = resolver.resolve(policy["PolicyDocument"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.member_docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--template", type=Path, default=MEMBER_TEMPLATE)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for stem, doc in documents(args.template).items():
        path = args.out_dir / f"{stem}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
