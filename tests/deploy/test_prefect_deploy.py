"""prefect.yaml and the bootstrap hook against a real Prefect server (one for the module), and the
Kubernetes Job a worker would create for a flow run, rendered by prefect-kubernetes' own code.

Server start-up is most of the time here (about 10-20 s on a fresh SQLite database).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bench.prefect_server import prefect_cli as _prefect
from tests.deploy.paths import INSTITUTIONS, K8S_VERSION, ROOT

pytestmark = pytest.mark.deploy

ALL_DEPLOYMENTS = {
    "sync-institution/full-sync": "lms-sync",
    "sync-institution/incremental-sync": "lms-sync",
    "sync-shard/sync-shard": "lms-sync",
    "sync-institution/full-sync-local": "local-process",
    "sync-institution/incremental-sync-local": "local-process",
    "sync-shard/sync-shard-local": "local-process",
}


@pytest.fixture(scope="module")
def state_u(rendered, tmp_path_factory) -> dict[str, Path]:
    """The state-u release's ConfigMap files, as the hook Job sees them (HMAC key path local)."""
    out = tmp_path_factory.mktemp("state-u")
    (cm,) = [
        d
        for d in rendered["state-u"]
        if d["kind"] == "ConfigMap" and "base-job-template.json" in d["data"]
    ]
    key = out / "hmac-key"
    key.write_text("ab" * 32)
    config = yaml.safe_load(cm["data"]["institution.yaml"])
    config["hmac_key_ref"] = f"file:{key}"
    files = {**cm["data"], "institution.yaml": yaml.safe_dump(config)}
    for name, text in files.items():
        (out / name).write_text(text)
    return {name: out / name for name in files}


def _read(client_settings, fn):
    from prefect.client.orchestration import get_client

    with client_settings(), get_client(sync_client=True) as client:
        return fn(client)


def test_deploy_all_from_prefect_yaml(prefect_env, client_settings, state_u):
    from flows.bootstrap import upsert_work_pool

    template = json.loads(state_u["base-job-template.json"].read_text())
    with client_settings():
        upsert_work_pool("lms-sync", template)  # the kubernetes target's pool; needs no cluster
    _prefect(prefect_env, "work-pool", "create", "local-process", "--type", "process")
    _prefect(prefect_env, "--no-prompt", "deploy", "--all")

    deployments = _read(client_settings, lambda c: c.read_deployments())
    flows = {f.id: f.name for f in _read(client_settings, lambda c: c.read_flows())}
    found = {f"{flows[d.flow_id]}/{d.name}": d for d in deployments}
    assert {k: d.work_pool_name for k, d in found.items()} == ALL_DEPLOYMENTS

    full = found["sync-institution/full-sync"]
    assert full.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/lms-sync"}}
    ]
    assert full.job_variables["image"] == "lms-sync:0.1.0"
    assert full.job_variables["secret_env"][0]["valueFrom"]["secretKeyRef"]["name"]
    assert [s.schedule.cron for s in full.schedules] == ["30 2 * * *"]
    incremental = found["sync-institution/incremental-sync"]
    assert sorted((s.schedule.cron, s.active) for s in incremental.schedules) == [
        ("0 6-22/4 * * *", True),
        ("15 7-19/2 * 1,8,9 1-5", False),
    ]
    shard = found["sync-shard/sync-shard"]
    assert shard.job_variables["memory_limit"] == "2Gi" and not shard.schedules
    local = found["sync-institution/full-sync-local"]
    (step,) = local.pull_steps
    directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert Path(directory) == ROOT


