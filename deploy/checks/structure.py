#!/usr/bin/env python3
"""Structural checks of the deployment kit that no off-the-shelf linter does:

* docker-compose.yml: services, dependencies, env files and mounted paths
  exist, no secret-looking variable is set inline;
* deploy/kubernetes: every manifest is listed in kustomization.yaml (but
  the examples for clusters with an operator, e.g. the ServiceMonitor,
  checked by hand since no linter here knows their CRD) and
  the Deployment keeps its hardening (probes, non-root, read-only root,
  dropped capabilities, secrets only as files);
* deploy/ecs/task-definition.json against the ECS RegisterTaskDefinition
  input model shipped with botocore;
* deploy/iam: every operation in operations.json is granted by the policy
  of each mode it lists, and no policy grants anything operations.json
  does not account for; audit-readonly grants reads only.
* the claim table: every manifest that runs keyhook on AWS sets
  KEYHOOK_CLAIM_TABLE (required with more than one replica), the compose
  stack from the file aws-init writes, and the CloudFormation stack
  creates the table (partition key `app`, a string) and grants its task
  role the claim table's calls on it;
* the private listeners: the admin listener (KEYHOOK_ADMIN_LISTEN) and
  the metrics listener are never reachable from outside the host, cluster
  or task: compose publishes them on loopback only; on Kubernetes no
  Service, Ingress or NodePort reaches the admin port and a NetworkPolicy
  admits only labelled pods to it; on ECS it is in no target group or load
  balancer rule, and no security group rule opens it to a CIDR or to the
  load balancer.

Prints one line per finding and exits 1 if there is any.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
findings: list[str] = []
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|USERS|TOKENS?|ACCESS_KEY)(_ID)?$")


def finding(where: str, message: str) -> None:
    findings.append(f"{where}: {message}")


def check_compose() -> None:
    where = "docker-compose.yml"
    doc = yaml.safe_load((ROOT / where).read_text())
    services = doc.get("services") or {}
    for name in ("moto", "aws-init", "keyhook"):
        if name not in services:
            finding(where, f"service `{name}` is missing")
    volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            finding(where, f"{name}: neither image nor build")
        image = svc.get("image", "")
        if image and ":" not in image.split("/")[-1]:
            finding(where, f"{name}: image `{image}` has no tag")
        deps = svc.get("depends_on") or {}
        for dep in deps:
            if dep not in services:
                finding(where, f"{name}: depends on unknown service `{dep}`")
        env_files = svc.get("env_file") or []
        if isinstance(env_files, str):
            env_files = [env_files]
        for env_file in env_files:
            path = env_file["path"] if isinstance(env_file, dict) else env_file
            if path.endswith("secrets.env"):
                if not (ROOT / (path + ".example")).is_file():
                    finding(where, f"{name}: {path} has no {path}.example template")
            elif not (ROOT / path).is_file():
                finding(where, f"{name}: env file {path} does not exist")
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
        for var in env:
            if SECRET_NAME.search(var) and not var.endswith("_FILE"):
                finding(where, f"{name}: secret `{var}` set inline; use an env file")
        for mount in svc.get("volumes") or []:
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source")
            if source.startswith((".", "/")):
                if not (ROOT / source).exists():
                    finding(where, f"{name}: mounted path {source} does not exist")
            elif source not in volumes:
                finding(where, f"{name}: volume `{source}` is not declared")
        entry = svc.get("entrypoint") or []
        for arg in entry:
            if arg.startswith("/deploy/"):
                if not (ROOT / arg.lstrip("/")).is_file():
                    finding(where, f"{name}: runs {arg}, which does not exist")
    keyhook = services.get("keyhook", {})
    if keyhook.get("depends_on", {}).get("aws-init", {}).get("condition") != "service_completed_successfully":
        finding(where, "keyhook must wait for aws-init to complete")
    for env_example in (ROOT / "deploy/compose").glob("*.env*"):
        for line in env_example.read_text().splitlines():
            if line.strip() and not line.startswith("#") and "=" not in line:
                finding(str(env_example.relative_to(ROOT)), f"not KEY=value: {line!r}")
    for env_file in (ROOT / "deploy/compose").glob("*.env"):
        if env_file.name == "secrets.env":
            continue
        for var in env_vars(env_file):
            if SECRET_NAME.search(var):
                finding(str(env_file.relative_to(ROOT)), f"secret `{var}` outside secrets.env")


def env_vars(path: pathlib.Path) -> dict[str, str]:
    """The KEY=value lines of a compose env file."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def check_kubernetes() -> None:
    base = ROOT / "deploy/kubernetes"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    present = {p.name for p in base.glob("*.yaml")} - {"kustomization.yaml"}
    # Examples outside the kustomization, for clusters with an operator whose
    # CRD no linter here knows: checked by check_examples instead.
    present -= set(EXAMPLES)
    for missing in sorted(present - listed):
        finding("deploy/kubernetes", f"{missing} is not listed in kustomization.yaml")
    for absent in sorted(listed - present):
        finding("deploy/kubernetes", f"kustomization.yaml lists {absent}, which does not exist")
    kinds = {}
    for name in sorted(listed & present):
        for doc in yaml.safe_load_all((base / name).read_text()):
            if doc:
                kinds.setdefault(doc["kind"], []).append((name, doc))
    if "Secret" in kinds:
        finding("deploy/kubernetes", "a literal Secret is part of the kustomization")
    for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ConfigMap"):
        if kind not in kinds:
            finding("deploy/kubernetes", f"no {kind}")
    for name, sa in kinds.get("ServiceAccount", []):
        if "eks.amazonaws.com/role-arn" not in (sa["metadata"].get("annotations") or {}):
            finding(name, "ServiceAccount lacks the IRSA role-arn annotation")
    for name, dep in kinds.get("Deployment", []):
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        if spec.get("replicas", 1) < 2:
            finding(name, "fewer than 2 replicas")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            finding(name, "pod does not require runAsNonRoot")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem"):
                finding(name, f"{c['name']}: root filesystem is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                finding(name, f"{c['name']}: privilege escalation allowed")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                finding(name, f"{c['name']}: capabilities not dropped")
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                if c.get(probe, {}).get("httpGet", {}).get("path") != path:
                    finding(name, f"{c['name']}: {probe} is not GET {path}")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                finding(name, f"{c['name']}: resource requests and limits required")
            for env in c.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    finding(name, f"{c['name']}: {env['name']} passed as a value; use {env['name']}_FILE")
                if "valueFrom" in env and "secretKeyRef" in env["valueFrom"]:
                    finding(name, f"{c['name']}: secret passed through the environment; mount it")
            sleep = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            pre_stop = int(sleep[-1]) if sleep and sleep[0] == "sleep" else 0
            if grace < pre_stop + 10:
                finding(name, f"terminationGracePeriodSeconds {grace} leaves under 10 s to drain after preStop {pre_stop}s")


# Manifests shipped beside the kustomization but not in it, with why.
EXAMPLES = {
    "servicemonitor.yaml": "needs the Prometheus operator's ServiceMonitor CRD",
}


def check_examples() -> None:
    """The ServiceMonitor (its CRD cannot be validated here): not in the
    kustomization, and it selects the Service and scrapes its metrics port."""
    base = ROOT / "deploy/kubernetes"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    for name in EXAMPLES:
        if name in kustomization.get("resources", []):
            finding(name, "is in kustomization.yaml, but its CRD is not in every cluster")
    where = "servicemonitor.yaml"
    monitor = yaml.safe_load((base / where).read_text())
    service = yaml.safe_load((base / "service.yaml").read_text())
    if monitor.get("apiVersion") != "monitoring.coreos.com/v1" or monitor.get("kind") != "ServiceMonitor":
        finding(where, "not a monitoring.coreos.com/v1 ServiceMonitor")
        return
    wanted = monitor["spec"]["selector"].get("matchLabels", {})
    labels = service["metadata"].get("labels", {})
    if not wanted or any(labels.get(k) != v for k, v in wanted.items()):
        finding(where, f"selector {wanted} does not match the Service's labels {labels}")
    namespaces = monitor["spec"].get("namespaceSelector", {}).get("matchNames", [])
    if service["metadata"].get("namespace") not in namespaces:
        finding(where, "namespaceSelector does not name the Service's namespace")
    ports = {p.get("name") for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"].get("endpoints", []):
        if endpoint.get("port") not in ports:
            finding(where, f"endpoint port {endpoint.get('port')!r} is not a port of the Service")
        if endpoint.get("path", "/metrics") != "/metrics":
            finding(where, "keyhook serves /metrics only")


def check_ecs_task_definition() -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    where = "deploy/ecs/task-definition.json"
    task = json.loads((ROOT / where).read_text())
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(task, shape)
    if report.has_errors():
        for line in report.generate_report().splitlines():
            finding(where, line)
    for c in task.get("containerDefinitions", []):
        for env in c.get("environment", []):
            if SECRET_NAME.search(env["name"]):
                finding(where, f"{env['name']} is a plain environment value; use `secrets`")
        for key in ("healthCheck", "logConfiguration", "secrets"):
            if key not in c:
                finding(where, f"{c['name']}: no {key}")
    if "taskRoleArn" not in task:
        finding(where, "no taskRoleArn")


def check_iam() -> None:
    base = ROOT / "deploy/iam"
    ops = json.loads((base / "operations.json").read_text())
    granted: dict[str, set[tuple[str, str]]] = {}
    for mode, file_name in ops["policies"].items():
        policy = json.loads((base / file_name).read_text())
        pairs = set()
        for st in policy["Statement"]:
            if st.get("Effect") != "Allow":
                continue
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if "*" in resources:
                finding(file_name, "grants on Resource `*`")
            pairs |= {(a, r) for a in actions for r in resources}
        granted[mode] = pairs
    needed: dict[str, set[tuple[str, str]]] = {mode: set() for mode in granted}
    for op, spec in ops["operations"].items():
        for mode in spec["modes"]:
            if mode not in granted:
                finding("operations.json", f"{op}: unknown mode {mode}")
                continue
            wants = [(spec["action"], spec["resource"])]
            wants += [(a["action"], a["resource"]) for a in spec.get("also", [])]
            for pair in wants:
                needed[mode].add(pair)
                if pair not in granted[mode]:
                    finding(ops["policies"][mode], f"{op} needs {pair[0]} on {pair[1]}")
    for mode, pairs in granted.items():
        for action, resource in sorted(pairs - needed[mode]):
            finding(ops["policies"][mode], f"grants {action} on {resource}, which no operation in operations.json needs")
    for path in base.glob("*.json"):
        if path.name != "operations.json" and path.name not in ops["policies"].values():
            finding(str(path.relative_to(ROOT)), "policy not mapped in operations.json")
    # What `keyhook audit` runs with before keyhook is deployed: reads only.
    reads = re.compile(r"^(apigateway:GET|cognito-idp:(List|Describe)\w+|dynamodb:(GetItem|Scan|Query))$")
    for action, resource in sorted(granted.get("audit-readonly", set())):
        if not reads.match(action):
            finding(ops["policies"]["audit-readonly"], f"grants {action} on {resource}, which is not a read")
    if "audit-readonly" not in granted:
        finding("operations.json", "no audit-readonly policy (keyhook audit before deploying)")


CLAIM_TABLE = "KEYHOOK_CLAIM_TABLE"


def claim_actions() -> set[str]:
    """The actions operations.json lists for the claim table."""
    ops = json.loads((ROOT / "deploy/iam/operations.json").read_text())["operations"]
    return {spec["action"] for spec in ops.values() if "${ClaimTable}" in spec["resource"]}


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short intrinsic tags (`!Ref x` becomes
    {"Ref": "x"}, `!GetAtt a.b` {"Fn::GetAtt": ["a", "b"]})."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def check_claim_table() -> None:
    # docker-compose.yml: from the file aws-init writes on the seed volume.
    where = "docker-compose.yml"
    keyhook = (yaml.safe_load((ROOT / where).read_text()).get("services") or {}).get("keyhook", {})
    env = keyhook.get("environment") or {}
    source = env.get(f"{CLAIM_TABLE}_FILE")
    if not source:
        finding(where, f"keyhook: no {CLAIM_TABLE}_FILE")
    elif not source.startswith("/seed/") or source.split("/")[-1] not in (ROOT / "deploy/init/seed_aws.py").read_text():
        finding(where, f"keyhook: {CLAIM_TABLE}_FILE {source} is not a file aws-init writes")

    # deploy/kubernetes: the ConfigMap the Deployment reads its settings from.
    where = "deploy/kubernetes/configmap.yaml"
    config = yaml.safe_load((ROOT / where).read_text())
    if not (config.get("data") or {}).get(CLAIM_TABLE):
        finding(where, f"no {CLAIM_TABLE} (required with more than one replica)")

    # deploy/ecs/task-definition.json.
    where = "deploy/ecs/task-definition.json"
    task = json.loads((ROOT / where).read_text())
    for c in task.get("containerDefinitions", []):
        if not any(e["name"] == CLAIM_TABLE and e.get("value") for e in c.get("environment", [])):
            finding(where, f"{c['name']}: no {CLAIM_TABLE}")

    # deploy/ecs/keyhook.yaml: the table, its grant, and the setting.
    where = "deploy/ecs/keyhook.yaml"
    stack = yaml.load((ROOT / where).read_text(), Loader=CfnLoader)
    resources = stack.get("Resources") or {}
    tables = [
        name
        for name, r in resources.items()
        if r.get("Type") == "AWS::DynamoDB::Table"
        and r["Properties"].get("KeySchema") == [{"AttributeName": "app", "KeyType": "HASH"}]
        and {"AttributeName": "app", "AttributeType": "S"} in r["Properties"].get("AttributeDefinitions", [])
    ]
    if len(tables) != 1:
        finding(where, "no DynamoDB claim table with partition key `app` (S)")
        return
    table = tables[0]
    for name, r in resources.items():
        if r.get("Type") != "AWS::ECS::TaskDefinition":
            continue
        props = r["Properties"]
        for c in props.get("ContainerDefinitions", []):
            if {"Name": CLAIM_TABLE, "Value": {"Ref": table}} not in c.get("Environment", []):
                finding(where, f"{name}/{c['Name']}: {CLAIM_TABLE} is not !Ref {table}")
        role = props.get("TaskRoleArn", {}).get("Fn::GetAtt", [None])[0]
        granted = set()
        for policy in (resources.get(role) or {}).get("Properties", {}).get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                if st.get("Effect") == "Allow" and st.get("Resource") == {"Fn::GetAtt": [table, "Arn"]}:
                    granted |= set(actions)
        for action in sorted(claim_actions() - granted):
            finding(where, f"task role {role} is not granted {action} on {table}")


ADMIN = "KEYHOOK_ADMIN_LISTEN"
METRICS = "KEYHOOK_METRICS_LISTEN"


def listen_port(address: str) -> int:
    return int(str(address).rsplit(":", 1)[1])


def unless(value):
    """The value a CloudFormation `!If [cond, value, NoValue]` gives when
    the condition holds (the case to check); anything else as it is."""
    if isinstance(value, dict) and "Fn::If" in value:
        return value["Fn::If"][1]
    return value


def check_private_listeners() -> None:
    # docker-compose.yml: the admin and metrics ports on loopback only.
    where = "docker-compose.yml"
    keyhook = (yaml.safe_load((ROOT / where).read_text()).get("services") or {}).get("keyhook", {})
    settings = {}
    for env_file in keyhook.get("env_file") or []:
        path = env_file["path"] if isinstance(env_file, dict) else env_file
        path = path + ".example" if path.endswith("secrets.env") else path
        settings.update(env_vars(ROOT / path))
    settings.update(keyhook.get("environment") or {})
    if ADMIN not in settings:
        finding(where, f"keyhook: no {ADMIN}")
    elif not ({"KEYHOOK_ADMIN_TOKENS", "KEYHOOK_ADMIN_TOKENS_FILE"} & settings.keys()):
        finding(where, f"keyhook: {ADMIN} without KEYHOOK_ADMIN_TOKENS (secrets.env) or its _FILE")
    private = {listen_port(settings[v]): v for v in (ADMIN, METRICS) if v in settings}
    for mapping in keyhook.get("ports") or []:
        if isinstance(mapping, dict):
            target, host_ip = int(mapping.get("target", 0)), mapping.get("host_ip", "")
        else:
            parts = str(mapping).split(":")
            target = int(parts[-1].split("/")[0])
            host_ip = parts[0] if len(parts) == 3 else ""
        if target in private and host_ip != "127.0.0.1":
            finding(where, f"keyhook: port {target} ({private[target]}) published beyond 127.0.0.1")
    for mapping in keyhook.get("expose") or []:
        if int(str(mapping).split("/")[0]) in private:
            finding(where, f"keyhook: exposes private port {mapping}")

    # deploy/kubernetes: a container port `admin`, reached by no Service or
    # Ingress, and a NetworkPolicy that admits only selected pods to it.
    base = ROOT / "deploy/kubernetes"
    where = "deploy/kubernetes"
    docs = []
    for name in yaml.safe_load((base / "kustomization.yaml").read_text()).get("resources", []):
        docs += [(name, d) for d in yaml.safe_load_all((base / name).read_text()) if d]
    config = next((d.get("data") or {} for _, d in docs if d["kind"] == "ConfigMap"), {})
    if ADMIN not in config:
        finding(where, f"the ConfigMap sets no {ADMIN}")
        return
    port = listen_port(config[ADMIN])
    admin_names = {"admin", port}
    pod_labels = {}
    for name, dep in docs:
        if dep["kind"] != "Deployment":
            continue
        pod_labels = dep["spec"]["template"]["metadata"].get("labels") or {}
        for c in dep["spec"]["template"]["spec"]["containers"]:
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            if ports.get("admin") != port:
                finding(name, f"{c['name']}: no container port `admin` = {port} ({ADMIN})")
            env = {e["name"] for e in c.get("env", [])}
            if "KEYHOOK_ADMIN_TOKENS_FILE" not in env:
                finding(name, f"{c['name']}: {ADMIN} without KEYHOOK_ADMIN_TOKENS_FILE")
    for name, doc in docs:
        if doc["kind"] == "Service":
            for p in doc["spec"].get("ports", []):
                if {p.get("name"), p.get("targetPort"), p.get("port")} & admin_names:
                    finding(name, f"Service {doc['metadata']['name']} has a port to the admin listener")
        if doc["kind"] == "Ingress" and "admin" in json.dumps(doc):
            finding(name, "an Ingress names the admin port")
    guarded = False
    for name, doc in docs:
        if doc["kind"] != "NetworkPolicy":
            continue
        spec = doc["spec"]
        selector = (spec.get("podSelector") or {}).get("matchLabels") or {}
        if not selector.items() <= pod_labels.items() or "Ingress" not in spec.get("policyTypes", []):
            continue
        guarded = True
        for rule in spec.get("ingress") or []:
            ports = {p.get("port") for p in rule.get("ports") or []}
            if rule.get("ports") and not ports & admin_names:
                continue
            sources = rule.get("from") or []
            if not sources or any("ipBlock" in s or "podSelector" not in s for s in sources):
                finding(name, "admits sources other than selected pods to the admin port")
    if not guarded:
        finding(where, "no NetworkPolicy restricts ingress to keyhook's pods (admin port)")

    # deploy/ecs/task-definition.json: the admin port mapped, its tokens a secret.
    where = "deploy/ecs/task-definition.json"
    task = json.loads((ROOT / where).read_text())
    for c in task.get("containerDefinitions", []):
        env = {e["name"]: e.get("value") for e in c.get("environment", [])}
        if ADMIN in env:
            ports = {m.get("name"): m["containerPort"] for m in c.get("portMappings", [])}
            if ports.get("admin") != listen_port(env[ADMIN]):
                finding(where, f"{c['name']}: no port mapping `admin` for {ADMIN}")
            if "KEYHOOK_ADMIN_TOKENS" not in {s["name"] for s in c.get("secrets", [])}:
                finding(where, f"{c['name']}: {ADMIN} without KEYHOOK_ADMIN_TOKENS in `secrets`")

    # deploy/ecs/keyhook.yaml: the admin port in no target group, load
    # balancer or open security group rule.
    where = "deploy/ecs/keyhook.yaml"
    resources = yaml.load((ROOT / where).read_text(), Loader=CfnLoader).get("Resources") or {}
    ports = set()
    for r in resources.values():
        if r.get("Type") != "AWS::ECS::TaskDefinition":
            continue
        for c in r["Properties"].get("ContainerDefinitions", []):
            for e in map(unless, c.get("Environment", [])):
                if isinstance(e, dict) and e.get("Name") == ADMIN:
                    ports.add(listen_port(e["Value"]))
    if not ports:
        finding(where, f"no container sets {ADMIN}")
    balancer_groups = [
        {"Ref": name}
        for name, r in resources.items()
        if r.get("Type") == "AWS::EC2::SecurityGroup" and any(
            {"Ref": name} in (lb.get("Properties", {}).get("SecurityGroups") or [])
            for lb in resources.values()
            if lb.get("Type") == "AWS::ElasticLoadBalancingV2::LoadBalancer"
        )
    ]
    for name, r in resources.items():
        props = r.get("Properties") or {}
        kind = r.get("Type")
        if kind == "AWS::ElasticLoadBalancingV2::TargetGroup" and props.get("Port") in ports:
            finding(where, f"{name}: a target group on the admin port")
        if kind == "AWS::ECS::Service":
            for lb in props.get("LoadBalancers") or []:
                if lb.get("ContainerPort") in ports:
                    finding(where, f"{name}: the admin port is behind a load balancer")
        rules = []
        if kind == "AWS::EC2::SecurityGroup":
            rules = props.get("SecurityGroupIngress") or []
        elif kind == "AWS::EC2::SecurityGroupIngress":
            rules = [props]
        for rule in rules:
            everything = str(rule.get("IpProtocol")) == "-1"
            covers = everything or any(
                isinstance(rule.get("FromPort"), int) and rule["FromPort"] <= p <= rule.get("ToPort", rule["FromPort"])
                for p in ports
            )
            if covers and ("CidrIp" in rule or "CidrIpv6" in rule or rule.get("SourceSecurityGroupId") in balancer_groups):
                finding(where, f"{name}: opens the admin port to a CIDR or to the load balancer")


def main() -> int:
    for check in (
        check_compose,
        check_kubernetes,
        check_examples,
        check_ecs_task_definition,
        check_iam,
        check_claim_table,
        check_private_listeners,
    ):
        try:
            check()
        except Exception as err:  # a crash is a finding too
            finding(check.__name__, f"{type(err).__name__}: {err}")
    for line in findings:
        print(line)
    if findings:
        print(f"{len(findings)} finding(s)")
        return 1
    print("deploy structure: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
