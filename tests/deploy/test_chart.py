"""The per-institution chart: helm lint/template with two institutions, offline schema validation,
and what the manifests must say (hardened pods, secrets only by reference, hooks, resources, pool).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.paths import CHART, INSTITUTIONS, K8S_VERSION

pytestmark = pytest.mark.deploy

SECRETISH = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|HMAC_KEY|CLIENT_ID", re.IGNORECASE)


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def configmap(docs: list[dict[str, Any]], institution: str) -> dict[str, Any]:
    (cm,) = [
        d
        for d in kinds(docs, "ConfigMap")
        if d["metadata"]["name"] == f"{institution}-config" and "namespace" not in d["metadata"]
    ]
    return cm


def base_job_template(docs, institution) -> dict[str, Any]:
    return json.loads(configmap(docs, institution)["data"]["base-job-template.json"])


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every pod the release starts: its own workloads and the worker's flow-run Job template."""
    specs = [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    ]
    for cm in kinds(docs, "ConfigMap"):
        if "base-job-template.json" in cm["data"]:
            manifest = json.loads(cm["data"]["base-job-template.json"])["job_configuration"]
            specs.append(("flow-run Job", manifest["job_manifest"]["spec"]["template"]["spec"]))
    return specs


@pytest.mark.parametrize("institution", sorted(INSTITUTIONS))
def test_helm_lint(helm, institution):
    result = helm("lint", "--strict", str(CHART), "-f", str(INSTITUTIONS[institution]))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("institution", sorted(INSTITUTIONS))
def test_rendered_manifests_pass_kubernetes_schema(rendered, institution):
    docs = rendered[institution]
    assert {d["kind"] for d in docs} >= {
        "ConfigMap",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
        "Job",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_schema_validation_rejects_a_broken_manifest(rendered):
    (deployment,) = kinds(rendered["state-u"], "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.parametrize("institution", sorted(INSTITUTIONS))
def test_every_pod_is_non_root_read_only_without_capabilities(rendered, institution):
    specs = pod_specs(rendered[institution])
    assert len(specs) == 3  # worker, bootstrap hook, flow-run Jobs
    for where, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc.get("privileged") is not True, where


@pytest.mark.parametrize("institution", sorted(INSTITUTIONS))
def test_secrets_only_by_reference(rendered, institution):
    docs = rendered[institution]
    assert not kinds(docs, "Secret"), "the chart must not create Secrets (existingSecret only)"
    envs = []
    for _, spec in pod_specs(docs):
        for container in spec["containers"]:
            env = container.get("env")
            envs += env if isinstance(env, list) else []
    bjt = base_job_template(docs, institution)["variables"]["properties"]
    envs += bjt["secret_env"]["default"]
    secretish = [e for e in envs if SECRETISH.search(e["name"])]
    assert secretish
    for entry in secretish:
        if entry["name"].startswith("PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET"):
            continue  # the *name* of the Secret the worker references, not a value
        assert "value" not in entry, entry["name"]
        assert set(entry["valueFrom"]) == {"secretKeyRef"}, entry["name"]
    assert not [name for name in bjt["env"]["default"] if SECRETISH.search(name)]


def test_vendor_credentials_wired_per_vendor(rendered):
    def secret_env(institution):
        props = base_job_template(rendered[institution], institution)["variables"]["properties"]
        return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in props["secret_env"]["default"]}

    assert secret_env("state-u") == {
        "LMS_SYNC_TOKEN": {"name": "state-u-canvas", "key": "api-token"}
    }
    county = secret_env("county-district")
    assert county["LMS_SYNC_CLIENT_ID"] == {"name": "county-blackboard", "key": "client-id"}
    assert county["LMS_SYNC_CLIENT_SECRET"] == {"name": "county-blackboard", "key": "client-secret"}
    assert county["LMS_SYNC_HMAC_KEY"] == {"name": "county-hmac", "key": "key"}  # mountAs env
    assert "LMS_SYNC_TOKEN" not in county


@pytest.mark.parametrize("institution", sorted(INSTITUTIONS))
def test_configmap_holds_no_secret(rendered, institution, monkeypatch, tmp_path):
    cm = configmap(rendered[institution], institution)
    config = yaml.safe_load(cm["data"]["institution.yaml"])
    assert config["institution_id"] == institution
    assert not {"token", "client_secret", "client_id"} & set(config)
    assert config["hmac_key_ref"].startswith(("file:/var/run/secrets/", "env:LMS_SYNC_HMAC_KEY"))
    assert config["shard_deployment"] == f"sync-shard/{institution}-sync-shard"
    # The rendered file is a valid institution config once the pod's secrets arrive.
    from flows.settings import load_config

    path = tmp_path / "institution.yaml"
    path.write_text(cm["data"]["institution.yaml"])
    for name in ("LMS_SYNC_TOKEN", "LMS_SYNC_CLIENT_ID", "LMS_SYNC_CLIENT_SECRET"):
        monkeypatch.setenv(name, "from-a-secret")
    loaded = load_config(path)
    assert loaded.institution_id == institution


def test_several_sources_get_their_variables_from_secrets(helm, tmp_path):
    values = tmp_path / "two-lms.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "secrets": {
                    "vendor": {"existingSecret": ""},
                    "extraEnv": [
                        {"name": "CANVAS_TOKEN", "existingSecret": "u-canvas", "key": "token"},
                        {"name": "MOODLE_TOKEN", "existingSecret": "u-moodle", "key": "token"},
                    ],
                }
            }
        )
    )
    text = helm(
        "template", "u", str(CHART), "-f", str(INSTITUTIONS["state-u"]), "-f", str(values)
    ).stdout  # fmt: skip
    (cm,) = [
        d
        for d in yaml.safe_load_all(text)
        if d and d["kind"] == "ConfigMap" and "base-job-template.json" in d["data"]
    ]
    props = json.loads(cm["data"]["base-job-template.json"])["variables"]["properties"]
    assert props["secret_env"]["default"] == [
        {
            "name": "CANVAS_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "u-canvas", "key": "token"}},
        },
        {
            "name": "MOODLE_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "u-moodle", "key": "token"}},
        },
    ]


