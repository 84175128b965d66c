#!/usr/bin/env bash
# Runs deploy/init/seed_aws.py (the compose stack's init step) against a
# moto server on loopback, twice: it must succeed, be idempotent (same ids),
# and leave the resources keyhook is configured with.
set -euo pipefail
cd "$(dirname "$0")/../.."

tmp="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$tmp/moto.log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN

python3 deploy/init/seed_aws.py --wait 30 --out-dir "$tmp/seed" >"$tmp/first"
python3 deploy/init/seed_aws.py --wait 5 >"$tmp/second"
if ! diff -u "$tmp/first" "$tmp/second"; then
    echo "deploy-seed: a second run produced different ids (not idempotent)" >&2
    exit 1
fi

python3 - "$tmp/first" "$tmp/seed" <<'PY'
import os, sys
import boto3

values = dict(line.split("=", 1) for line in open(sys.argv[1]).read().split())
for key in ("REST_API_ID", "KEYHOOK_USAGE_PLAN_ID", "KEYHOOK_COGNITO_USER_POOL_ID",
            "KEYHOOK_COGNITO_DOMAIN", "KEYHOOK_COGNITO_SCOPES", "KEYHOOK_CLAIM_TABLE"):
    assert values.get(key), f"missing {key}"
    with open(os.path.join(sys.argv[2], key)) as f:
        assert f.read() == values[key], f"{key} file differs"
apigw = boto3.client("apigateway")
cognito = boto3.client("cognito-idp")
plan = apigw.get_usage_plan(usagePlanId=values["KEYHOOK_USAGE_PLAN_ID"])
assert any(s["apiId"] == values["REST_API_ID"] for s in plan["apiStages"]), plan["apiStages"]
table = boto3.client("dynamodb").describe_table(TableName=values["KEYHOOK_CLAIM_TABLE"])["Table"]
assert table["KeySchema"] == [{"AttributeName": "app", "KeyType": "HASH"}], table["KeySchema"]
stages = apigw.get_stages(restApiId=values["REST_API_ID"])["item"]
assert [s["stageName"] for s in stages] == [values["REST_API_STAGE"]], stages
pool_id = values["KEYHOOK_COGNITO_USER_POOL_ID"]
servers = cognito.list_resource_servers(UserPoolId=pool_id, MaxResults=10)["ResourceServers"]
scopes = {f"{s['Identifier']}/{sc['ScopeName']}" for s in servers for sc in s["Scopes"]}
assert set(values["KEYHOOK_COGNITO_SCOPES"].split(",")) <= scopes, scopes
assert cognito.describe_user_pool(UserPoolId=pool_id)["UserPool"].get("Domain"), "no domain"
assert len([p for p in cognito.list_user_pools(MaxResults=60)["UserPools"] if p["Name"] == "keyhook-demo"]) == 1
print("deploy-seed: OK (" + ", ".join(f"{k}={v}" for k, v in values.items() if k.endswith("_ID")) + ")")
PY
