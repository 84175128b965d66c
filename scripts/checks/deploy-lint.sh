#!/usr/bin/env bash
# Lints the deployment kit: Dockerfile (hadolint), Kubernetes manifests
# (kubernetes-validate, strict), CloudFormation (cfn-lint), IAM policies
# (parliament, on copies rendered with sample ids), OpenAPI
# (openapi-spec-validator), and the structure no linter covers
# (deploy/checks/structure.py: compose file, kustomization, ECS task
# definition against botocore's model, policies against operations.json,
# the claim table in every manifest, the admin and metrics listeners
# reachable only inside the host, cluster or task).
# Tools come from scripts/requirements-test.txt. Any finding fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."

K8S_VERSION="${K8S_VERSION:-1.30.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for tool in hadolint kubernetes-validate cfn-lint parliament openapi-spec-validator; do
    command -v "$tool" >/dev/null || { echo "deploy-lint: $tool is not installed (pip install -r scripts/requirements-test.txt)" >&2; exit 1; }
done

echo "-- hadolint Dockerfile"
hadolint --failure-threshold info Dockerfile

echo "-- kubernetes-validate deploy/kubernetes (Kubernetes $K8S_VERSION, strict)"
# The kustomization's resources only: servicemonitor.yaml is not one (its
# CRD is the Prometheus operator's, unknown to kubernetes-validate);
# deploy/checks/structure.py checks it instead.
manifests=()
while IFS= read -r name; do
    manifests+=("deploy/kubernetes/$name")
done < <(python3 -c 'import yaml,sys; print("\n".join(yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))["resources"]))')
kubernetes-validate --strict --quiet -k "$K8S_VERSION" "${manifests[@]}"
# The kustomize build too, where kubectl is around (CI has no kubectl).
if command -v kubectl >/dev/null && kubectl kustomize deploy/kubernetes >"$tmp/kustomized.yaml" 2>/dev/null; then
    kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$tmp/kustomized.yaml"
    echo "   (and the kubectl kustomize output)"
fi

echo "-- cfn-lint deploy/ecs/keyhook.yaml"
cfn-lint deploy/ecs/keyhook.yaml

echo "-- parliament deploy/iam (rendered with sample ids)"
for policy in deploy/iam/*.json; do
    [ "$(basename "$policy")" = operations.json ] && continue
    rendered="$tmp/$(basename "$policy")"
    python3 deploy/iam/render.py "$policy" --region us-east-1 --account-id 123456789012 \
        --user-pool-id us-east-1_AbCdEf123 --claim-table keyhook-claims \
        --usage-plan-id abc123 --usage-plan-id def456 \
        -o "$rendered"
    out="$(parliament --string "$(cat "$rendered")" </dev/null)" || { echo "$policy:"; echo "$out"; exit 1; }
    if [ -n "$out" ]; then
        echo "$policy:"; echo "$out"; exit 1
    fi
done

# Without a table: --no-claim-table leaves the claim table's statement out;
# naming neither is refused.
sample=(--region us-east-1 --account-id 123456789012 --user-pool-id us-east-1_AbCdEf123 --usage-plan-id abc123)
python3 deploy/iam/render.py deploy/iam/readme-readonly.json "${sample[@]}" --no-claim-table -o "$tmp/no-table.json"
if grep -q dynamodb "$tmp/no-table.json"; then
    echo "render.py --no-claim-table left a DynamoDB grant in"; exit 1
fi
if python3 deploy/iam/render.py deploy/iam/readme-readonly.json "${sample[@]}" >/dev/null 2>&1; then
    echo "render.py rendered a policy without --claim-table or --no-claim-table"; exit 1
fi

# Every description: the portals' (keyhook.yaml) and any other, such as the
# admin listener's.
for spec in openapi/*.yaml; do
    echo "-- openapi-spec-validator $spec"
    openapi-spec-validator "$spec"
done

echo "-- deploy structure (compose, kustomization, ECS task definition, IAM vs operations.json, claim table, private listeners)"
python3 deploy/checks/structure.py

echo "deploy-lint: OK"
