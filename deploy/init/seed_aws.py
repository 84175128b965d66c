#!/usr/bin/env python3
"""Create the AWS resources keyhook is configured with, on real AWS or on an
emulator (moto), idempotently, and print their ids as KEY=value lines.

What it makes (each found by name first, created only when missing):

* a REST API (``keyhook-demo``) with one resource (``/hello``), a ``GET``
  method with a MOCK integration, a deployment and a stage (``demo``);
* a usage plan (``keyhook-demo``) bound to that API stage;
* a Cognito user pool (``keyhook-demo``) with a resource server
  (``https://api.keyhook.example``, scopes ``read`` and ``write``) and a
  hosted domain (the token endpoint keyhook hands to clients);
* the DynamoDB claim table (``keyhook-claims``: partition key ``app``, a
  string, on-demand), in which replicas claim each app's credential.

The endpoint comes from ``AWS_ENDPOINT_URL`` (or ``--endpoint-url``); the
region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (default us-east-1).
With ``--out-dir DIR`` each value is also written to ``DIR/<KEY>`` (no
newline), ready for keyhook's ``<KEY>_FILE`` variables, and all of them to
``DIR/aws.env``.

Usage:
    AWS_ENDPOINT_URL=http://127.0.0.1:5000 python3 deploy/init/seed_aws.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

NAME = "keyhook-demo"
STAGE = "demo"
RESOURCE_SERVER = "https://api.keyhook.example"
SCOPES = ("read", "write")
CLAIM_TABLE = "keyhook-claims"


def paginate(client, operation, key, **kwargs):
    """Items of a paginated list call (API Gateway `position` or Cognito tokens)."""
    paginator = client.get_paginator(operation)
    for page in paginator.paginate(**kwargs):
        yield from page.get(key, [])


def ensure_rest_api(apigw) -> str:
    for api in paginate(apigw, "get_rest_apis", "items"):
        if api["name"] == NAME:
            return api["id"]
    api = apigw.create_rest_api(
        name=NAME,
        description="Demo API whose usage plan keyhook attaches keys to",
        endpointConfiguration={"types": ["REGIONAL"]},
        tags={"app": "keyhook"},
    )
    return api["id"]


def ensure_method(apigw, api_id: str) -> str:
    resources = list(paginate(apigw, "get_resources", "items", restApiId=api_id))
    root = next(r for r in resources if r["path"] == "/")
    hello = next((r for r in resources if r["path"] == "/hello"), None)
    if hello is None:
        hello = apigw.create_resource(restApiId=api_id, parentId=root["id"], pathPart="hello")
    resource_id = hello["id"]
    try:
        apigw.get_method(restApiId=api_id, resourceId=resource_id, httpMethod="GET")
    except ClientError as err:
        if err.response["Error"]["Code"] != "NotFoundException":
            raise
        apigw.put_method(
            restApiId=api_id,
            resourceId=resource_id,
            httpMethod="GET",
            authorizationType="NONE",
            apiKeyRequired=True,
        )
        apigw.put_method_response(
            restApiId=api_id, resourceId=resource_id, httpMethod="GET", statusCode="200"
        )
        apigw.put_integration(
            restApiId=api_id,
            resourceId=resource_id,
            httpMethod="GET",
            type="MOCK",
            requestTemplates={"application/json": '{"statusCode": 200}'},
        )
        apigw.put_integration_response(
            restApiId=api_id,
            resourceId=resource_id,
            httpMethod="GET",
            statusCode="200",
            responseTemplates={"application/json": '{"hello": "world"}'},
        )
    return resource_id


def ensure_stage(apigw, api_id: str) -> str:
    stages = apigw.get_stages(restApiId=api_id).get("item", [])
    if any(s["stageName"] == STAGE for s in stages):
        return STAGE
    deployment = apigw.create_deployment(restApiId=api_id, description="keyhook demo")
    apigw.create_stage(restApiId=api_id, stageName=STAGE, deploymentId=deployment["id"])
    return STAGE


def ensure_usage_plan(apigw, api_id: str, stage: str) -> str:
    for plan in paginate(apigw, "get_usage_plans", "items"):
        if plan["name"] == NAME:
            bound = any(
                s.get("apiId") == api_id and s.get("stage") == stage
                for s in plan.get("apiStages", [])
            )
            if not bound:
                apigw.update_usage_plan(
                    usagePlanId=plan["id"],
                    patchOperations=[
                        {"op": "add", "path": "/apiStages", "value": f"{api_id}:{stage}"}
                    ],
                )
            return plan["id"]
    plan = apigw.create_usage_plan(
        name=NAME,
        description="Plan keyhook attaches issued API keys to",
        apiStages=[{"apiId": api_id, "stage": stage}],
        throttle={"rateLimit": 10.0, "burstLimit": 20},
        quota={"limit": 10000, "period": "MONTH"},
        tags={"app": "keyhook"},
    )
    return plan["id"]


def ensure_user_pool(cognito) -> str:
    for pool in paginate(cognito, "list_user_pools", "UserPools", MaxResults=60):
        if pool["Name"] == NAME:
            return pool["Id"]
    pool = cognito.create_user_pool(PoolName=NAME, UserPoolTags={"app": "keyhook"})
    return pool["UserPool"]["Id"]


def ensure_resource_server(cognito, pool_id: str) -> None:
    scopes = [{"ScopeName": s, "ScopeDescription": f"{s} access"} for s in SCOPES]
    try:
        current = cognito.describe_resource_server(UserPoolId=pool_id, Identifier=RESOURCE_SERVER)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        cognito.create_resource_server(
            UserPoolId=pool_id, Identifier=RESOURCE_SERVER, Name=NAME, Scopes=scopes
        )
        return
    have = {s["ScopeName"] for s in current["ResourceServer"].get("Scopes", [])}
    if not set(SCOPES) <= have:
        cognito.update_resource_server(
            UserPoolId=pool_id, Identifier=RESOURCE_SERVER, Name=NAME, Scopes=scopes
        )


def ensure_domain(cognito, pool_id: str, prefix: str) -> str:
    pool = cognito.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    existing = pool.get("Domain")
    if existing:
        return existing
    cognito.create_user_pool_domain(Domain=prefix, UserPoolId=pool_id)
    return prefix


def ensure_claim_table(dynamodb) -> str:
    try:
        dynamodb.describe_table(TableName=CLAIM_TABLE)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        dynamodb.create_table(
            TableName=CLAIM_TABLE,
            AttributeDefinitions=[{"AttributeName": "app", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "app", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.get_waiter("table_exists").wait(TableName=CLAIM_TABLE)
    return CLAIM_TABLE


def seed(endpoint: str | None, region: str, domain_prefix: str) -> dict[str, str]:
    config = Config(retries={"max_attempts": 5, "mode": "standard"})
    kwargs = {"region_name": region, "config": config}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    apigw = boto3.client("apigateway", **kwargs)
    cognito = boto3.client("cognito-idp", **kwargs)
    dynamodb = boto3.client("dynamodb", **kwargs)

    api_id = ensure_rest_api(apigw)
    ensure_method(apigw, api_id)
    stage = ensure_stage(apigw, api_id)
    plan_id = ensure_usage_plan(apigw, api_id, stage)
    pool_id = ensure_user_pool(cognito)
    ensure_resource_server(cognito, pool_id)
    prefix = ensure_domain(cognito, pool_id, domain_prefix)
    claim_table = ensure_claim_table(dynamodb)

    return {
        "REST_API_ID": api_id,
        "REST_API_STAGE": stage,
        "KEYHOOK_USAGE_PLAN_ID": plan_id,
        "KEYHOOK_COGNITO_USER_POOL_ID": pool_id,
        "KEYHOOK_COGNITO_DOMAIN": f"https://{prefix}.auth.{region}.amazoncognito.com",
        "KEYHOOK_COGNITO_SCOPES": ",".join(f"{RESOURCE_SERVER}/{s}" for s in SCOPES),
        "KEYHOOK_CLAIM_TABLE": claim_table,
    }


def wait_for(endpoint: str | None, region: str, timeout: float) -> None:
    """Wait until the endpoint answers (the emulator may still be starting)."""
    deadline = time.monotonic() + timeout
    kwargs = {"region_name": region}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    client = boto3.client("apigateway", **kwargs)
    while True:
        try:
            client.get_rest_apis(limit=1)
            return
        except EndpointConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="AWS endpoint (default: $AWS_ENDPOINT_URL; unset means real AWS)",
    )
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    parser.add_argument(
        "--domain-prefix",
        default=os.environ.get("KEYHOOK_SEED_DOMAIN_PREFIX", "keyhook-demo"),
        help="Cognito hosted-domain prefix (must be globally unique on real AWS)",
    )
    parser.add_argument("--out-dir", help="also write one file per value, and aws.env, here")
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the endpoint to answer"
    )
    args = parser.parse_args(argv)

    wait_for(args.endpoint_url, args.region, args.wait)
    values = seed(args.endpoint_url, args.region, args.domain_prefix)
    lines = [f"{key}={value}" for key, value in values.items()]
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        for key, value in values.items():
            with open(os.path.join(args.out_dir, key), "w", encoding="utf-8") as f:
                f.write(value)
        with open(os.path.join(args.out_dir, "aws.env"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
