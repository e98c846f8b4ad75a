"""``lms-sync bootstrap``: make an institution ready to run on a Prefect server, idempotently.

Run by the Helm chart's post-install/post-upgrade hook Job (``python -m flows.bootstrap``), and by
hand the same way. In order, each step safe to repeat:

1. validate the institution config (the same check a flow run does at start, secrets included),
   so a bad ``helm upgrade`` fails here and names the field to fix;
2. create or update the vendor's global concurrency limits from its quota
   (:func:`flows.limits.bootstrap_limits`);
3. create the institution's kubernetes work pool, or replace its base job template;
4. deploy ``prefect.yaml``'s kubernetes deployments for the institution: each renamed
   ``<institution>-<name>``, on its pool, with its job variables, parameters and schedules from
   the chart's ``deployments.yaml``::

       institution: state-u
       work_pool: lms-sync-state-u
       job_variables: {image: …, namespace: …, secret_env: [...], ...}   # over prefect.yaml's
       deployments:
         full-sync: {parameters: {shards: 8}, schedules: [{cron: "30 2 * * *", timezone: …}]}
         sync-shard: {job_variables: {cpu_request: 250m}}

   then runs ``prefect --no-prompt deploy --all`` on that generated file.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from flows.settings import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    try:
        config = load_config(ns.config)
        _check_hmac_key(config)
    except ConfigError as exc:
        print(f"lms-sync bootstrap: {exc}", file=sys.stderr)
        return 2
    from flows.limits import bootstrap_limits

    names = bootstrap_limits(config)
    print(f"limits ready: {names.courses}, {names.requests}")
    if ns.work_pool and ns.base_job_template:
        template = json.loads(ns.base_job_template.read_text())
        action = upsert_work_pool(ns.work_pool, template)
        print(f"work pool {ns.work_pool}: {action}")
    if ns.deployments:
        overlay = yaml.safe_load(ns.deployments.read_text())
        spec = institution_deployments(yaml.safe_load(ns.prefect_file.read_text()), overlay)
        deploy(spec, cwd=ns.prefect_file.resolve().parent)
        names = ", ".join(d["name"] for d in spec["deployments"])
        print(f"deployments ready: {names}")
    return 0


def upsert_work_pool(name: str, base_job_template: dict[str, Any], *, type: str = "kubernetes"):
    """Create the pool with this template, or replace the template of the existing pool."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(name=name, type=type, base_job_template=base_job_template)
            )
            return "created"
        if pool.type != type:
            raise ConfigError(f"work pool {name!r} exists with type {pool.type!r}, not {type!r}")
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=base_job_template))
        return "updated"


def institution_deployments(prefect_yaml: dict[str, Any], overlay: dict[str, Any]) -> dict:
    """prefect.yaml's deployments named in ``overlay``, made this institution's (pure function)."""
    institution = overlay["institution"]
    by_name = {d["name"]: d for d in prefect_yaml.get("deployments", [])}
    chosen = overlay.get("deployments") or {}
    unknown = sorted(set(chosen) - set(by_name))
    if unknown:
        raise ConfigError(f"deployments {unknown} are not in prefect.yaml ({sorted(by_name)})")
    out = []
    for name, extra in chosen.items():
        extra = extra or {}
        base = copy.deepcopy(by_name[name])
        job_variables = _merge_job_variables(
            base.get("work_pool", {}).get("job_variables") or {},
            overlay.get("job_variables") or {},
            extra.get("job_variables") or {},
        )
        base["name"] = f"{institution}-{name}"
        base["work_pool"] = {"name": overlay["work_pool"], "job_variables": job_variables}
        base["parameters"] = {**(base.get("parameters") or {}), **(extra.get("parameters") or {})}
        base["tags"] = sorted({*(base.get("tags") or []), f"institution:{institution}"})
        if "schedules" in extra:
            base["schedules"] = extra["schedules"] or []
        out.append(base)
    return {
        "name": prefect_yaml.get("name", "lms-sync"),
        "prefect-version": prefect_yaml.get("prefect-version"),
        "build": None,
        "push": None,
        "deployments": out,
    }


def deploy(spec: dict[str, Any], *, cwd: Path) -> None:
    """``prefect --no-prompt deploy --all`` on ``spec``, run in ``cwd`` (the entrypoints' root)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="prefect-") as handle:
        yaml.safe_dump(spec, handle, sort_keys=False)
        handle.flush()
        command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
        subprocess.run(
            [*command, "--prefect-file", handle.name],
            cwd=cwd,
            check=True,
        )


def _merge_job_variables(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win key by key; ``env`` is merged like Prefect merges it (workers/base.py)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "env" and isinstance(value, dict):
                merged["env"] = {**merged.get("env", {}), **value}
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def _check_hmac_key(config) -> None:
    from transforms.tokenize import load_hmac_key

    try:
        load_hmac_key(config.hmac_key_ref, config.hmac_key_version)
    except ValueError as exc:
        raise ConfigError(f"hmac_key_ref: {exc}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lms-sync bootstrap",
        description="validate the config; upsert limits, work pool and deployments",
    )
    parser.add_argument("--config", type=Path, required=True, help="institution config file")
    parser.add_argument("--work-pool", help="the institution's kubernetes work pool")
    parser.add_argument("--base-job-template", type=Path, help="the pool's base job template")
    parser.add_argument("--deployments", type=Path, help="the chart's deployments.yaml")
    parser.add_argument(
        "--prefect-file", type=Path, default=Path("prefect.yaml"), help="the project's prefect.yaml"
    )
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
