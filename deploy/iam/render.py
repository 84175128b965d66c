#!/usr/bin/env python3
"""Render a deploy/iam policy template into a policy document for one
deployment: substitutes ${Region}, ${AccountId}, ${UserPoolId},
${ClaimTable} (the DynamoDB claim table, KEYHOOK_CLAIM_TABLE) and
${UsagePlanId}; every resource naming ${UsagePlanId} is repeated once per
usage plan given (Sensedia apps may pick any plan the portal exposes).
--no-claim-table leaves out the claim table's statement instead: for one
replica without a table, or a stack that grants its table itself
(deploy/ecs/keyhook.yaml).

    python3 deploy/iam/render.py deploy/iam/sensedia-api-keys.json \
        --region eu-west-1 --account-id 123456789012 \
        --usage-plan-id abc123 --usage-plan-id def456 \
        --user-pool-id eu-west-1_AbCdEf123 --claim-table keyhook-claims > policy.json
    aws iam create-policy --policy-name keyhook --policy-document file://policy.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys

PLACEHOLDER = re.compile(r"\$\{([A-Za-z]+)\}")


def render(policy: dict, values: dict[str, str], plans: list[str]) -> dict:
    def one(resource: str, plan: str | None) -> str:
        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name == "UsagePlanId":
                return plan
            if name not in values:
                hint = " or --no-claim-table" if name == "ClaimTable" else ""
                raise SystemExit(f"no value for ${{{name}}}: pass --{kebab(name)}{hint}")
            return values[name]

        return PLACEHOLDER.sub(sub, resource)

    out = json.loads(json.dumps(policy))
    for statement in out["Statement"]:
        resources = statement["Resource"]
        if isinstance(resources, str):
            resources = [resources]
        rendered: list[str] = []
        for resource in resources:
            if "${UsagePlanId}" in resource:
                if not plans:
                    raise SystemExit("this policy names usage plans: pass --usage-plan-id")
                rendered.extend(one(resource, plan) for plan in plans)
            else:
                rendered.append(one(resource, None))
        statement["Resource"] = sorted(set(rendered), key=rendered.index)
    return out


def without_claim_table(policy: dict) -> dict:
    """The policy without its statements on the claim table."""
    out = json.loads(json.dumps(policy))
    out["Statement"] = [
        statement
        for statement in out["Statement"]
        if "${ClaimTable}" not in json.dumps(statement["Resource"])
    ]
    return out


def kebab(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template")
    parser.add_argument("--region", required=True)
    parser.add_argument("--account-id")
    parser.add_argument("--user-pool-id")
    claims = parser.add_mutually_exclusive_group()
    claims.add_argument("--claim-table", help="the DynamoDB claim table (KEYHOOK_CLAIM_TABLE)")
    claims.add_argument(
        "--no-claim-table",
        action="store_true",
        help="leave out the claim table's statement (one replica without a table, "
        "or a stack that grants its table itself)",
    )
    parser.add_argument("--usage-plan-id", action="append", default=[])
    parser.add_argument("-o", "--output", help="write here instead of stdout")
    args = parser.parse_args(argv)

    values = {"Region": args.region}
    if args.account_id:
        values["AccountId"] = args.account_id
    if args.user_pool_id:
        values["UserPoolId"] = args.user_pool_id
    if args.claim_table:
        values["ClaimTable"] = args.claim_table
    with open(args.template, encoding="utf-8") as f:
        policy = json.load(f)
    if args.no_claim_table:
        policy = without_claim_table(policy)
    text = json.dumps(render(policy, values, args.usage_plan_id), indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
