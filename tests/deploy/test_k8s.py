"""The Kubernetes manifests (deploy/k8s): `kubectl kustomize` renders them, and every object
validates against the Kubernetes OpenAPI schemas that the kubernetes-validate package ships
(offline: no cluster, no network), strictly (an unknown field is an error). Then what the
deployment promises: probes, resources, the Redis AOF on a volume, autoscalers, budgets and
secrets that exist for every reference."""

from __future__ import annotations

import shutil
import subprocess

import kubernetes_validate
import pytest
import redis
import yaml

from medseg.jobs import schedule
from tests.conftest import ROOT

KUBECTL = shutil.which("kubectl")
K8S = ROOT / "deploy" / "k8s"
VERSION = "1.30.0"  # the oldest Kubernetes the manifests are meant for (HPA v2, policy/v1)

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")


def render(path) -> list[dict]:
    result = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return render(K8S)


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_object_validates_against_the_kubernetes_schemas(objects):
    assert len(objects) >= 10
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at "
                        f"{'.'.join(map(str, exc.path))}")


def test_a_broken_object_is_refused(objects):
    """The validator does check: a probe with a misspelt field fails."""
    api = by_kind(objects, "Deployment")["medseg-api"]
    broken = yaml.safe_load(yaml.safe_dump(api))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


def _containers(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


def test_probes_resources_and_secrets(objects):
    deployments = by_kind(objects, "Deployment")
    api = _containers(deployments["medseg-api"])[0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in api["env"]}
    assert env["MEDSEG_RUN_WORKER"]["value"] == "0"  # jobs run in the worker Deployment
    assert env["MEDSEG_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["MEDSEG_API_KEYS_FILE"]["value"].startswith("/etc/medseg/keys/")
    workloads = [*deployments.values(), *by_kind(objects, "StatefulSet").values()]
    assert {w["metadata"]["name"] for w in workloads} == {"medseg-api", "medseg-worker",
                                                          "medseg-redis"}
    secrets = set(by_kind(objects, "Secret"))
    assert {"medseg-api-keys", "medseg-pacs", "medseg-redis"} <= secrets
    for workload in workloads:
        for container in _containers(workload):
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"]
            assert resources["limits"]["memory"], container["name"]
            for e in container.get("env", []):  # every secret referenced exists
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                assert ref is None or ref["name"] in secrets, e
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            assert "secret" not in volume or volume["secret"]["secretName"] in secrets
    worker_env = {e["name"] for e in _containers(deployments["medseg-worker"])[0]["env"]}
    assert {"MEDSEG_REDIS_URL", "MEDSEG_PACS_FILE"} <= worker_env


def test_redis_keeps_its_append_only_file_on_a_volume(objects):
    redis = by_kind(objects, "StatefulSet")["medseg-redis"]
    config = by_kind(objects, "ConfigMap")["medseg-redis"]["data"]["redis.conf"]
    assert "appendonly yes" in config and "maxmemory-policy noeviction" in config
    claim = redis["spec"]["volumeClaimTemplates"][0]
    mounts = {m["name"]: m["mountPath"] for m in _containers(redis)[0]["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data" and "dir /data" in config


def test_autoscalers_and_disruption_budgets(objects):
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    assert hpas["medseg-api"]["spec"]["scaleTargetRef"]["name"] == "medseg-api"
    external = [m["external"]["metric"]["name"] for m in hpas["medseg-worker"]["spec"]["metrics"]]
    assert set(external) == {"medseg_jobs_queued"}  # the gauge the API's /metrics serves
    budgets = by_kind(objects, "PodDisruptionBudget")
    labels = {o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
              for o in [*by_kind(objects, "Deployment").values(),
                        *by_kind(objects, "StatefulSet").values()]}
    for name, budget in budgets.items():  # each budget selects its workload's pods
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels[name].items()
    assert budgets["medseg-api"]["spec"]["minAvailable"] == 2


def test_keda_variant_renders_and_scales_on_the_queue_lists(objects):
    keda = render(K8S / "keda")
    core = [o for o in keda if "keda.sh" not in o["apiVersion"]]
    for obj in core:
        kubernetes_validate.validate(obj, VERSION, strict=True)
    assert "medseg-worker" not in by_kind(keda, "HorizontalPodAutoscaler")  # KEDA's instead
    scaled = by_kind(keda, "ScaledObject")["medseg-worker"]  # a CRD: no schema ships, so by hand
    assert scaled["spec"]["scaleTargetRef"]["name"] == "medseg-worker"
    # the Redis lists of the very queues the workers take from
    with redis.Redis() as unused:  # Queue only names its key here; nothing connects
        lists = {q.key for q in schedule.queues(unused)}
    assert {t["metadata"]["listName"] for t in scaled["spec"]["triggers"]} == lists
