#!/usr/bin/env python3
"""Checks deploy/kubernetes/*.yaml: each document parses as the Kubernetes
object its kind names (the official `kubernetes` client models, with no field
lost on the way: a misspelt field is an error, not silently dropped), and the
security properties the deployment promises are present, field by field.
Also checks the KServe example and the systemd unit for their outer layer.

Usage: check_manifests.py [REPO_ROOT]   (exit 0 when every check passes)
"""

import json
import pathlib
import re
import sys

import yaml
from kubernetes import client

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])

MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}

failures = []


def check(cond, what):
    print(f"{'ok  ' if cond else 'FAIL'} {what}")
    if not cond:
        failures.append(what)


def to_model(api, doc, model):
    # The generated ApiClient's dict-to-model step; its public wrapper takes a
    # response object in some client versions and text in others.
    return api._ApiClient__deserialize(doc, model)


def parse(doc, where):
    """The client model of `doc`, or None (recorded as a failure)."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    model = MODELS.get(key)
    if model is None:
        check(False, f"{where}: {key} is not an expected kind")
        return None
    api = client.ApiClient()
    obj = to_model(api, doc, model)
    # The models ignore unknown fields; serialising back and comparing turns
    # a misspelt or misplaced field into a failure.
    back = api.sanitize_for_serialization(obj)
    check(back == doc, f"{where}: {key[1]} round-trips through {model} without losing a field")
    if back != doc:
        print(f"     parsed back as: {json.dumps(back, sort_keys=True)[:2000]}")
    return obj


def load_kubernetes():
    objs = {}
    files = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
    check(bool(files), "deploy/kubernetes has manifests")
    for path in files:
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is None:
                continue
            obj = parse(doc, f"{path.name}[{i}]")
            if obj is not None:
                check(doc["kind"] not in objs, f"{path.name}: one {doc['kind']} only")
                objs[doc["kind"]] = obj
    return objs


def check_security_context(sc, where, pod_level):
    check(sc is not None, f"{where}: securityContext set")
    if sc is None:
        return
    check(sc.run_as_non_root is True, f"{where}: runAsNonRoot true")
    check(sc.run_as_user == 65532, f"{where}: runAsUser 65532")
    check(sc.run_as_group == 65532, f"{where}: runAsGroup 65532")
    sp = sc.seccomp_profile
    check(
        sp is not None and sp.type == "Localhost" and sp.localhost_profile == "warden/container.json",
        f"{where}: seccompProfile Localhost warden/container.json",
    )
    if not pod_level:
        check(sc.read_only_root_filesystem is True, f"{where}: readOnlyRootFilesystem true")
        check(sc.allow_privilege_escalation is False, f"{where}: allowPrivilegeEscalation false")
        check(sc.privileged in (None, False), f"{where}: not privileged")
        caps = sc.capabilities
        check(caps is not None and caps.drop == ["ALL"] and not caps.add, f"{where}: capabilities drop ALL, add none")


def check_kubernetes(objs):
    for kind in ("Namespace", "ServiceAccount", "Deployment", "Service", "NetworkPolicy", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        check(kind in objs, f"kubernetes: a {kind}")
    ns = objs.get("Namespace")
    if ns:
        labels = ns.metadata.labels or {}
        check(labels.get("pod-security.kubernetes.io/enforce") == "restricted", "Namespace: PSS enforce=restricted")
        for kind, obj in objs.items():
            if kind != "Namespace":
                check(obj.metadata.namespace == ns.metadata.name, f"{kind}: in namespace {ns.metadata.name}")
    sa = objs.get("ServiceAccount")
    if sa:
        check(sa.automount_service_account_token is False, "ServiceAccount: automountServiceAccountToken false")

    dep = objs.get("Deployment")
    if dep is None:
        return
    pod = dep.spec.template.spec
    labels = dep.spec.template.metadata.labels
    check(dep.spec.selector.match_labels.items() <= labels.items(), "Deployment: selector matches the pod labels")
    check(pod.service_account_name == (sa.metadata.name if sa else None), "Deployment: uses the warden ServiceAccount")
    check(pod.automount_service_account_token is False, "Deployment: automountServiceAccountToken false")
    check(pod.enable_service_links is False, "Deployment: enableServiceLinks false")
    check(not (pod.host_network or pod.host_pid or pod.host_ipc), "Deployment: no host namespaces")
    check_security_context(pod.security_context, "Deployment pod", pod_level=True)
    check(len(pod.containers) == 1 and not pod.init_containers, "Deployment: one container, no init container")
    c = pod.containers[0]
    check(re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", c.image or "") is not None, "Deployment: image pinned by digest")
    check_security_context(c.security_context, "Deployment container", pod_level=False)
    res = c.resources
    req, lim = (res.requests or {}), (res.limits or {})
    check("memory" in lim and req.get("memory") == lim.get("memory"), "Deployment: memory request = limit")
    check("cpu" in req and "cpu" in lim, "Deployment: CPU request and limit")
    ports = {p.name: p.container_port for p in c.ports or []}
    check(ports == {"http": 8000, "metrics": 8002}, "Deployment: ports http 8000 and metrics 8002")
    probes = {"startup": c.startup_probe, "readiness": c.readiness_probe, "liveness": c.liveness_probe}
    want = {"startup": "/v2/health/ready", "readiness": "/v2/health/ready", "liveness": "/v2/health/live"}
    for name, probe in probes.items():
        ok = probe is not None and probe.http_get is not None and probe.http_get.path == want[name] and probe.http_get.port == "http"
        check(ok, f"Deployment: {name} probe GET {want[name]} on the http port")
    vols = {v.name: v for v in pod.volumes or []}
    mounts = {m.name: m for m in c.volume_mounts or []}
    check(set(mounts) == {"models"} and mounts["models"].read_only is True, "Deployment: models mounted read-only, nothing else")
    mv = vols.get("models")
    pvc = mv.persistent_volume_claim if mv else None
    check(pvc is not None and pvc.read_only is True, "Deployment: models volume is a read-only claim")
    check("--model-repository=/models" in (c.args or []), "Deployment: serves the mounted repository")
    check(not c.env and not c.env_from, "Deployment: no environment injected (no credentials)")
    grace = pod.termination_grace_period_seconds or 30
    exit_timeout = next((int(a.split("=", 1)[1]) for a in c.args or [] if a.startswith("--exit-timeout-secs=")), None)
    check(exit_timeout is not None and exit_timeout < grace, "Deployment: drain timeout shorter than the grace period")

    np = objs.get("NetworkPolicy")
    if np:
        s = np.spec
        check(s.pod_selector.match_labels == dep.spec.selector.match_labels, "NetworkPolicy: selects the warden pods")
        check(sorted(s.policy_types or []) == ["Egress", "Ingress"], "NetworkPolicy: governs Ingress and Egress")
        check(not s.egress, "NetworkPolicy: no egress rule at all")
        rules = s.ingress or []
        by_port = {}
        for r in rules:
            for p in r.ports or []:
                by_port.setdefault(p.port, []).append(r)
        check(set(by_port) == {8000, 8002} and all(len(r.ports) == 1 for r in rules), "NetworkPolicy: ingress to 8000 and 8002 only")
        for r in by_port.get(8000, []):
            check(
                all(f.pod_selector is not None and f.pod_selector.match_labels for f in r._from or []) and bool(r._from),
                "NetworkPolicy: 8000 only from selected (gateway) pods",
            )
        for r in by_port.get(8002, []):
            ok = bool(r._from) and all(
                f.namespace_selector is not None and (f.namespace_selector.match_labels or {}).get("kubernetes.io/metadata.name") == "monitoring"
                for f in r._from
            )
            check(ok, "NetworkPolicy: 8002 only from the monitoring namespace")
    svc = objs.get("Service")
    if svc:
        check(svc.spec.selector == dep.spec.selector.match_labels, "Service: selects the warden pods")
        check(svc.spec.type in (None, "ClusterIP"), "Service: ClusterIP (not exposed outside the cluster)")
    hpa = objs.get("HorizontalPodAutoscaler")
    if hpa:
        t = hpa.spec.scale_target_ref
        check(t.kind == "Deployment" and t.name == dep.metadata.name, "HPA: scales the Deployment")
        check(hpa.spec.min_replicas >= 2 and hpa.spec.max_replicas >= hpa.spec.min_replicas, "HPA: at least 2 replicas")
    pdb = objs.get("PodDisruptionBudget")
    if pdb:
        check(pdb.spec.selector.match_labels == dep.spec.selector.match_labels, "PDB: selects the warden pods")
        check(pdb.spec.min_available is not None or pdb.spec.max_unavailable is not None, "PDB: a budget is set")


def check_kserve():
    docs = []
    for path in sorted((ROOT / "deploy" / "kserve").glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    kinds = {d["kind"]: d for _, d in docs}
    check({"ServingRuntime", "InferenceService"} <= set(kinds), "kserve: a ServingRuntime and an InferenceService")
    api = client.ApiClient()
    rt = kinds.get("ServingRuntime")
    if rt:
        check(rt["apiVersion"] == "serving.kserve.io/v1alpha1", "ServingRuntime: serving.kserve.io/v1alpha1")
        check("v2" in rt["spec"].get("protocolVersions", []), "ServingRuntime: speaks the V2 protocol")
        for c in rt["spec"]["containers"]:
            model = to_model(api, c, "V1Container")
            check(api.sanitize_for_serialization(model) == c, f"ServingRuntime container {c['name']}: a valid V1Container")
            check_security_context(model.security_context, f"ServingRuntime container {c['name']}", pod_level=False)
            check(re.search(r"@sha256:[0-9a-f]{64}$", c["image"]) is not None, "ServingRuntime: image pinned by digest")
    isvc = kinds.get("InferenceService")
    if isvc:
        pred = isvc["spec"]["predictor"]
        check(pred.get("automountServiceAccountToken") is False, "InferenceService: no service-account token")
        check(pred.get("enableServiceLinks") is False, "InferenceService: no service links")
        check(pred.get("securityContext", {}).get("runAsNonRoot") is True, "InferenceService: runAsNonRoot")
        uri = pred.get("model", {}).get("storageUri", "")
        # pvc:// is mounted, not downloaded: no storage-initializer with
        # credentials and network access inside the serving pod.
        check(uri.startswith("pvc://"), "InferenceService: models from a PVC (no in-pod download)")


def check_systemd():
    unit = ROOT / "deploy" / "systemd" / "warden.service"
    check(unit.exists(), "systemd: deploy/systemd/warden.service")
    if not unit.exists():
        return
    kv = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            kv.setdefault(k.strip(), []).append(v.strip())
    one = lambda k: (kv.get(k) or [None])[-1]  # noqa: E731 (systemd: the last assignment wins)
    for k, v in {
        "NoNewPrivileges": "yes",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "RestrictAddressFamilies": "AF_INET AF_INET6",
        "CapabilityBoundingSet": "",
        "SystemCallArchitectures": "native",
    }.items():
        check(one(k) == v, f"systemd: {k}={v}")
    filters = kv.get("SystemCallFilter", [])
    check(bool(filters) and filters[0].split()[0] == "@system-service", "systemd: SystemCallFilter=@system-service (allowlist)")


def main():
    check_kubernetes(load_kubernetes())
    check_kserve()
    check_systemd()
    if failures:
        print(f"\n{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("\nall manifest checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