def test_secret_values_in_values_are_refused(helm):
    for key in ("token", "client_secret", "hmac_key_ref"):
        result = helm(
            "template", "x", str(CHART), "-f", str(INSTITUTIONS["state-u"]),
            "--set", f"config.{key}=oops", check=False,
        )  # fmt: skip
        assert result.returncode != 0
        assert f"config.{key} must not be set" in result.stderr


def test_required_values_are_named(helm):
    result = helm("template", "x", str(CHART), check=False)
    assert result.returncode != 0 and "global.institution is required" in result.stderr


def test_hook_job_upserts_limits_pool_and_deployments(rendered):
    (hook,) = kinds(rendered["state-u"], "Job")
    annotations = hook["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade,post-rollback"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = hook["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "flows.bootstrap"]
    assert "--work-pool=lms-sync-state-u" in container["args"]
    assert container["resources"]["limits"]["memory"]


def test_resources_and_work_pool_name(rendered):
    for institution, pool in (("state-u", "lms-sync-state-u"), ("county-district", "county-k8s")):
        docs = rendered[institution]
        (worker,) = kinds(docs, "Deployment")
        (container,) = worker["spec"]["template"]["spec"]["containers"]
        assert f"--pool={pool}" in container["args"] and "--type=kubernetes" in container["args"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        deployments = yaml.safe_load(configmap(docs, institution)["data"]["deployments.yaml"])
        assert deployments["work_pool"] == pool
    props = base_job_template(rendered["state-u"], "state-u")["variables"]["properties"]
    assert props["cpu_request"]["default"] == "500m"
    assert props["memory_limit"]["default"] == "4Gi"
    assert props["finished_job_ttl"]["default"] == 86400
    assert props["namespace"]["default"] == "lms-sync-jobs"
    assert props["image"]["default"] == "registry.example.edu/lms-sync:0.1.0"
    county = base_job_template(rendered["county-district"], "county-district")
    assert county["variables"]["properties"]["memory_limit"]["default"] == "2Gi"


def test_job_namespace_gets_its_own_config_and_service_account(rendered):
    docs = rendered["state-u"]  # jobs in lms-sync-jobs, release in lms-sync
    namespaced = {
        (d["kind"], d["metadata"].get("namespace")) for d in docs if d["kind"] != "RoleBinding"
    }
    assert ("ConfigMap", "lms-sync-jobs") in namespaced
    assert ("ServiceAccount", "lms-sync-jobs") in namespaced
    assert ("Role", "lms-sync-jobs") in namespaced


def test_deployments_file_names_schedules_and_shard_resources(rendered):
    spec = yaml.safe_load(configmap(rendered["state-u"], "state-u")["data"]["deployments.yaml"])
    assert set(spec["deployments"]) == {"full-sync", "incremental-sync", "sync-shard"}
    nightly = spec["deployments"]["full-sync"]["schedules"]
    assert nightly == [{"cron": "30 2 * * *", "timezone": "America/Chicago"}]
    assert spec["deployments"]["sync-shard"]["job_variables"]["memory_limit"] == "2Gi"
    assert "schedules" not in spec["deployments"]["sync-shard"]


def test_chart_files_are_committed_not_generated():
    assert not list((CHART / "charts").glob("*.tgz"))
    assert (CHART / "charts" / "worker" / "Chart.yaml").is_file()
    assert Path(CHART / "files" / "base-job-template.yaml").is_file()