def test_bootstrap_hook_upserts_limits_pool_and_deployments(prefect_env, client_settings, state_u):
    env = {**prefect_env, "LMS_SYNC_TOKEN": "from-a-secret"}
    args = [
        sys.executable, "-m", "flows.bootstrap",
        f"--config={state_u['institution.yaml']}",
        "--work-pool=lms-sync-state-u",
        f"--base-job-template={state_u['base-job-template.json']}",
        f"--deployments={state_u['deployments.yaml']}",
        f"--prefect-file={ROOT / 'prefect.yaml'}",
    ]  # fmt: skip
    for expected in ("created", "updated"):  # a helm upgrade runs it again: still fine
        result = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert f"work pool lms-sync-state-u: {expected}" in result.stdout
    assert "from-a-secret" not in result.stdout + result.stderr

    limits = {
        limit.name: limit
        for limit in _read(client_settings, lambda c: c.read_global_concurrency_limits(limit=200))
    }
    assert limits["lms-sync:canvas:state-u:courses"].limit == 6

    pool = _read(client_settings, lambda c: c.read_work_pool("lms-sync-state-u"))
    assert pool.type == "kubernetes"
    assert pool.base_job_template == json.loads(state_u["base-job-template.json"].read_text())

    deployments = {
        d.name: d
        for d in _read(client_settings, lambda c: c.read_deployments())
        if d.name.startswith("state-u-")
    }
    assert set(deployments) == {
        "state-u-full-sync",
        "state-u-incremental-sync",
        "state-u-sync-shard",
    }
    full = deployments["state-u-full-sync"]
    assert full.work_pool_name == "lms-sync-state-u"
    assert full.parameters == {"config_file": "/etc/lms-sync/institution.yaml"}
    assert full.job_variables["namespace"] == "lms-sync-jobs"
    assert full.job_variables["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel")
    assert "institution:state-u" in full.tags
    assert [(s.schedule.cron, s.schedule.timezone) for s in full.schedules] == [
        ("30 2 * * *", "America/Chicago")
    ]


def test_bootstrap_refuses_a_bad_config(prefect_env, tmp_path):
    bad = tmp_path / "institution.yaml"
    bad.write_text("institution_id: Bad Name\nbase_url: canvas.example.edu\n")
    result = subprocess.run(
        [sys.executable, "-m", "flows.bootstrap", f"--config={bad}"],
        env={**prefect_env, "LMS_SYNC_TOKEN": "t"},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "institution_id" in result.stderr and "base_url" in result.stderr


def _worker_job(client_settings, deployment_name: str) -> dict[str, Any]:
    """The Job manifest prefect-kubernetes' worker would submit for a run of this deployment."""
    from prefect.client.orchestration import get_client
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    async def render() -> dict[str, Any]:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(deployment_name)
            parameters = None
            if deployment_name.startswith("sync-shard/"):  # what the parent run passes
                parameters = {"window": "full-2026-11-26", "course_ids": ["1"], "run_id": "r"}
            flow_run = await client.create_flow_run_from_deployment(
                deployment.id, parameters=parameters
            )
            pool = await client.read_work_pool(deployment.work_pool_name)
            config = await KubernetesWorkerJobConfiguration.resolve_for_flow_run(
                flow_run, client=client, work_pool=pool, worker_name="test-worker"
            )
            return config.job_manifest

    with client_settings():
        return asyncio.run(render())


@pytest.mark.parametrize(
    ("deployment", "requests", "limits"),
    [
        ("sync-institution/state-u-full-sync", ("500m", "1Gi"), ("2", "4Gi")),
        ("sync-shard/state-u-sync-shard", ("250m", "512Mi"), ("1", "2Gi")),
    ],
)
def test_worker_job_for_a_flow_run(client_settings, deployment, requests, limits):
    job = _worker_job(client_settings, deployment)
    kubernetes_validate.validate(job, K8S_VERSION)
    # prefect-kubernetes insists on parallelism/completions inside the *pod* template
    # (worker.py _get_base_job_manifest); the API server drops those unknown fields. Everything
    # else must pass the strict schema.
    strict = json.loads(json.dumps(job))
    for field in ("parallelism", "completions"):
        strict["spec"]["template"]["spec"].pop(field)
    kubernetes_validate.validate(strict, K8S_VERSION, strict=True)
    assert job["metadata"]["namespace"] == "lms-sync-jobs"
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "state-u-flows"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.edu/lms-sync:0.1.0"
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"] == {
        "requests": {"cpu": requests[0], "memory": requests[1]},
        "limits": {"cpu": limits[0], "memory": limits[1]},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["LMS_SYNC_TOKEN"] == {
        "name": "LMS_SYNC_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "state-u-canvas", "key": "api-token"}},
    }
    assert env["PREFECT_HOME"]["value"] == "/tmp/prefect"
    assert env["PREFECT__FLOW_RUN_ID"]["value"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/lms-sync"]["readOnly"] and mounts["/var/run/secrets/lms-sync/hmac"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["hmac-key"]["secret"]["secretName"] == "state-u-hmac"
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "state-u-lms-data"
    assert "from-a-secret" not in json.dumps(job)


def test_institutions_fixture_covers_two_vendors():
    vendors = {yaml.safe_load(p.read_text())["config"]["vendor"] for p in INSTITUTIONS.values()}
    assert vendors == {"canvas", "blackboard"}
